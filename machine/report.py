"""The diagnostics report as it crosses the process boundary: ``python -m training.diagnostics
--json`` prints it, the dashboard's System page (which must not import torch) reads it back.

The sections the page shows are typed; the probe sections it does not read from the report
(memory, disk, GPUs: the page reads those live) stay plain JSON for scripts and bug reports.
A section whose probe raised holds only ``probe_error``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "DiagnosticsReport",
    "DqnAdvice",
    "Finding",
    "Recommendations",
    "SCHEMA_VERSION",
    "Severity",
    "finding",
    "SEVERITY_ORDER",
]

SCHEMA_VERSION = 1
Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


class _Model(BaseModel):
    # Fields a newer report adds are ignored, so an older page still reads it.
    model_config = ConfigDict(extra="ignore")


class _Section(_Model):
    """A probe's section: only ``probe_error`` when the probe raised."""

    probe_error: str | None = None


class Finding(_Model):
    """A problem or a notable fact, with the steps to fix it."""

    code: str
    severity: Severity
    title: str
    steps: list[str]
    detail: str = ""


def finding(
    code: str, severity: Severity, title: str, steps: list[str], detail: str = ""
) -> dict[str, Any]:
    """One finding as the report's JSON holds it, checked against :class:`Finding`."""
    made = Finding(code=code, severity=severity, title=title, steps=list(steps), detail=detail)
    return made.model_dump()


class DqnAdvice(_Model):
    buffer_size: int
    optimize_memory_usage: bool
    bytes_per_transition: int
    buffer_bytes: int
    ram_budget_bytes: int
    max_buffer_size_optimized: int
    max_buffer_size_plain: int
    reason: str


class Recommendations(_Model):
    device: str
    device_reason: str
    n_envs: int
    vec_env: str
    vec_env_reason: str
    dqn: DqnAdvice
    notes: list[str] = []


class SystemInfo(_Section):
    os: str | None = None
    python_version: str | None = None


class CpuInfo(_Section):
    model: str | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None
    usable_cores: int | None = None


class TorchInfo(_Section):
    installed: bool = False
    version: str | None = None
    cuda_build: str | None = None
    cudnn_version: int | None = None
    cuda_available: bool = False
    arch_list: list[str] = []
    smoke_test: str | None = None


class AtariInfo(_Section):
    roms_known: int | None = None
    roms_available: int | None = None


class DiagnosticsReport(_Model):
    schema_version: int = SCHEMA_VERSION
    generated_at: str = ""
    runs_dir: str = ""
    system: SystemInfo
    cpu: CpuInfo
    torch: TorchInfo
    packages: dict[str, Any]
    atari: AtariInfo
    memory: dict[str, Any]
    disk: dict[str, Any]
    gpus: dict[str, Any]
    recommendations: Recommendations
    findings: list[Finding]
