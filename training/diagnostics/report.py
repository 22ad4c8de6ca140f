"""The whole report: every probe, then the recommended settings and the findings, as one
JSON-ready dict in the shape of :class:`machine.report.DiagnosticsReport`."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import probes
from machine.nvml import probe_gpus
from machine.recommend import recommend_settings
from machine.report import SCHEMA_VERSION
from machine.util import error_text
from runstore.paths import default_runs_dir
from training.diagnostics.findings import findings
from training.diagnostics.torch_probe import probe_torch

__all__ = ["build_report", "resolve_runs_dir"]


def resolve_runs_dir(runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """The runs folder: the explicit argument, else runstore's default ($RETRO_ML_RUNS_DIR,
    else ./runs)."""
    return Path(runs_dir) if runs_dir else default_runs_dir()


def _guard(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one probe; its failure becomes data for findings(), never a crashed report."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - see docstring
        return {"probe_error": error_text(exc)}


def build_report(
    runs_dir: str | os.PathLike[str] | None = None,
    *,
    nvml: Any = None,
    torch_module: Any = None,
    smoke_test: bool = True,
) -> dict[str, Any]:
    """Run every probe and return one JSON-serialisable report, with findings and recommended
    settings included so a reader of ``--json`` needs nothing else. ``nvml`` and
    ``torch_module`` are stand-ins for tests."""
    resolved = resolve_runs_dir(runs_dir)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs_dir": str(resolved.expanduser().absolute()),
        "system": _guard(probes.probe_system),
        "cpu": _guard(probes.probe_cpu),
        "memory": _guard(probes.probe_memory),
        "disk": _guard(lambda: probes.probe_disk(resolved)),
        "gpus": _guard(lambda: probe_gpus(nvml)),
        "torch": _guard(lambda: probe_torch(torch_module, smoke_test=smoke_test)),
        "packages": _guard(probes.probe_packages),
        "atari": _guard(probes.probe_atari),
    }
    report["recommendations"] = recommend_settings(report)
    report["findings"] = findings(report)
    return report
