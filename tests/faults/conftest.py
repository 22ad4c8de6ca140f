"""The fault suite's summary line: trials, faults injected, losses (must be 0)."""

from __future__ import annotations

import pytest

from .harness import LEDGER


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LEDGER.trials or LEDGER.faults or LEDGER.notes:
        terminalreporter.write_line(LEDGER.line())
        for note in LEDGER.notes:
            terminalreporter.write_line(f"  {note}")
        for loss in LEDGER.losses[:20]:
            terminalreporter.write_line(f"  lost: {loss}")
