"""What the GPU sections of a report say is wrong, one concern per function: is there a
working driver, can every GPU be read, is PyTorch a CUDA build, does the driver's CUDA reach
the build's, does the build have code for each GPU, does CUDA really work (the test
calculation), and is a GPU busy or hot. Pure: reads only the report."""

from __future__ import annotations

from typing import Any

from machine.cuda import arch_supported, parse_cuda_version, reinstall_step
from machine.failures import diagnose
from machine.recommend import recommend_settings
from machine.report import finding
from machine.util import gib

__all__ = ["gpu_findings"]

GPU_HOT_CELSIUS = 85
GPU_BUSY_FRACTION = 0.5

_DRIVER_STEPS = {
    "library_not_found": [
        "Install the NVIDIA driver for your GPU and reboot; nvidia-smi must list it.",
        "In Docker, start the container with --gpus all (NVIDIA Container Toolkit).",
    ],
    "driver_not_loaded": [
        "Reboot: the driver module is installed but not loaded (common right after an update).",
        "With Secure Boot on, the unsigned NVIDIA module may be refused: enroll its key or turn "
        "Secure Boot off.",
    ],
    "driver_library_mismatch": [
        "Reboot: the driver was updated but the old kernel module is still loaded.",
    ],
}
_UNUSABLE_STEPS = [
    "Run nvidia-smi: if it fails, repair the driver and reboot.",
    "Check that CUDA_VISIBLE_DEVICES is unset or names a real GPU.",
    "Until then set device: cpu.",
]
_BUSY_STEPS = [
    "Other programs or runs hold GPU memory; a new run may run out of it.",
    "Stop runs you do not need, or give new runs a smaller batch_size.",
]
_HOT_STEPS = [
    "Check the fans and airflow; a hot GPU slows itself down and can cause errors.",
]
_MINOR_GAP_STEP = (
    "Within one CUDA major version this usually works (minor version compatibility), but some "
    "kernels can fail to load; fix it if you see CUDA errors."
)


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


def _no_gpu(report: dict[str, Any], detail: str) -> dict[str, Any]:
    title = "No NVIDIA GPU found; training runs on the CPU"
    return finding("no_nvidia_gpu", "info", title, _cpu_steps(report), detail)


def _driver_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """No GPU (calm), or a GPU whose driver does not work (an error)."""
    gpus = report["gpus"]
    cuda_ok = bool(report["torch"].get("cuda_available"))
    if gpus.get("nvml_available"):
        devices = [d for d in gpus.get("devices", []) if "error" not in d]
        if devices or cuda_ok:
            return []
        return [_no_gpu(report, "the NVIDIA driver is loaded but lists no GPU")]
    kind = gpus.get("error_kind")
    if (gpus.get("nvidia_pci_devices") or 0) > 0:
        steps = _DRIVER_STEPS.get(
            kind, ["Run nvidia-smi to see what the driver reports, then reboot."]
        )
        title = f"An NVIDIA GPU is installed but its driver does not work ({kind})"
        steps = [*steps, "Until then, training runs on the CPU (device: cpu or auto)."]
        return [
            finding("nvidia_driver_not_working", "error", title, steps, gpus.get("error") or "")
        ]
    return [] if cuda_ok else [_no_gpu(report, gpus.get("error") or "")]


def _unreadable_findings(gpus: dict[str, Any]) -> list[dict[str, Any]]:
    steps = ["Run nvidia-smi; if it shows an error for this GPU, reboot the machine."]
    return [
        finding(
            "gpu_unreadable", "warning", f"GPU {d['index']} could not be read", steps, d["error"]
        )
        for d in gpus.get("devices", [])
        if "error" in d
    ]


def _gpu_list(report: dict[str, Any]) -> list[dict[str, Any]]:
    """GPUs with a name and compute capability, from NVML, else from torch."""
    nvml_devices = [d for d in report["gpus"].get("devices", []) if "error" not in d]
    if nvml_devices:
        return [
            {"index": d["index"], "name": d.get("name"), "capability": d.get("compute_capability")}
            for d in nvml_devices
        ]
    return list(report["torch"].get("devices", []))


def _cpu_only_build(torch: dict[str, Any], driver_cuda: str | None) -> dict[str, Any]:
    return finding(
        "torch_cpu_only_build",
        "warning",
        "PyTorch is a CPU-only build, so the GPU is not used",
        [
            reinstall_step(driver_cuda),
            "Until then, runs with device: auto train on the CPU; device: cuda fails.",
        ],
        f"torch {torch.get('version')} has no CUDA support",
    )


def _driver_age_findings(gpus: dict[str, Any], torch: dict[str, Any]) -> list[dict[str, Any]]:
    """A driver older than the build's CUDA: an error across a major version, else a warning."""
    driver_cuda = gpus.get("cuda_driver_version")
    build = parse_cuda_version(torch.get("cuda_build"))
    driver = parse_cuda_version(driver_cuda)
    if not (build and driver and driver < build):
        return []
    major_gap = driver[0] < build[0]
    steps = [
        "Update the NVIDIA driver (https://www.nvidia.com/Download/index.aspx or your "
        "distribution's driver package) and reboot.",
        reinstall_step(driver_cuda),
    ]
    return [
        finding(
            "driver_older_than_torch_cuda",
            "error" if major_gap else "warning",
            f"The NVIDIA driver (CUDA {driver_cuda}) is older than PyTorch's CUDA "
            f"{torch.get('cuda_build')}",
            steps if major_gap else [*steps, _MINOR_GAP_STEP],
            f"driver {gpus.get('driver_version')} supports CUDA up to {driver_cuda}",
        )
    ]


