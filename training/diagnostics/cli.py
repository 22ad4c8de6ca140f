"""``python -m training.diagnostics [--json] [--runs-dir PATH] [--no-smoke-test]``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator

from runstore.paths import RUNS_DIR_ENV
from training.diagnostics.report import build_report
from training.diagnostics.text import render_text

__all__ = ["main"]


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Keep stdout clean for --json: native libraries (ale-py's C++, CUDA) print to file
    descriptor 1 directly, which sys.stdout redirection alone cannot catch."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 whatever it finds (findings are data, not a failure)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.diagnostics",
        description="Check this machine for training: CPU, memory, disk, GPUs, PyTorch, ROMs.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--runs-dir", default=None, help=f"runs folder (default: ${RUNS_DIR_ENV} or ./runs)"
    )
    parser.add_argument(
        "--no-smoke-test",
        action="store_true",
        help="do not run a test calculation on each GPU (skips creating a CUDA context)",
    )
    args = parser.parse_args(argv)
    with _stdout_to_stderr():
        report = build_report(args.runs_dir, smoke_test=not args.no_smoke_test)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(report))
    return 0
