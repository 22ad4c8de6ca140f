"""Probes of this machine that need neither torch nor a GPU: OS and Python, CPU, memory, the
disk under the runs folder, installed package versions and the Atari ROMs.

Each returns a JSON-ready dict. They are cheap enough for the runner (free memory before a
start) and the dashboard (live figures, recommended settings) to call in their own process.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from machine.util import safe

__all__ = [
    "PACKAGES",
    "available_memory",
    "probe_atari",
    "probe_cpu",
    "probe_disk",
    "probe_memory",
    "probe_packages",
    "probe_system",
]

#: import name -> distribution name, read from package metadata (nothing is imported).
PACKAGES = {
    "stable_baselines3": "stable-baselines3",
    "gymnasium": "gymnasium",
    "ale_py": "ale-py",
    "torch": "torch",
    "numpy": "numpy",
    "psutil": "psutil",
    "nvidia_ml_py": "nvidia-ml-py",
}


def probe_system() -> dict[str, Any]:
    """OS and Python, for bug reports and for platform-specific advice."""
    return {
        "os": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
    }


def _cpu_model() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip() or None
    if platform.system() == "Darwin":
        out = safe(
            lambda: subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
        if out:
            return out
    return platform.processor() or None


def probe_cpu() -> dict[str, Any]:
    """Cores decide n_envs: one environment per physical core keeps every core busy."""
    affinity = safe(lambda: len(os.sched_getaffinity(0)))
    load = safe(os.getloadavg)
    freq = safe(psutil.cpu_freq)
    return {
        "model": safe(_cpu_model),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": affinity,
        "freq_mhz": round(freq.current) if freq and freq.current else None,
        "load_avg_1m": round(load[0], 2) if load else None,
    }


def _cgroup_memory() -> tuple[int | None, int | None]:
    """(limit, usage) of the container's memory cgroup, or Nones outside a limited cgroup.
    psutil reports the host's RAM, but the OOM killer enforces the container's limit."""
    candidates = (
        (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
        (
            Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ),
    )
    for limit_file, usage_file in candidates:
        raw = safe(lambda f=limit_file: f.read_text().strip())
        if raw and raw.isdigit() and int(raw) < 2**60:
            usage = safe(lambda f=usage_file: int(f.read_text().strip()))
            return int(raw), usage
    return None, None


def probe_memory() -> dict[str, Any]:
    """RAM decides the DQN replay buffer size and how many runs fit side by side."""
    vm = psutil.virtual_memory()
    swap = safe(psutil.swap_memory)
    limit, usage = _cgroup_memory()
    total, available = vm.total, vm.available
    if limit is not None and limit < total:
        total = limit
        if usage is not None:
            available = max(0, min(available, limit - usage))
    return {
        "total_bytes": vm.total,
        "available_bytes": vm.available,
        "used_percent": vm.percent,
        "swap_total_bytes": swap.total if swap else None,
        "swap_free_bytes": swap.free if swap else None,
        "cgroup_limit_bytes": limit,
        "effective_total_bytes": total,
        "effective_available_bytes": available,
    }


def available_memory() -> int:
    """Free RAM as the OOM killer sees it: the container's cgroup limit when there is one."""
    memory = probe_memory()
    return int(memory["effective_available_bytes"] or memory["available_bytes"])


def probe_disk(runs_dir: Path) -> dict[str, Any]:
    """Free space where checkpoints, videos and logs will be written. The runs folder may not
    exist yet; then the nearest existing parent tells which drive it will be on."""
    runs_dir = Path(runs_dir).expanduser().absolute()
    measured = runs_dir
    while not measured.exists() and measured.parent != measured:
        measured = measured.parent
    usage = shutil.disk_usage(measured)
    return {
        "runs_dir": str(runs_dir),
        "exists": runs_dir.is_dir(),
        "measured_path": str(measured),
        "total_bytes": usage.total,
        "free_bytes": usage.free,
        "used_percent": round(100 * usage.used / usage.total, 1) if usage.total else None,
    }


def probe_packages() -> dict[str, Any]:
    """Installed versions, read from package metadata so nothing heavy is imported."""
    versions: dict[str, Any] = {}
    for key, dist in PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def _rom_ids(bundled: Path, roms_dir: Path) -> list[str]:
    """The ROM ids ale-py supports: the keys of its ``roms/md5.json`` (what
    ``ale_py.roms.get_all_rom_ids`` reads), else the ROM files themselves (older layouts)."""
    hashes = bundled / "md5.json"
    if hashes.is_file():
        return [key.split(".")[0] for key in json.loads(hashes.read_text(encoding="utf-8"))]
    return sorted(p.stem for p in roms_dir.glob("*.bin"))


def probe_atari() -> dict[str, Any]:
    """How many Atari ROMs ale-py can load. ale-py >= 0.9 ships them; ALE_ROMS_DIR, when set,
    replaces the bundled folder (ale_py/roms/__init__.py get_rom_path).

    Reads ale-py's files without importing it (its native library is no business of the
    runner or the dashboard)."""
    spec = importlib.util.find_spec("ale_py")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'ale_py'")
    bundled = Path(next(iter(spec.submodule_search_locations))) / "roms"
    override = os.environ.get("ALE_ROMS_DIR")
    roms_dir = Path(override) if override else bundled
    known = _rom_ids(bundled, roms_dir)
    available = sum((roms_dir / f"{rom}.bin").is_file() for rom in known)
    return {
        "ale_py_version": safe(lambda: importlib.metadata.version("ale-py")),
        "roms_dir": str(roms_dir),
        "roms_dir_from_env": bool(override),
        "roms_known": len(known),
        "roms_available": available,
    }