def _arch_findings(torch: dict[str, Any], gpu_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A GPU the build has no compiled code for."""
    arch_list = list(torch.get("arch_list") or [])
    out = []
    for gpu in gpu_list:
        if arch_supported(gpu.get("capability"), arch_list) is not False:
            continue
        sm = "sm_" + str(gpu["capability"]).replace(".", "")
        steps = [
            f"Install a PyTorch build whose architecture list includes {sm}: newer GPUs need a "
            "newer PyTorch and CUDA (https://pytorch.org/get-started/locally/), older GPUs an "
            "older PyTorch release.",
            "Until then set device: cpu.",
        ]
        title = f"PyTorch {torch.get('version')} has no code for {gpu.get('name')} ({sm})"
        detail = f"GPU compute capability {gpu['capability']}; build has {' '.join(arch_list)}"
        out.append(finding("gpu_arch_not_in_build", "error", title, steps, detail))
    return out


def _cuda_unusable(torch: dict[str, Any]) -> dict[str, Any]:
    """torch.cuda.is_available() is False for a reason the checks above did not find."""
    explained = diagnose("\n".join(torch.get("warnings") or []) + (torch.get("error") or ""))
    if explained is None:
        return finding(
            "torch_cuda_unusable",
            "error",
            "PyTorch cannot use the GPU",
            _UNUSABLE_STEPS,
            "torch.cuda.is_available() is False",
        )
    title, steps = explained.title, list(explained.steps)
    return finding("torch_cuda_unusable", "error", title, steps, explained.evidence)


def _usable_findings(
    gpus: dict[str, Any], torch: dict[str, Any], gpu_list: list[dict[str, Any]], blocking: bool
) -> list[dict[str, Any]] | None:
    """The test calculation failed, or the GPU is ready; None when the failure is the missing
    architecture already reported (nothing more to say about this GPU)."""
    smoke = torch.get("smoke_test")
    if smoke not in (None, "ok", "skipped"):
        explained = diagnose(smoke)
        if blocking and explained and explained.code == "cuda_no_kernel_image":
            return None
        title = "A test calculation on the GPU failed"
        if explained is None:
            return [
                finding(
                    "cuda_smoke_test_failed",
                    "error",
                    title,
                    ["Set device: cpu until this is fixed."],
                    smoke,
                )
            ]
        steps = list(explained.steps)
        return [
            finding("cuda_smoke_test_failed", "error", f"{title}: {explained.title}", steps, smoke)
        ]
    if blocking:
        return []
    names = ", ".join(str(g.get("name")) for g in gpu_list)
    detail = (
        f"torch {torch.get('version')}, CUDA {torch.get('cuda_build')}, "
        f"driver {gpus.get('driver_version') or '?'}"
    )
    steps = ["Use device: cuda (or auto) in run configs."]
    return [finding("gpu_ready", "info", f"GPU ready: {names}", steps, detail)]


def _load_findings(gpus: dict[str, Any]) -> list[dict[str, Any]]:
    """GPUs whose memory other programs hold, and hot GPUs."""
    out = []
    for device in (d for d in gpus.get("devices", []) if "error" not in d):
        index = device["index"]
        total, used = device.get("memory_total_bytes"), device.get("memory_used_bytes")
        if total and used is not None and used > GPU_BUSY_FRACTION * total:
            procs = ", ".join(
                f"{p.get('name') or 'pid'} {p['pid']} ({gib(p.get('used_memory_bytes'))})"
                for p in device.get("processes", [])
            )
            title = f"GPU {index} memory is mostly in use ({gib(used)} of {gib(total)})"
            out.append(finding("gpu_memory_in_use", "info", title, _BUSY_STEPS, procs))
        temp = device.get("temperature_c")
        if temp is not None and temp >= GPU_HOT_CELSIUS:
            out.append(finding("gpu_hot", "warning", f"GPU {index} is hot ({temp} °C)", _HOT_STEPS))
    return out


def gpu_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything the GPU and PyTorch sections say, in the order a reader should fix it."""
    gpus, torch = report.get("gpus", {}), report.get("torch", {})
    if "probe_error" in gpus or "probe_error" in torch:
        return []  # reported as probe_failed
    report = {**report, "gpus": gpus, "torch": torch}
    out = _driver_findings(report) + _unreadable_findings(gpus)
    gpu_list = _gpu_list(report)
    if not torch.get("installed") or not gpu_list:
        return out  # a missing torch is a package finding
    if not torch.get("cuda_build"):
        return [*out, _cpu_only_build(torch, gpus.get("cuda_driver_version"))]
    build = _driver_age_findings(gpus, torch) + _arch_findings(torch, gpu_list)
    out += build
    blocking = any(f["severity"] == "error" for f in build)
    if not torch.get("cuda_available"):
        return out if blocking else [*out, _cuda_unusable(torch)]
    usable = _usable_findings(gpus, torch, gpu_list, blocking)
    if usable is None:
        return out
    return out + usable + _load_findings(gpus)
