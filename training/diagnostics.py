"""What this machine can train with, what is wrong with it, and which settings suit it.

``python -m training.diagnostics [--json] [--runs-dir PATH]`` prints a report: OS, Python, CPU,
memory, the disk under the runs folder, every NVIDIA GPU seen through NVML, the PyTorch build and
whether CUDA really works (a matmul and the Atari CNN's first convolution on each GPU), the RL
package versions and the Atari ROMs, then findings (problems with steps to fix them) and
recommended settings.

Why a separate process: the runner and the dashboard must never import torch or hold a CUDA
context, so the System page runs this module as a subprocess and reads its ``--json`` output.
Torch is imported only inside :func:`probe_torch`.

Each probe is a function returning a JSON-ready dict. A probe that raises does not crash the
report: its section records the error and :func:`findings` turns it into a finding. A machine
without a GPU is normal, not an error: NVML failing to load there becomes a calm "info" finding.
The NVML and torch probes accept a stand-in module so tests can walk the GPU code paths on a
machine that has no GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from training.failures import diagnose, parse_cuda_version, pytorch_index_url

__all__ = [
    "arch_supported",
    "build_report",
    "count_nvidia_pci_devices",
    "findings",
    "main",
    "probe_atari",
    "probe_cpu",
    "probe_disk",
    "probe_gpus",
    "probe_memory",
    "probe_packages",
    "probe_system",
    "probe_torch",
    "recommend_settings",
    "render_text",
    "resolve_runs_dir",
]

SCHEMA_VERSION = 1
GIB = 2**30
RUNS_DIR_ENV = "RETRO_ML_RUNS_DIR"  # same variable runstore.paths reads

# Free space under the runs folder: checkpoints are small, but videos, TensorBoard files and
# especially a saved DQN replay buffer (gigabytes) add up.
DISK_ERROR_BYTES = 1 * GIB
DISK_WARN_BYTES = 5 * GIB
MEMORY_WARN_BYTES = 2 * GIB
MEMORY_WARN_FRACTION = 0.10
GPU_HOT_CELSIUS = 85
GPU_BUSY_FRACTION = 0.5

# DQN replay buffer: an Atari observation is 84x84 pixels x 4 stacked frames, one byte each.
# SB3 stores it once per transition with optimize_memory_usage, twice (obs and next_obs) without.
ATARI_OBS_BYTES = 84 * 84 * 4
DQN_BUFFER_TARGET = 100_000  # RL Zoo's Atari DQN buffer_size
RAM_BUDGET_FRACTION = 0.5  # of available RAM; the rest is for envs, the network, the OS
MAX_RECOMMENDED_ENVS = 16

PACKAGES = {
    "stable_baselines3": "stable-baselines3",
    "gymnasium": "gymnasium",
    "ale_py": "ale-py",
    "torch": "torch",
    "numpy": "numpy",
    "psutil": "psutil",
    "nvidia_ml_py": "nvidia-ml-py",
}
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


# --------------------------------------------------------------------------------------------
# Small helpers


def resolve_runs_dir(runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """The runs folder: the explicit argument, else $RETRO_ML_RUNS_DIR, else ./runs."""
    if runs_dir:
        return Path(runs_dir)
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


def _text(value: Any) -> str:
    """NVML returns bytes in old nvidia-ml-py releases and str in new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _error_text(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _safe(fn: Callable[[], Any], default: Any = None) -> Any:
    """One optional reading (power, temperature...) that a GPU or OS may not support."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - an unsupported reading is simply absent
        return default


def _gib(n: float | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f} GiB"


def _guard(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one probe; its failure becomes data for findings(), never a crashed report."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - see docstring
        return {"probe_error": _error_text(exc)}


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


# --------------------------------------------------------------------------------------------
# Probes


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
        out = _safe(
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
    affinity = _safe(lambda: len(os.sched_getaffinity(0)))
    load = _safe(os.getloadavg)
    freq = _safe(psutil.cpu_freq)
    return {
        "model": _safe(_cpu_model),
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
        raw = _safe(lambda f=limit_file: f.read_text().strip())
        if raw and raw.isdigit() and int(raw) < 2**60:
            usage = _safe(lambda f=usage_file: int(f.read_text().strip()))
            return int(raw), usage
    return None, None


def probe_memory() -> dict[str, Any]:
    """RAM decides the DQN replay buffer size and how many runs fit side by side."""
    vm = psutil.virtual_memory()
    swap = _safe(psutil.swap_memory)
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


def count_nvidia_pci_devices(root: Path = Path("/sys/bus/pci/devices")) -> int | None:
    """NVIDIA display/3D controllers on the PCI bus (Linux), or None where we cannot look.

    This tells "no GPU here" (calm) apart from "a GPU whose driver does not work" (a problem)
    when NVML cannot load."""
    if not root.is_dir():
        return None
    count = 0
    for device in root.iterdir():
        vendor = _safe(lambda d=device: (d / "vendor").read_text().strip().lower(), "")
        klass = _safe(lambda d=device: (d / "class").read_text().strip().lower(), "")
        if vendor == "0x10de" and klass.startswith("0x03"):
            count += 1
    return count


def _nvml_error_kind(exc: BaseException) -> str:
    name = type(exc).__name__
    return {
        "NVMLError_LibraryNotFound": "library_not_found",
        "NVMLError_DriverNotLoaded": "driver_not_loaded",
        "NVMLError_NoPermission": "no_permission",
        "NVMLError_LibRmVersionMismatch": "driver_library_mismatch",
    }.get(name, "other")


def _nvml_device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _safe(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    util = _safe(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    capability = _safe(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
    power_mw = _safe(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    limit_mw = _safe(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
    processes = []
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for proc in _safe(lambda g=getter: getattr(nvml, g)(handle), []) or []:
            used = getattr(proc, "usedGpuMemory", None)
            if isinstance(used, int) and used >= 2**62:  # NVML_VALUE_NOT_AVAILABLE
                used = None
            if any(p["pid"] == proc.pid for p in processes):
                continue
            processes.append(
                {
                    "pid": int(proc.pid),
                    "name": _safe(lambda p=proc: psutil.Process(p.pid).name()),
                    "used_memory_bytes": used,
                }
            )
    return {
        "index": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "uuid": _safe(lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
        "memory_total_bytes": int(memory.total) if memory else None,
        "memory_used_bytes": int(memory.used) if memory else None,
        "memory_free_bytes": int(memory.free) if memory else None,
        "utilization_gpu_percent": int(util.gpu) if util else None,
        "utilization_memory_percent": int(util.memory) if util else None,
        "temperature_c": _safe(lambda: int(nvml.nvmlDeviceGetTemperature(handle, sensor))),
        "power_w": round(power_mw / 1000, 1) if power_mw is not None else None,
        "power_limit_w": round(limit_mw / 1000, 1) if limit_mw is not None else None,
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "processes": processes,
    }


def probe_gpus(nvml: Any = None) -> dict[str, Any]:
    """Every NVIDIA GPU as the driver sees it (NVML), independent of PyTorch: the driver's own
    CUDA version and each GPU's compute capability are what the PyTorch build must match.

    ``nvml`` is the ``pynvml`` module, or a stand-in with the same functions for tests."""
    report: dict[str, Any] = {
        "nvml_available": False,
        "error": None,
        "error_kind": None,
        "driver_version": None,
        "cuda_driver_version": None,
        "nvml_version": None,
        "nvidia_pci_devices": _safe(count_nvidia_pci_devices),
        "devices": [],
    }
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as exc:
            report.update(error=_error_text(exc), error_kind="module_missing")
            return report
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses; absence is normal
        report.update(error=_error_text(exc), error_kind=_nvml_error_kind(exc))
        return report
    try:
        report["nvml_available"] = True
        report["driver_version"] = _safe(lambda: _text(nvml.nvmlSystemGetDriverVersion()))
        cuda = _safe(lambda: nvml.nvmlSystemGetCudaDriverVersion_v2()) or _safe(
            lambda: nvml.nvmlSystemGetCudaDriverVersion()
        )
        parsed = parse_cuda_version(cuda)
        report["cuda_driver_version"] = f"{parsed[0]}.{parsed[1]}" if parsed else None
        report["nvml_version"] = _safe(lambda: _text(nvml.nvmlSystemGetNVMLVersion()))
        for index in range(int(nvml.nvmlDeviceGetCount())):
            try:
                report["devices"].append(_nvml_device(nvml, index))
            except Exception as exc:  # noqa: BLE001 - one broken GPU must not hide the others
                report["devices"].append({"index": index, "error": _error_text(exc)})
    finally:
        _safe(nvml.nvmlShutdown)
    return report


def _smoke_test(torch: Any, index: int) -> str:
    """A matmul (cuBLAS) and the Nature-CNN first convolution (cuDNN) on one GPU: the two
    libraries Atari training leans on. Catches a build without kernels for this GPU, which
    torch.cuda.is_available() does not."""
    try:
        device = f"cuda:{index}"
        x = torch.ones(64, 64, device=device)
        (x @ x).sum().item()
        frames = torch.ones(1, 4, 84, 84, device=device)
        kernel = torch.ones(32, 4, 8, 8, device=device)
        torch.nn.functional.conv2d(frames, kernel, stride=4).sum().item()
        torch.cuda.synchronize(index)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the failure text is the result
        return _error_text(exc)


def probe_torch(torch_module: Any = None, *, smoke_test: bool = True) -> dict[str, Any]:
    """The PyTorch build (its CUDA and cuDNN, the GPU architectures it has code for) and whether
    CUDA really works here. Warnings torch emits while looking (e.g. "The NVIDIA driver on your
    system is too old") are kept: they name the cause when CUDA is unusable.

    The only place this module imports torch. ``torch_module`` is a stand-in for tests."""
    report: dict[str, Any] = {
        "installed": False,
        "version": None,
        "cuda_build": None,
        "cudnn_version": None,
        "cuda_available": False,
        "device_count": 0,
        "arch_list": [],
        "devices": [],
        "smoke_test": None,
        "warnings": [],
        "error": None,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch = torch_module
        if torch is None:
            try:
                import torch
            except ImportError as exc:
                report["error"] = _error_text(exc)
                return report
        report["installed"] = True
        report["version"] = str(torch.__version__)
        report["cuda_build"] = getattr(torch.version, "cuda", None)
        report["cudnn_version"] = _safe(torch.backends.cudnn.version)
        report["arch_list"] = list(_safe(torch.cuda.get_arch_list, []) or [])
        try:
            report["cuda_available"] = bool(torch.cuda.is_available())
        except Exception as exc:  # noqa: BLE001
            report["error"] = _error_text(exc)
        if report["cuda_available"]:
            report["device_count"] = int(torch.cuda.device_count())
            for index in range(report["device_count"]):
                capability = _safe(lambda i=index: torch.cuda.get_device_capability(i))
                free_total = _safe(lambda i=index: torch.cuda.mem_get_info(i))
                report["devices"].append(
                    {
                        "index": index,
                        "name": _safe(lambda i=index: str(torch.cuda.get_device_name(i))),
                        "capability": f"{capability[0]}.{capability[1]}" if capability else None,
                        "memory_free_bytes": int(free_total[0]) if free_total else None,
                        "memory_total_bytes": int(free_total[1]) if free_total else None,
                    }
                )
            if smoke_test:
                results = [_smoke_test(torch, i) for i in range(report["device_count"])]
                failed = [r for r in results if r != "ok"]
                report["smoke_test"] = failed[0] if failed else "ok"
            else:
                report["smoke_test"] = "skipped"
    report["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    return report


def probe_packages() -> dict[str, Any]:
    """Installed versions, read from package metadata so nothing heavy is imported."""
    versions: dict[str, Any] = {}
    for key, dist in PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def probe_atari() -> dict[str, Any]:
    """How many Atari ROMs ale-py can load. ale-py >= 0.9 ships them; ALE_ROMS_DIR, when set,
    replaces the bundled folder (ale_py/roms/__init__.py get_rom_path)."""
    import ale_py
    import ale_py.roms as roms

    bundled = Path(roms.__file__).parent
    override = os.environ.get("ALE_ROMS_DIR")
    roms_dir = Path(override) if override else bundled
    if hasattr(roms, "get_all_rom_ids"):
        known = list(roms.get_all_rom_ids())
        available = sum((roms_dir / f"{rom}.bin").is_file() for rom in known)
    else:  # older ale-py layouts: count the ROM files themselves
        known = sorted(p.stem for p in roms_dir.glob("*.bin"))
        available = len(known)
    return {
        "ale_py_version": getattr(ale_py, "__version__", None),
        "roms_dir": str(roms_dir),
        "roms_dir_from_env": bool(override),
        "roms_known": len(known),
        "roms_available": available,
    }


def build_report(
    runs_dir: str | os.PathLike[str] | None = None,
    *,
    nvml: Any = None,
    torch_module: Any = None,
    smoke_test: bool = True,
) -> dict[str, Any]:
    """Run every probe and return one JSON-serialisable report, with findings and recommended
    settings included so a reader of ``--json`` needs nothing else."""
    resolved = resolve_runs_dir(runs_dir)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs_dir": str(resolved.expanduser().absolute()),
        "system": _guard(probe_system),
        "cpu": _guard(probe_cpu),
        "memory": _guard(probe_memory),
        "disk": _guard(lambda: probe_disk(resolved)),
        "gpus": _guard(lambda: probe_gpus(nvml)),
        "torch": _guard(lambda: probe_torch(torch_module, smoke_test=smoke_test)),
        "packages": _guard(probe_packages),
        "atari": _guard(probe_atari),
    }
    report["recommendations"] = recommend_settings(report)
    report["findings"] = findings(report)
    return report


# --------------------------------------------------------------------------------------------
# Findings


def _sm(arch: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"(sm|compute)_(\d+)[a-z]?", arch.strip())
    return (match[1], int(match[2])) if match else None


def arch_supported(capability: str | None, arch_list: list[str]) -> bool | None:
    """Whether a build with these architectures runs on a GPU of this compute capability, or
    None when we cannot tell (no capability, or a build that lists none).

    NVIDIA's rule: compiled code (sm_XY) runs on the same major version with an equal or higher
    minor (sm_80 runs on 8.6); PTX (compute_XY) is compiled at load time for any GPU at XY or
    newer. Arch-specific builds (sm_90a) run only on exactly that GPU."""
    if not capability or not arch_list:
        return None
    parsed = parse_cuda_version(capability)
    if parsed is None:
        return None
    device = parsed[0] * 10 + parsed[1]
    for arch in arch_list:
        entry = _sm(arch)
        if entry is None:
            continue
        kind, code = entry
        specific = arch.strip()[-1].isalpha()
        if kind == "compute" and device >= code:
            return True
        if kind == "sm" and (
            device == code or (not specific and device // 10 == code // 10 and device >= code)
        ):
            return True
    return False


def _finding(code: str, severity: str, title: str, steps: list[str], detail: str = "") -> dict:
    return {"code": code, "severity": severity, "title": title, "steps": steps, "detail": detail}


def _cpu_steps(report: dict[str, Any]) -> list[str]:
    rec = recommend_settings(report)
    dqn = rec["dqn"]
    return [
        f"Use device: cpu (or auto), n_envs: {rec['n_envs']} and vec_env: {rec['vec_env']}. "
        f"{rec['vec_env_reason']}",
        "PPO needs no replay buffer; for DQN keep buffer_size at or below "
        f"{dqn['buffer_size']:,}"
        + (" with optimize_memory_usage: true" if dqn["optimize_memory_usage"] else "")
        + " on this machine.",
        "Atari CNNs train much more slowly on a CPU than on a GPU: start with a short run "
        "(e.g. n_timesteps: 1000000) to see the speed here.",
        "If this machine does have an NVIDIA GPU, install its driver: nvidia-smi must list it.",
    ]


def _gpu_list(report: dict[str, Any]) -> list[dict[str, Any]]:
    """GPUs with a name and compute capability, from NVML, else from torch."""
    nvml_devices = [d for d in report.get("gpus", {}).get("devices", []) if "error" not in d]
    if nvml_devices:
        return [
            {"index": d["index"], "name": d.get("name"), "capability": d.get("compute_capability")}
            for d in nvml_devices
        ]
    return list(report.get("torch", {}).get("devices", []))


def _reinstall_step(driver_cuda: str | None) -> str:
    url = pytorch_index_url(driver_cuda) if driver_cuda else None
    if url:
        return (
            f"Install the PyTorch build for your driver (CUDA {driver_cuda}): "
            f"pip uninstall -y torch && pip install torch --index-url {url}"
        )
    if driver_cuda:
        return (
            f"Your driver supports only CUDA {driver_cuda}, older than current PyTorch builds: "
            "update the NVIDIA driver first, then reinstall PyTorch from "
            "https://pytorch.org/get-started/locally/."
        )
    return (
        "Install a CUDA build of PyTorch: pick the command for your CUDA version at "
        "https://pytorch.org/get-started/locally/ (pip uninstall -y torch first)."
    )


def _gpu_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    gpus = report.get("gpus", {})
    torch = report.get("torch", {})
    if "probe_error" in gpus or "probe_error" in torch:
        return out
    devices = [d for d in gpus.get("devices", []) if "error" not in d]
    pci = gpus.get("nvidia_pci_devices") or 0
    cuda_ok = bool(torch.get("cuda_available"))
    driver_cuda = gpus.get("cuda_driver_version")

    if not gpus.get("nvml_available"):
        kind = gpus.get("error_kind")
        if pci > 0:
            steps = {
                "library_not_found": [
                    "Install the NVIDIA driver for your GPU and reboot; nvidia-smi must list it.",
                    "In Docker, start the container with --gpus all (NVIDIA Container Toolkit).",
                ],
                "driver_not_loaded": [
                    "Reboot: the driver module is installed but not loaded (common right after "
                    "an update).",
                    "With Secure Boot on, the unsigned NVIDIA module may be refused: enroll its "
                    "key or turn Secure Boot off.",
                ],
                "driver_library_mismatch": [
                    "Reboot: the driver was updated but the old kernel module is still loaded.",
                ],
            }.get(kind, ["Run nvidia-smi to see what the driver reports, then reboot."])
            out.append(
                _finding(
                    "nvidia_driver_not_working",
                    "error",
                    f"An NVIDIA GPU is installed but its driver does not work ({kind})",
                    [*steps, "Until then, training runs on the CPU (device: cpu or auto)."],
                    gpus.get("error") or "",
                )
            )
        elif not cuda_ok:
            out.append(
                _finding(
                    "no_nvidia_gpu",
                    "info",
                    "No NVIDIA GPU found; training runs on the CPU",
                    _cpu_steps(report),
                    gpus.get("error") or "",
                )
            )
    elif not devices and not cuda_ok:
        out.append(
            _finding(
                "no_nvidia_gpu",
                "info",
                "No NVIDIA GPU found; training runs on the CPU",
                _cpu_steps(report),
                "the NVIDIA driver is loaded but lists no GPU",
            )
        )

    for device in gpus.get("devices", []):
        if "error" in device:
            out.append(
                _finding(
                    "gpu_unreadable",
                    "warning",
                    f"GPU {device['index']} could not be read",
                    ["Run nvidia-smi; if it shows an error for this GPU, reboot the machine."],
                    device["error"],
                )
            )

    if not torch.get("installed"):
        return out  # reported by _package_findings

    gpu_list = _gpu_list(report)
    if not gpu_list:
        return out

    if not torch.get("cuda_build"):
        out.append(
            _finding(
                "torch_cpu_only_build",
                "warning",
                "PyTorch is a CPU-only build, so the GPU is not used",
                [
                    _reinstall_step(driver_cuda),
                    "Until then, runs with device: auto train on the CPU; device: cuda fails.",
                ],
                f"torch {torch.get('version')} has no CUDA support",
            )
        )
        return out

    blocking = False
    build = parse_cuda_version(torch.get("cuda_build"))
    driver = parse_cuda_version(driver_cuda)
    if build and driver and driver < build:
        major_gap = driver[0] < build[0]
        blocking = major_gap
        out.append(
            _finding(
                "driver_older_than_torch_cuda",
                "error" if major_gap else "warning",
                f"The NVIDIA driver (CUDA {driver_cuda}) is older than PyTorch's CUDA "
                f"{torch.get('cuda_build')}",
                [
                    "Update the NVIDIA driver (https://www.nvidia.com/Download/index.aspx or "
                    "your distribution's driver package) and reboot.",
                    _reinstall_step(driver_cuda),
                ]
                + (
                    []
                    if major_gap
                    else [
                        "Within one CUDA major version this usually works (minor version "
                        "compatibility), but some kernels can fail to load; fix it if you see "
                        "CUDA errors."
                    ]
                ),
                f"driver {gpus.get('driver_version')} supports CUDA up to {driver_cuda}",
            )
        )

    arch_list = list(torch.get("arch_list") or [])
    for gpu in gpu_list:
        if arch_supported(gpu.get("capability"), arch_list) is False:
            blocking = True
            sm = "sm_" + str(gpu["capability"]).replace(".", "")
            out.append(
                _finding(
                    "gpu_arch_not_in_build",
                    "error",
                    f"PyTorch {torch.get('version')} has no code for {gpu.get('name')} ({sm})",
                    [
                        f"Install a PyTorch build whose architecture list includes {sm}: newer "
                        "GPUs need a newer PyTorch and CUDA (https://pytorch.org/get-started/"
                        "locally/), older GPUs an older PyTorch release.",
                        "Until then set device: cpu.",
                    ],
                    f"GPU compute capability {gpu['capability']}; build has {' '.join(arch_list)}",
                )
            )

    if not cuda_ok:
        if not blocking:
            explained = diagnose(
                "\n".join(torch.get("warnings") or []) + (torch.get("error") or "")
            )
            out.append(
                _finding(
                    "torch_cuda_unusable",
                    "error",
                    explained.title if explained else "PyTorch cannot use the GPU",
                    list(explained.steps)
                    if explained
                    else [
                        "Run nvidia-smi: if it fails, repair the driver and reboot.",
                        "Check that CUDA_VISIBLE_DEVICES is unset or names a real GPU.",
                        "Until then set device: cpu.",
                    ],
                    explained.evidence if explained else "torch.cuda.is_available() is False",
                )
            )
        return out

    smoke = torch.get("smoke_test")
    if smoke not in (None, "ok", "skipped"):
        explained = diagnose(smoke)
        if blocking and explained and explained.code == "cuda_no_kernel_image":
            return out  # the architecture finding above already says why, and what to do
        out.append(
            _finding(
                "cuda_smoke_test_failed",
                "error",
                f"A test calculation on the GPU failed: {explained.title}"
                if explained
                else "A test calculation on the GPU failed",
                list(explained.steps) if explained else ["Set device: cpu until this is fixed."],
                smoke,
            )
        )
    elif not blocking:
        names = ", ".join(str(g.get("name")) for g in gpu_list)
        out.append(
            _finding(
                "gpu_ready",
                "info",
                f"GPU ready: {names}",
                ["Use device: cuda (or auto) in run configs."],
                f"torch {torch.get('version')}, CUDA {torch.get('cuda_build')}, "
                f"driver {gpus.get('driver_version') or '?'}",
            )
        )

    for device in devices:
        total, used = device.get("memory_total_bytes"), device.get("memory_used_bytes")
        if total and used is not None and used > GPU_BUSY_FRACTION * total:
            procs = ", ".join(
                f"{p.get('name') or 'pid'} {p['pid']} ({_gib(p.get('used_memory_bytes'))})"
                for p in device.get("processes", [])
            )
            out.append(
                _finding(
                    "gpu_memory_in_use",
                    "info",
                    f"GPU {device['index']} memory is mostly in use "
                    f"({_gib(used)} of {_gib(total)})",
                    [
                        "Other programs or runs hold GPU memory; a new run may run out of it.",
                        "Stop runs you do not need, or give new runs a smaller batch_size.",
                    ],
                    procs,
                )
            )
        temp = device.get("temperature_c")
        if temp is not None and temp >= GPU_HOT_CELSIUS:
            out.append(
                _finding(
                    "gpu_hot",
                    "warning",
                    f"GPU {device['index']} is hot ({temp} °C)",
                    [
                        "Check the fans and airflow; a hot GPU slows itself down and can "
                        "cause errors.",
                    ],
                )
            )
    return out


def _resource_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    disk = report.get("disk", {})
    free = disk.get("free_bytes")
    if free is not None and free < DISK_WARN_BYTES:
        severe = free < DISK_ERROR_BYTES
        out.append(
            _finding(
                "low_disk",
                "error" if severe else "warning",
                f"{'Almost no' if severe else 'Low'} free disk space for runs ({_gib(free)})",
                [
                    "Delete runs you no longer need, or old checkpoints and videos inside them.",
                    "Keep save_replay_buffer off: a DQN replay buffer is gigabytes per save.",
                    "Or move the runs folder to a bigger drive (RETRO_ML_RUNS_DIR).",
                ],
                f"{disk.get('measured_path')}: {_gib(free)} free of "
                f"{_gib(disk.get('total_bytes'))}",
            )
        )
    memory = report.get("memory", {})
    available = memory.get("effective_available_bytes")
    total = memory.get("effective_total_bytes")
    if (
        available is not None
        and total
        and (available < MEMORY_WARN_BYTES or available < MEMORY_WARN_FRACTION * total)
    ):
        out.append(
            _finding(
                "low_memory",
                "warning",
                f"Low free memory ({_gib(available)} of {_gib(total)})",
                [
                    "Close programs or stop runs you do not need.",
                    "Use fewer n_envs and, for DQN, a smaller buffer_size with "
                    "optimize_memory_usage: true (see the recommended settings).",
                ],
            )
        )
    return out


def _package_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    packages = report.get("packages", {})
    for key in ("stable_baselines3", "gymnasium", "ale_py"):
        if key in packages and packages[key] is None:
            dist = PACKAGES[key]
            out.append(
                _finding(
                    "package_missing",
                    "error",
                    f"{dist} is not installed",
                    [f"pip install {dist} (or reinstall the project: pip install -e .)"],
                )
            )
    torch = report.get("torch", {})
    if torch and "probe_error" not in torch and not torch.get("installed"):
        driver_cuda = report.get("gpus", {}).get("cuda_driver_version")
        out.append(
            _finding(
                "torch_missing",
                "error",
                "PyTorch is not installed",
                [
                    _reinstall_step(driver_cuda)
                    if driver_cuda
                    else "pip install torch (the CPU build is fine without an NVIDIA GPU)"
                ],
                torch.get("error") or "",
            )
        )
    atari = report.get("atari", {})
    available = atari.get("roms_available")
    if available == 0:
        out.append(
            _finding(
                "no_atari_roms",
                "error",
                "No Atari ROMs found",
                [
                    "Unset ALE_ROMS_DIR unless you keep your own ROMs there.",
                    "Reinstall ale-py, which includes the ROMs: pip install --force-reinstall "
                    "ale-py",
                ],
                f"looked in {atari.get('roms_dir')}",
            )
        )
    elif available is not None and available < (atari.get("roms_known") or 0):
        out.append(
            _finding(
                "atari_roms_incomplete",
                "warning",
                f"Only {available} of {atari.get('roms_known')} Atari ROMs are present",
                ["Reinstall ale-py (pip install --force-reinstall ale-py) or fix ALE_ROMS_DIR."],
                f"looked in {atari.get('roms_dir')}",
            )
        )
    return out


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Problems and notable facts, most severe first: each ``{code, severity, title, steps,
    detail}`` with severity "error", "warning" or "info". Pure: reads only the report."""
    out: list[dict[str, Any]] = []
    for section in ("system", "cpu", "memory", "disk", "gpus", "torch", "packages", "atari"):
        error = report.get(section, {}).get("probe_error")
        if error:
            out.append(
                _finding(
                    "probe_failed",
                    "warning",
                    f"Could not check {section}",
                    [
                        "The rest of the report is still valid.",
                        "If this persists, include python -m training.diagnostics --json in a "
                        "bug report.",
                    ],
                    error,
                )
            )
    out += _gpu_findings(report)
    out += _resource_findings(report)
    out += _package_findings(report)
    out.sort(key=lambda f: _SEVERITY_ORDER.get(f["severity"], 3))
    return out


# --------------------------------------------------------------------------------------------
# Recommendations


def _round_down(n: int) -> int:
    step = 10_000 if n >= 10_000 else 1_000
    return max(step, n // step * step) if n >= 1_000 else max(0, n)


def recommend_settings(report: dict[str, Any]) -> dict[str, Any]:
    """Settings that suit this machine, each with the reason, for the new-run form.

    - device: cuda only when PyTorch can use a GPU and the test calculation passed.
    - n_envs: one environment per physical core (at most 16): more only adds waiting.
    - vec_env: subprocesses pay off with 4+ cores; with fewer, workers compete with training.
    - DQN buffer_size: an Atari transition costs 84*84*4 bytes with optimize_memory_usage, twice
      that without; the buffer may use half of the free RAM.
    """
    cpu = report.get("cpu", {})
    cores = cpu.get("physical_cores") or cpu.get("usable_cores") or cpu.get("logical_cores") or 1
    usable = cpu.get("usable_cores")
    if usable:
        cores = min(cores, usable)
    n_envs = max(1, min(int(cores), MAX_RECOMMENDED_ENVS))

    torch = report.get("torch", {})
    gpu_ok = bool(torch.get("cuda_available")) and torch.get("smoke_test") in (
        None,
        "ok",
        "skipped",
    )
    if gpu_ok:
        device, device_reason = "cuda", "PyTorch can use the GPU."
    elif torch.get("cuda_available"):
        device, device_reason = "cpu", "A test calculation on the GPU failed."
    else:
        device, device_reason = "cpu", "PyTorch cannot use a GPU on this machine."

    if n_envs >= 2 and cores >= 4:
        vec_env = "subproc"
        vec_reason = "With 4 or more cores, stepping the games in parallel processes pays off."
    else:
        vec_env = "dummy"
        vec_reason = (
            "With fewer than 4 cores, worker processes compete with training for the same cores."
        )

    memory = report.get("memory", {})
    available = memory.get("effective_available_bytes") or memory.get("available_bytes") or 0
    budget = int(available * RAM_BUDGET_FRACTION)
    fit_optimized = budget // ATARI_OBS_BYTES
    fit_plain = budget // (2 * ATARI_OBS_BYTES)
    if fit_plain >= DQN_BUFFER_TARGET:
        buffer_size, optimize = DQN_BUFFER_TARGET, False
        dqn_reason = "The RL Zoo's 100,000 transitions fit in half of the free RAM."
    elif fit_optimized >= DQN_BUFFER_TARGET:
        buffer_size, optimize = DQN_BUFFER_TARGET, True
        dqn_reason = "100,000 transitions fit in half of the free RAM only when stored once."
    else:
        buffer_size, optimize = _round_down(int(fit_optimized)), True
        dqn_reason = "Free RAM is short: a smaller buffer, stored once per transition."
    per_transition = ATARI_OBS_BYTES * (1 if optimize else 2)
    return {
        "device": device,
        "device_reason": device_reason,
        "n_envs": n_envs,
        "vec_env": vec_env,
        "vec_env_reason": vec_reason,
        "dqn": {
            "buffer_size": buffer_size,
            "optimize_memory_usage": optimize,
            "bytes_per_transition": per_transition,
            "buffer_bytes": buffer_size * per_transition,
            "ram_budget_bytes": budget,
            "max_buffer_size_optimized": int(fit_optimized),
            "max_buffer_size_plain": int(fit_plain),
            "reason": dqn_reason,
        },
        "notes": [
            "Observations are 84x84 grey frames stacked 4 deep (frame_stack: 4), one byte each.",
            "SB3's optimize_memory_usage needs replay_buffer_kwargs handle_timeout_termination: "
            "false.",
        ],
    }


# --------------------------------------------------------------------------------------------
# Text rendering and command line


def _line(label: str, value: str) -> str:
    return f"{label:<9}{value}"


def render_text(report: dict[str, Any]) -> str:
    """The report as plain text for a terminal or a bug report."""
    lines = [f"Retro ML diagnostics ({report.get('generated_at', '')})", ""]
    system = report.get("system", {})
    lines.append(
        _line(
            "System",
            system.get("probe_error")
            or f"{system.get('os')} | Python {system.get('python_version')} "
            f"({system.get('python_implementation')})",
        )
    )
    cpu = report.get("cpu", {})
    lines.append(
        _line(
            "CPU",
            cpu.get("probe_error")
            or f"{cpu.get('model') or 'unknown model'}, {cpu.get('physical_cores')} physical / "
            f"{cpu.get('logical_cores')} logical cores",
        )
    )
    mem = report.get("memory", {})
    mem_text = mem.get("probe_error") or (
        f"{_gib(mem.get('effective_available_bytes'))} available of "
        f"{_gib(mem.get('effective_total_bytes'))}"
        + (" (container limit)" if mem.get("cgroup_limit_bytes") else "")
    )
    lines.append(_line("Memory", mem_text))
    disk = report.get("disk", {})
    disk_text = disk.get("probe_error") or (
        f"{disk.get('runs_dir')}{'' if disk.get('exists') else ' (not created yet)'}: "
        f"{_gib(disk.get('free_bytes'))} free of {_gib(disk.get('total_bytes'))}"
    )
    lines.append(_line("Disk", disk_text))

    gpus = report.get("gpus", {})
    if gpus.get("probe_error"):
        lines.append(_line("GPUs", gpus["probe_error"]))
    elif not gpus.get("nvml_available"):
        lines.append(_line("GPUs", f"none visible (NVML: {gpus.get('error')})"))
    else:
        lines.append(
            _line(
                "GPUs",
                f"{len(gpus.get('devices', []))} | driver {gpus.get('driver_version')}, "
                f"supports CUDA up to {gpus.get('cuda_driver_version')}",
            )
        )
        for d in gpus.get("devices", []):
            if "error" in d:
                lines.append(f"   GPU {d['index']}: {d['error']}")
                continue
            lines.append(
                f"   GPU {d['index']}: {d.get('name')}, compute capability "
                f"{d.get('compute_capability')}, memory {_gib(d.get('memory_used_bytes'))} used "
                f"of {_gib(d.get('memory_total_bytes'))}, util {d.get('utilization_gpu_percent')}%"
                f", {d.get('temperature_c')} °C, {d.get('power_w')} W / {d.get('power_limit_w')} W"
            )
            for p in d.get("processes", []):
                lines.append(
                    f"      pid {p['pid']} {p.get('name') or '(name unknown)'}, "
                    f"{_gib(p.get('used_memory_bytes'))}"
                )

    torch = report.get("torch", {})
    if torch.get("probe_error") or not torch.get("installed"):
        lines.append(_line("PyTorch", torch.get("probe_error") or "not installed"))
    else:
        lines.append(
            _line(
                "PyTorch",
                f"{torch.get('version')}, CUDA build {torch.get('cuda_build') or 'none'}, "
                f"cuDNN {torch.get('cudnn_version') or 'none'}, CUDA usable: "
                f"{'yes' if torch.get('cuda_available') else 'no'}"
                + (f", test: {torch.get('smoke_test')}" if torch.get("smoke_test") else ""),
            )
        )
        if torch.get("arch_list"):
            lines.append(f"   built for {' '.join(torch['arch_list'])}")
    packages = report.get("packages", {})
    atari = report.get("atari", {})
    roms = (
        atari.get("probe_error")
        or f"{atari.get('roms_available')}/{atari.get('roms_known')} Atari ROMs"
    )
    lines.append(
        _line(
            "Packages",
            packages.get("probe_error")
            or f"stable-baselines3 {packages.get('stable_baselines3')}, gymnasium "
            f"{packages.get('gymnasium')}, ale-py {packages.get('ale_py')} ({roms})",
        )
    )

    rec = report.get("recommendations") or recommend_settings(report)
    dqn = rec["dqn"]
    lines += [
        "",
        "Recommended settings",
        f"  device: {rec['device']}  ({rec['device_reason']})",
        f"  n_envs: {rec['n_envs']}, vec_env: {rec['vec_env']}  ({rec['vec_env_reason']})",
        f"  DQN buffer_size: {dqn['buffer_size']:,}, optimize_memory_usage: "
        f"{str(dqn['optimize_memory_usage']).lower()}  (about {_gib(dqn['buffer_bytes'])}. "
        f"{dqn['reason']})",
        "",
        "Findings",
    ]
    found = report.get("findings")
    if found is None:
        found = findings(report)
    if not found:
        lines.append("  none")
    for f in found:
        lines.append(f"  [{f['severity']}] {f['title']}")
        if f.get("detail"):
            lines.append(f"      ({f['detail']})")
        for step in f["steps"]:
            lines.append(f"      - {step}")
    return "\n".join(lines) + "\n"


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


if __name__ == "__main__":
    sys.exit(main())
