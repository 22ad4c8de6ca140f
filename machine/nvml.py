"""NVML (nvidia-ml-py), opened one way by everyone who reads the GPUs: the diagnostics report,
the trainer's resource sampler and the runner's GPU choice. NVML needs no CUDA context.

:func:`nvml_session` opens it for one reading and shuts it down after; :func:`open_nvml` and
:func:`close_nvml` do the same for a reader that keeps it open (the sampler). Opening raises
:class:`NvmlUnavailable`, with the reason and its kind, on a machine without a working NVIDIA
driver, which is normal there. Every function takes a stand-in module with pynvml's names, so
tests walk the GPU paths on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from machine.cuda import cuda_label
from machine.util import error_text, safe, text

__all__ = [
    "NvmlUnavailable",
    "close_nvml",
    "count_nvidia_pci_devices",
    "gpu_processes",
    "gpus_by_free_memory",
    "nvml_session",
    "open_nvml",
    "probe_gpus",
]

NVML_VALUE_NOT_AVAILABLE = 2**62  # usedGpuMemory at or above this means "not reported"
_PROCESS_GETTERS = ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses")
_ERROR_KINDS = {
    "NVMLError_LibraryNotFound": "library_not_found",
    "NVMLError_DriverNotLoaded": "driver_not_loaded",
    "NVMLError_NoPermission": "no_permission",
    "NVMLError_LibRmVersionMismatch": "driver_library_mismatch",
}


class NvmlUnavailable(Exception):
    """NVML could not be opened: ``kind`` is module_missing, library_not_found,
    driver_not_loaded, no_permission, driver_library_mismatch or other."""

    def __init__(self, error: str, kind: str):
        super().__init__(error)
        self.error = error
        self.kind = kind


def open_nvml(module: Any = None) -> Any:
    """pynvml (or the stand-in ``module``), initialised. The caller closes it with
    :func:`close_nvml`."""
    if module is None:
        try:
            import pynvml as module
        except ImportError as exc:
            raise NvmlUnavailable(error_text(exc), "module_missing") from exc
    try:
        module.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses; absence is normal
        kind = _ERROR_KINDS.get(type(exc).__name__, "other")
        raise NvmlUnavailable(error_text(exc), kind) from exc
    return module


def close_nvml(nvml: Any) -> None:
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


@contextlib.contextmanager
def nvml_session(module: Any = None) -> Iterator[Any]:
    """NVML open for one ``with`` block (a reading), shut down after it. Raises
    :class:`NvmlUnavailable` on entry like :func:`open_nvml`; a sampler that reads for a
    whole run opens and closes it itself."""
    nvml = open_nvml(module)
    try:
        yield nvml
    finally:
        close_nvml(nvml)


def gpu_processes(nvml: Any, handle: Any) -> list[tuple[int, int | None]]:
    """``[(pid, GPU memory bytes or None)]`` of the processes on one GPU: the compute and the
    graphics lists merged, each pid once (a list NVML cannot read counts as empty)."""
    found: dict[int, int | None] = {}
    for getter in _PROCESS_GETTERS:
        for proc in safe(lambda g=getter: getattr(nvml, g)(handle), []) or []:
            used = getattr(proc, "usedGpuMemory", None)
            if not isinstance(used, int) or used >= NVML_VALUE_NOT_AVAILABLE:
                used = None
            found.setdefault(int(proc.pid), used)
    return list(found.items())


def count_nvidia_pci_devices(root: Path = Path("/sys/bus/pci/devices")) -> int | None:
    """NVIDIA display/3D controllers on the PCI bus (Linux), or None where we cannot look.

    This tells "no GPU here" (calm) apart from "a GPU whose driver does not work" (a problem)
    when NVML cannot load."""
    if not root.is_dir():
        return None
    count = 0
    for device in root.iterdir():
        vendor = safe(lambda d=device: (d / "vendor").read_text().strip().lower(), "")
        klass = safe(lambda d=device: (d / "class").read_text().strip().lower(), "")
        if vendor == "0x10de" and klass.startswith("0x03"):
            count += 1
    return count


def _watts(milliwatts: float | None) -> float | None:
    return round(milliwatts / 1000, 1) if milliwatts is not None else None


def _device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = safe(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    util = safe(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    capability = safe(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
    sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
    processes = [
        {
            "pid": pid,
            "name": safe(lambda p=pid: psutil.Process(p).name()),
            "used_memory_bytes": used,
        }
        for pid, used in gpu_processes(nvml, handle)
    ]
    return {
        "index": index,
        "name": text(nvml.nvmlDeviceGetName(handle)),
        "uuid": safe(lambda: text(nvml.nvmlDeviceGetUUID(handle))),
        "memory_total_bytes": int(memory.total) if memory else None,
        "memory_used_bytes": int(memory.used) if memory else None,
        "memory_free_bytes": int(memory.free) if memory else None,
        "utilization_gpu_percent": int(util.gpu) if util else None,
        "utilization_memory_percent": int(util.memory) if util else None,
        "temperature_c": safe(lambda: int(nvml.nvmlDeviceGetTemperature(handle, sensor))),
        "power_w": _watts(safe(lambda: nvml.nvmlDeviceGetPowerUsage(handle))),
        "power_limit_w": _watts(safe(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))),
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "processes": processes,
    }


def _driver(nvml: Any) -> dict[str, Any]:
    cuda = safe(lambda: nvml.nvmlSystemGetCudaDriverVersion_v2()) or safe(
        lambda: nvml.nvmlSystemGetCudaDriverVersion()
    )
    return {
        "driver_version": safe(lambda: text(nvml.nvmlSystemGetDriverVersion())),
        "cuda_driver_version": cuda_label(cuda),
        "nvml_version": safe(lambda: text(nvml.nvmlSystemGetNVMLVersion())),
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
        "nvidia_pci_devices": safe(count_nvidia_pci_devices),
        "devices": [],
    }
    try:
        with nvml_session(nvml) as session:
            report.update(_driver(session), nvml_available=True)
            for index in range(int(session.nvmlDeviceGetCount())):
                try:
                    report["devices"].append(_device(session, index))
                except Exception as exc:  # noqa: BLE001 - one broken GPU must not hide others
                    report["devices"].append({"index": index, "error": error_text(exc)})
    except NvmlUnavailable as exc:
        report.update(error=exc.error, error_kind=exc.kind)
    return report


def gpus_by_free_memory(nvml: Any = None) -> list[tuple[int, int]] | None:
    """``[(index, free bytes)]`` through NVML, most free first; None when NVML is unavailable
    (no NVIDIA driver, or nvidia-ml-py missing). ``nvml`` is a stand-in for tests."""
    found = []
    try:
        with nvml_session(nvml) as session:
            for index in range(int(session.nvmlDeviceGetCount())):
                with contextlib.suppress(Exception):
                    handle = session.nvmlDeviceGetHandleByIndex(index)
                    found.append((index, int(session.nvmlDeviceGetMemoryInfo(handle).free)))
    except NvmlUnavailable:
        return None
    return sorted(found, key=lambda item: (-item[1], item[0]))
