"""CUDA versions, GPU architectures and the PyTorch build that suits a driver.

The failure classifier and the diagnostics report both turn "your driver supports CUDA X" into
the one command that installs the right PyTorch; this module is where that command lives.
"""

from __future__ import annotations

import re

__all__ = [
    "PYTORCH_CUDA_WHEELS",
    "arch_supported",
    "cuda_label",
    "parse_cuda_version",
    "pytorch_index_url",
    "reinstall_command",
    "reinstall_step",
]

# CUDA versions that download.pytorch.org/whl/cuXYZ indexes exist for. A driver supports every
# CUDA version up to the one nvidia-smi prints, so the right wheel is the newest one not above it.
# The newest entries mirror PYTORCH_RELEASES_CODE_CC in torch/cuda/__init__.py (torch 2.13); a
# test holds this tuple against that table when torch is installed.
PYTORCH_CUDA_WHEELS: tuple[tuple[int, int], ...] = (
    (11, 8),
    (12, 1),
    (12, 4),
    (12, 6),
    (12, 8),
    (12, 9),
    (13, 0),
    (13, 2),
)
PYTORCH_INDEX = "https://download.pytorch.org/whl"


def parse_cuda_version(value: object) -> tuple[int, int] | None:
    """Read a CUDA version in any of the forms we meet: "12.8", "12.8.1", 12080 (the integer the
    CUDA driver API, NVML and PyTorch's "found version 12080" use), "12080", or (12, 8)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, tuple) and len(value) >= 2:
        return (int(value[0]), int(value[1]))
    if isinstance(value, int):
        return (value // 1000, (value % 1000) // 10) if value > 0 else None
    text = str(value).strip()
    if re.fullmatch(r"\d{4,6}", text):
        return parse_cuda_version(int(text))
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def cuda_label(value: object) -> str | None:
    """A CUDA version in any form as "12.8", or None when it cannot be read."""
    parsed = parse_cuda_version(value)
    return f"{parsed[0]}.{parsed[1]}" if parsed else None


def pytorch_index_url(max_cuda: object) -> str | None:
    """The PyTorch wheel index for the newest CUDA build a driver supporting ``max_cuda`` can run,
    or None when even the oldest listed build is too new (the driver must be updated)."""
    limit = parse_cuda_version(max_cuda)
    if limit is None:
        return None
    fitting = [v for v in PYTORCH_CUDA_WHEELS if v <= limit]
    if not fitting:
        return None
    major, minor = fitting[-1]
    return f"{PYTORCH_INDEX}/cu{major}{minor}"


def reinstall_command(index_url: str) -> str:
    # `pip install torch` alone keeps an installed torch of the same version whatever its build,
    # so the old build must go first.
    return f"pip uninstall -y torch && pip install torch --index-url {index_url}"


def reinstall_step(driver_cuda: str | None) -> str:
    """The step that installs the PyTorch build for a driver supporting CUDA ``driver_cuda``."""
    url = pytorch_index_url(driver_cuda) if driver_cuda else None
    if url:
        return (
            f"Install the PyTorch build for your driver (CUDA {driver_cuda}): "
            f"{reinstall_command(url)}"
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
