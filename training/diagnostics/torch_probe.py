"""The PyTorch half of the report: the build, whether CUDA really works, and a test calculation
on each GPU. The only place the diagnostics import torch."""

from __future__ import annotations

import warnings
from typing import Any

from machine.util import error_text, safe

__all__ = ["probe_torch"]


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
        return error_text(exc)


def _device(torch: Any, index: int) -> dict[str, Any]:
    capability = safe(lambda: torch.cuda.get_device_capability(index))
    free_total = safe(lambda: torch.cuda.mem_get_info(index))
    return {
        "index": index,
        "name": safe(lambda: str(torch.cuda.get_device_name(index))),
        "capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "memory_free_bytes": int(free_total[0]) if free_total else None,
        "memory_total_bytes": int(free_total[1]) if free_total else None,
    }


def _probe_cuda(torch: Any, report: dict[str, Any], smoke_test: bool) -> None:
    """The build's CUDA side into ``report``: its architectures, the GPUs and the test."""
    report["cuda_build"] = getattr(torch.version, "cuda", None)
    report["cudnn_version"] = safe(torch.backends.cudnn.version)
    report["arch_list"] = list(safe(torch.cuda.get_arch_list, []) or [])
    try:
        report["cuda_available"] = bool(torch.cuda.is_available())
    except Exception as exc:  # noqa: BLE001
        report["error"] = error_text(exc)
    if not report["cuda_available"]:
        return
    report["device_count"] = int(torch.cuda.device_count())
    report["devices"] = [_device(torch, i) for i in range(report["device_count"])]
    if smoke_test:
        results = [_smoke_test(torch, i) for i in range(report["device_count"])]
        failed = [r for r in results if r != "ok"]
        report["smoke_test"] = failed[0] if failed else "ok"
    else:
        report["smoke_test"] = "skipped"


def probe_torch(torch_module: Any = None, *, smoke_test: bool = True) -> dict[str, Any]:
    """The PyTorch build (its CUDA and cuDNN, the GPU architectures it has code for) and whether
    CUDA really works here. Warnings torch emits while looking (e.g. "The NVIDIA driver on your
    system is too old") are kept: they name the cause when CUDA is unusable.

    ``torch_module`` is a stand-in for tests."""
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
                report["error"] = error_text(exc)
                return report
        report["installed"] = True
        report["version"] = str(torch.__version__)
        _probe_cuda(torch, report, smoke_test)
    report["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    return report
