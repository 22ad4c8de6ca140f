"""Findings: problems and notable facts of a report, most severe first, each with steps to fix
it. The GPU and PyTorch ones are in :mod:`training.diagnostics.gpu_findings`. Pure: reads only
the report."""

from __future__ import annotations

from typing import Any

from machine.cuda import reinstall_step
from machine.probes import PACKAGES
from machine.report import SEVERITY_ORDER, finding
from machine.util import GIB, gib
from training.diagnostics.gpu_findings import gpu_findings

__all__ = ["SECTIONS", "findings"]

#: The probe sections of a report, in the order the report lists them.
SECTIONS = ("system", "cpu", "memory", "disk", "gpus", "torch", "packages", "atari")

# Free space under the runs folder: checkpoints are small, but videos, TensorBoard files and
# especially a saved DQN replay buffer (gigabytes) add up.
DISK_ERROR_BYTES = 1 * GIB
DISK_WARN_BYTES = 5 * GIB
MEMORY_WARN_BYTES = 2 * GIB
MEMORY_WARN_FRACTION = 0.10

_PROBE_FAILED_STEPS = [
    "The rest of the report is still valid.",
    "If this persists, include python -m training.diagnostics --json in a bug report.",
]
_LOW_DISK_STEPS = [
    "Delete runs you no longer need, or old checkpoints and videos inside them.",
    "Keep save_replay_buffer off: a DQN replay buffer is gigabytes per save.",
    "Or move the runs folder to a bigger drive (RETRO_ML_RUNS_DIR).",
]
_LOW_MEMORY_STEPS = [
    "Close programs or stop runs you do not need.",
    "Use fewer n_envs and, for DQN, a smaller buffer_size with optimize_memory_usage: true "
    "(see the recommended settings).",
]
_REINSTALL_ALE = "pip install --force-reinstall ale-py"


def _probe_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for section in SECTIONS:
        error = report.get(section, {}).get("probe_error")
        if error:
            title = f"Could not check {section}"
            out.append(finding("probe_failed", "warning", title, _PROBE_FAILED_STEPS, error))
    return out


def _resource_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    disk = report.get("disk", {})
    free = disk.get("free_bytes")
    if free is not None and free < DISK_WARN_BYTES:
        severe = free < DISK_ERROR_BYTES
        title = f"{'Almost no' if severe else 'Low'} free disk space for runs ({gib(free)})"
        detail = f"{disk.get('measured_path')}: {gib(free)} free of {gib(disk.get('total_bytes'))}"
        severity = "error" if severe else "warning"
        out.append(finding("low_disk", severity, title, _LOW_DISK_STEPS, detail))
    memory = report.get("memory", {})
    available = memory.get("effective_available_bytes")
    total = memory.get("effective_total_bytes")
    low = available is not None and total
    if low and (available < MEMORY_WARN_BYTES or available < MEMORY_WARN_FRACTION * total):
        title = f"Low free memory ({gib(available)} of {gib(total)})"
        out.append(finding("low_memory", "warning", title, _LOW_MEMORY_STEPS))
    return out


def _torch_missing(report: dict[str, Any]) -> list[dict[str, Any]]:
    torch = report.get("torch", {})
    if not torch or "probe_error" in torch or torch.get("installed"):
        return []
    driver_cuda = report.get("gpus", {}).get("cuda_driver_version")
    step = (
        reinstall_step(driver_cuda)
        if driver_cuda
        else "pip install torch (the CPU build is fine without an NVIDIA GPU)"
    )
    title = "PyTorch is not installed"
    return [finding("torch_missing", "error", title, [step], torch.get("error") or "")]


def _rom_findings(atari: dict[str, Any]) -> list[dict[str, Any]]:
    available = atari.get("roms_available")
    where = f"looked in {atari.get('roms_dir')}"
    if available == 0:
        steps = [
            "Unset ALE_ROMS_DIR unless you keep your own ROMs there.",
            f"Reinstall ale-py, which includes the ROMs: {_REINSTALL_ALE}",
        ]
        return [finding("no_atari_roms", "error", "No Atari ROMs found", steps, where)]
    known = atari.get("roms_known") or 0
    if available is not None and available < known:
        title = f"Only {available} of {atari.get('roms_known')} Atari ROMs are present"
        steps = [f"Reinstall ale-py ({_REINSTALL_ALE}) or fix ALE_ROMS_DIR."]
        return [finding("atari_roms_incomplete", "warning", title, steps, where)]
    return []


def _package_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    packages = report.get("packages", {})
    for key in ("stable_baselines3", "gymnasium", "ale_py"):
        if key in packages and packages[key] is None:
            dist = PACKAGES[key]
            steps = [f"pip install {dist} (or reinstall the project: pip install -e .)"]
            out.append(finding("package_missing", "error", f"{dist} is not installed", steps))
    return out + _torch_missing(report) + _rom_findings(report.get("atari", {}))


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Problems and notable facts, most severe first: each ``{code, severity, title, steps,
    detail}`` (:class:`machine.report.Finding`) with severity "error", "warning" or "info"."""
    out = _probe_findings(report)
    out += gpu_findings(report)
    out += _resource_findings(report)
    out += _package_findings(report)
    out.sort(key=lambda f: SEVERITY_ORDER.get(f["severity"], 3))
    return out
