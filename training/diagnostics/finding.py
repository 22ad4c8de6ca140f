"""One finding of the report, checked against the typed model the dashboard reads it with."""

from __future__ import annotations

from typing import Any

from machine.report import Finding, Severity


def finding(
    code: str, severity: Severity, title: str, steps: list[str], detail: str = ""
) -> dict[str, Any]:
    """``{code, severity, title, steps, detail}`` as the report's JSON holds it."""
    return Finding(
        code=code, severity=severity, title=title, steps=list(steps), detail=detail
    ).model_dump()
