"""The diagnostics report: the real one on this machine, and the GPU code paths with stand-ins.

The development machine has no NVIDIA GPU, so the GPU paths (NVML readings, CUDA builds, driver
and architecture checks, the GPU test calculation) are tested by injecting a fake ``pynvml`` and a
fake ``torch`` into the probes. Two tests hold those fakes to the real modules' function names, so
the probes cannot drift from the APIs they call. The real report (real psutil, real NVML absence,
real torch) is checked too, including through the ``python -m training.diagnostics`` command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from machine import nvml as machine_nvml
from machine import probes
from machine.cuda import arch_supported
from machine.nvml import count_nvidia_pci_devices, probe_gpus
from machine.recommend import recommend_settings
from machine.report import DiagnosticsReport
from runstore.estimate import ATARI_SPEC, replay_transition_bytes
from training.diagnostics import build_report, findings, probe_torch, render_text

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30
TOP_KEYS = {
    "schema_version",
    "generated_at",
    "runs_dir",
    "system",
    "cpu",
    "memory",
    "disk",
    "gpus",
    "torch",
    "packages",
    "atari",
    "recommendations",
    "findings",
}


def machine_has_nvidia_gpu() -> bool:
    """An oracle independent of the code under test."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def codes(report_findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in report_findings}


# --------------------------------------------------------------------------------------------
# The real report on this machine


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_report(tmp_path_factory.mktemp("runs"))


def test_real_report_has_every_section_and_is_json(real_report: dict[str, Any]) -> None:
    assert set(real_report) >= TOP_KEYS
    assert json.loads(json.dumps(real_report)) == real_report
    typed = DiagnosticsReport.model_validate_json(json.dumps(real_report))  # what the page reads
    assert typed.torch.installed and typed.findings and typed.recommendations.n_envs >= 1
    for section in ("system", "cpu", "memory", "disk", "gpus", "torch", "packages", "atari"):
        assert "probe_error" not in real_report[section], real_report[section]
    assert real_report["cpu"]["logical_cores"] >= 1
    assert real_report["memory"]["total_bytes"] > 0
    assert real_report["disk"]["free_bytes"] > 0
    assert real_report["packages"]["stable_baselines3"]
    assert real_report["packages"]["gymnasium"]
    assert real_report["packages"]["ale_py"]
    assert real_report["torch"]["installed"]
    assert real_report["atari"]["roms_available"] > 50
    for finding in real_report["findings"]:
        assert finding["severity"] in {"error", "warning", "info"}
        assert finding["title"] and finding["steps"]


def test_real_report_matches_the_gpu_situation(real_report: dict[str, Any]) -> None:
    import torch

    assert real_report["torch"]["version"] == torch.__version__
    assert real_report["torch"]["cuda_available"] == torch.cuda.is_available()
    if machine_has_nvidia_gpu():
        assert real_report["gpus"]["devices"], real_report["gpus"]
        assert all(d.get("name") for d in real_report["gpus"]["devices"])
        return
    # This development machine: no GPU, no NVML, a CPU-only torch. That is normal, so calm.
    assert real_report["torch"]["cuda_available"] is False
    assert real_report["gpus"]["devices"] == []
    assert real_report["gpus"]["nvml_available"] is False
    found = codes(real_report["findings"])
    assert found["no_nvidia_gpu"]["severity"] == "info"
    assert found["no_nvidia_gpu"]["title"] == "No NVIDIA GPU found; training runs on the CPU"
    assert any("n_envs" in step for step in found["no_nvidia_gpu"]["steps"])
    assert not [f for f in real_report["findings"] if f["severity"] == "error"]
    assert real_report["recommendations"]["device"] == "cpu"


def test_real_report_renders_as_text(real_report: dict[str, Any]) -> None:
    text = render_text(real_report)
    for label in ("System", "CPU", "Memory", "Disk", "GPUs", "PyTorch", "Packages", "Findings"):
        assert label in text
    assert "Atari ROMs" in text


def run_command(runs_dir_env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m training.diagnostics ARGS`` with $RETRO_ML_RUNS_DIR set; it must exit 0."""
    out = subprocess.run(
        [sys.executable, "-m", "training.diagnostics", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "RETRO_ML_RUNS_DIR": str(runs_dir_env)},
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    return out


def test_command_line_json_exits_zero_with_clean_stdout(tmp_path: Path) -> None:
    out = run_command(tmp_path / "elsewhere", "--json", "--runs-dir", str(tmp_path))
    report = json.loads(out.stdout)  # nothing but JSON on stdout
    assert set(report) >= TOP_KEYS
    assert report["runs_dir"] == str(tmp_path)
    assert report["atari"]["roms_available"] > 50


def test_command_line_text_and_runs_dir_from_environment(tmp_path: Path) -> None:
    out = run_command(tmp_path / "runs", "--no-smoke-test")
    assert "Recommended settings" in out.stdout
    assert str(tmp_path / "runs") in out.stdout
    assert "(not created yet)" in out.stdout


def test_a_failing_probe_becomes_a_finding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise PermissionError("/proc is not readable here")

    monkeypatch.setattr(probes, "probe_cpu", broken)
    report = build_report(tmp_path, nvml=FakeNVML(init_error=NVMLError_LibraryNotFound()))
    assert report["cpu"] == {"probe_error": "PermissionError: /proc is not readable here"}
    found = codes(report["findings"])
    assert found["probe_failed"]["detail"] == "PermissionError: /proc is not readable here"
    assert report["recommendations"]["n_envs"] == 1
    assert "Could not check cpu" in render_text(report)
    json.dumps(report)


# --------------------------------------------------------------------------------------------
# Stand-ins for pynvml and torch (this machine has no GPU)


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 - pynvml's class names
    pass


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


RTX_3060 = {"name": "NVIDIA GeForce RTX 3060", "cc": (8, 6), "total": 12 * GIB, "used": 1 * GIB}
RTX_5090 = {"name": "NVIDIA GeForce RTX 5090", "cc": (12, 0), "total": 32 * GIB, "used": 1 * GIB}


class FakeNVML:
    """The pynvml functions probe_gpus calls, answering like a working driver."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(
        self,
        gpus: tuple[dict[str, Any], ...] = (RTX_3060,),
        driver: str = "550.54.14",
        cuda: int = 12040,
        init_error: Exception | None = None,
    ) -> None:
        self.gpus = gpus
        self.driver = driver
        self.cuda = cuda
        self.init_error = init_error
        self.shut_down = False

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:  # noqa: N802
        return self.cuda

    def nvmlSystemGetNVMLVersion(self) -> bytes:  # noqa: N802
        return b"12.550.54.14"  # old nvidia-ml-py releases return bytes

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:  # noqa: N802
        return self.gpus[handle]["name"].encode()

    def nvmlDeviceGetUUID(self, handle: int) -> str:  # noqa: N802
        return f"GPU-{handle:08d}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:  # noqa: N802
        gpu = self.gpus[handle]
        return SimpleNamespace(
            total=gpu["total"], used=gpu["used"], free=gpu["total"] - gpu["used"]
        )

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(gpu=37, memory=12)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:  # noqa: N802
        return self.gpus[handle].get("temp", 61)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        if self.gpus[handle].get("no_power"):
            raise NVMLError_NotSupported()
        return 115_500  # milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:  # noqa: N802
        return 170_000

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:  # noqa: N802
        return self.gpus[handle]["cc"]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:  # noqa: N802
        return [
            SimpleNamespace(pid=os.getpid(), usedGpuMemory=512 * 2**20),
            SimpleNamespace(pid=2**22 + 7, usedGpuMemory=None),
        ]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[SimpleNamespace]:  # noqa: N802
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=512 * 2**20)]


def fake_torch(
    *,
    version: str = "2.13.0+cu126",
    cuda: str | None = "12.6",
    available: bool = True,
    arch: tuple[str, ...] = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    devices: tuple[tuple[str, tuple[int, int]], ...] = (("NVIDIA GeForce RTX 3060", (8, 6)),),
    warn: str | None = None,
    kernel_error: str | None = None,
) -> SimpleNamespace:
    """The slice of torch that probe_torch and its GPU test calculation use."""

    def is_available() -> bool:
        if warn:
            warnings.warn(warn, UserWarning, stacklevel=2)
        return available

    class Tensor:
        def __matmul__(self, other: Tensor) -> Tensor:
            return self

        def sum(self) -> Tensor:
            return self

        def item(self) -> float:
            return 1.0

    def ones(*shape: int, device: str) -> Tensor:
        if kernel_error:
            raise RuntimeError(kernel_error)
        return Tensor()

    return SimpleNamespace(
        __version__=version,
        version=SimpleNamespace(cuda=cuda),
        backends=SimpleNamespace(cudnn=SimpleNamespace(version=lambda: 90100 if cuda else None)),
        cuda=SimpleNamespace(
            is_available=is_available,
            get_arch_list=lambda: list(arch) if cuda else [],
            device_count=lambda: len(devices) if available else 0,
            get_device_capability=lambda i: devices[i][1],
            get_device_name=lambda i: devices[i][0],
            mem_get_info=lambda i: (10 * GIB, 12 * GIB),
            synchronize=lambda i=None: None,
        ),
        ones=ones,
        nn=SimpleNamespace(functional=SimpleNamespace(conv2d=lambda x, w, stride: x)),
    )


def test_fake_nvml_uses_real_pynvml_names() -> None:
    pynvml = pytest.importorskip("pynvml")
    for name in dir(FakeNVML):
        if name.startswith("nvml") or name.startswith("NVML_"):
            assert hasattr(pynvml, name), name
    assert hasattr(pynvml, "NVMLError_LibraryNotFound")
    assert hasattr(pynvml, "NVMLError_DriverNotLoaded")


def test_fake_torch_uses_real_torch_names() -> None:
    torch = pytest.importorskip("torch")
    fake = fake_torch()
    for name in vars(fake.cuda):
        assert hasattr(torch.cuda, name), name
    assert hasattr(torch.backends.cudnn, "version")
    assert hasattr(torch.nn.functional, "conv2d")


def gpu_report(tmp_path: Path, nvml: Any, torch: Any, smoke_test: bool = True) -> dict[str, Any]:
    report = build_report(tmp_path, nvml=nvml, torch_module=torch, smoke_test=smoke_test)
    json.dumps(report)
    return report


def test_probe_gpus_reads_every_field_from_nvml() -> None:
    nvml = FakeNVML(gpus=(RTX_3060, {**RTX_5090, "no_power": True}))
    gpus = probe_gpus(nvml)
    assert nvml.shut_down
    assert gpus["nvml_available"] and gpus["error"] is None
    assert gpus["driver_version"] == "550.54.14"
    assert gpus["cuda_driver_version"] == "12.4"
    assert gpus["nvml_version"] == "12.550.54.14"
    first, second = gpus["devices"]
    assert first["name"] == "NVIDIA GeForce RTX 3060"
    assert first["compute_capability"] == "8.6"
    assert first["memory_total_bytes"] == 12 * GIB
    assert first["memory_free_bytes"] == 11 * GIB
    assert first["utilization_gpu_percent"] == 37
    assert first["temperature_c"] == 61
    assert first["power_w"] == 115.5 and first["power_limit_w"] == 170.0
    pids = [p["pid"] for p in first["processes"]]
    assert pids == [os.getpid(), 2**22 + 7]  # compute and graphics lists merged, no duplicate
    assert first["processes"][0]["name"]  # psutil names our own process
    assert first["processes"][1]["used_memory_bytes"] is None
    assert second["power_w"] is None  # unsupported reading: absent, not a failure
    assert second["compute_capability"] == "12.0"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NVMLError_LibraryNotFound(), "library_not_found"),
        (NVMLError_DriverNotLoaded(), "driver_not_loaded"),
        (NVMLError("Unknown Error"), "other"),
    ],
)
def test_probe_gpus_turns_nvml_failure_into_data(error: Exception, kind: str) -> None:
    gpus = probe_gpus(FakeNVML(init_error=error))
    assert gpus["nvml_available"] is False
    assert gpus["error_kind"] == kind
    assert gpus["devices"] == []


def test_count_nvidia_pci_devices(tmp_path: Path) -> None:
    def device(name: str, vendor: str, klass: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "vendor").write_text(vendor + "\n")
        (tmp_path / name / "class").write_text(klass + "\n")

    device("0000:00:01.0", "0x8086", "0x060000")  # Intel bridge
    device("0000:01:00.0", "0x10de", "0x030000")  # NVIDIA VGA controller
    device("0000:01:00.1", "0x10de", "0x040300")  # NVIDIA HDMI audio: not a GPU
    device("0000:02:00.0", "0x10de", "0x030200")  # NVIDIA 3D controller (datacenter GPU)
    assert count_nvidia_pci_devices(tmp_path) == 2
    assert count_nvidia_pci_devices(tmp_path / "missing") is None


def test_driver_installed_but_not_loaded_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(machine_nvml, "count_nvidia_pci_devices", lambda: 1)
    report = gpu_report(
        tmp_path,
        FakeNVML(init_error=NVMLError_DriverNotLoaded()),
        fake_torch(available=False),
    )
    found = codes(report["findings"])
    assert "no_nvidia_gpu" not in found
    assert found["nvidia_driver_not_working"]["severity"] == "error"
    assert any("Reboot" in s for s in found["nvidia_driver_not_working"]["steps"])


def test_no_gpu_and_no_nvml_is_calm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(machine_nvml, "count_nvidia_pci_devices", lambda: 0)
    report = gpu_report(
        tmp_path,
        FakeNVML(init_error=NVMLError_LibraryNotFound()),
        fake_torch(version="2.13.0+cpu", cuda=None, available=False),
    )
    found = codes(report["findings"])
    assert found["no_nvidia_gpu"]["severity"] == "info"
    assert not [f for f in report["findings"] if f["severity"] == "error"]


def test_cpu_only_torch_on_a_gpu_machine(tmp_path: Path) -> None:
    report = gpu_report(
        tmp_path, FakeNVML(cuda=12040), fake_torch(version="2.13.0+cpu", cuda=None, available=False)
    )
    found = codes(report["findings"])
    cpu_only = found["torch_cpu_only_build"]
    assert cpu_only["severity"] == "warning"
    assert (
        "pip uninstall -y torch && pip install torch --index-url "
        "https://download.pytorch.org/whl/cu124" in cpu_only["steps"][0]
    )
    assert report["recommendations"]["device"] == "cpu"


def test_driver_a_major_version_behind_torch_is_an_error(tmp_path: Path) -> None:
    report = gpu_report(
        tmp_path,
        FakeNVML(cuda=12080),
        fake_torch(
            version="2.13.0+cu130",
            cuda="13.0",
            available=False,
            warn="CUDA initialization: The NVIDIA driver on your system is too old (found "
            "version 12080).",
        ),
    )
    found = codes(report["findings"])
    assert found["driver_older_than_torch_cuda"]["severity"] == "error"
    assert any("/whl/cu128" in s for s in found["driver_older_than_torch_cuda"]["steps"])
    assert "torch_cuda_unusable" not in found  # one root cause, reported once
    assert report["torch"]["warnings"]


def test_driver_a_minor_version_behind_is_a_warning(tmp_path: Path) -> None:
    report = gpu_report(
        tmp_path, FakeNVML(cuda=12040), fake_torch(version="2.8.0+cu129", cuda="12.9")
    )
    found = codes(report["findings"])
    assert found["driver_older_than_torch_cuda"]["severity"] == "warning"
    assert "gpu_ready" in found


def test_torch_warning_explains_unusable_cuda_when_nvml_lacks_the_answer(tmp_path: Path) -> None:
    nvml = FakeNVML()
    nvml.cuda = 0  # a driver whose NVML does not report its CUDA version
    report = gpu_report(
        tmp_path,
        nvml,
        fake_torch(
            available=False,
            warn="CUDA initialization: The NVIDIA driver on your system is too old (found "
            "version 11040).",
        ),
    )
    unusable = codes(report["findings"])["torch_cuda_unusable"]
    assert unusable["title"] == "Your NVIDIA driver is too old for this PyTorch"
    assert "found version 11040" in unusable["detail"]


def test_gpu_newer_than_the_build_is_an_error(tmp_path: Path) -> None:
    report = gpu_report(
        tmp_path,
        FakeNVML(gpus=(RTX_5090,), cuda=12080),
        fake_torch(
            devices=(("NVIDIA GeForce RTX 5090", (12, 0)),),
            kernel_error="CUDA error: no kernel image is available for execution on the device",
        ),
    )
    found = codes(report["findings"])
    arch = found["gpu_arch_not_in_build"]
    assert arch["severity"] == "error"
    assert "sm_120" in arch["title"]
    # The failed test calculation has the same cause: reported once, kept in the report.
    assert "cuda_smoke_test_failed" not in found
    assert "no kernel image" in report["torch"]["smoke_test"]
    assert "gpu_ready" not in found
    assert report["recommendations"]["device"] == "cpu"


def test_failed_gpu_test_calculation_is_explained(tmp_path: Path) -> None:
    report = gpu_report(
        tmp_path, FakeNVML(), fake_torch(kernel_error="cuDNN error: CUDNN_STATUS_NOT_INITIALIZED")
    )
    found = codes(report["findings"])
    smoke = found["cuda_smoke_test_failed"]
    assert smoke["severity"] == "error"
    assert "cuDNN" in smoke["title"]
    assert "CUDNN_STATUS_NOT_INITIALIZED" in smoke["detail"]
    assert "gpu_ready" not in found
    assert report["recommendations"]["device"] == "cpu"


def test_a_healthy_gpu(tmp_path: Path) -> None:
    busy = {**RTX_3060, "used": 10 * GIB, "temp": 88}
    report = gpu_report(tmp_path, FakeNVML(gpus=(busy,)), fake_torch())
    assert report["torch"]["smoke_test"] == "ok"
    found = codes(report["findings"])
    assert found["gpu_ready"]["title"] == "GPU ready: NVIDIA GeForce RTX 3060"
    assert found["gpu_memory_in_use"]["severity"] == "info"
    assert found["gpu_hot"]["severity"] == "warning"
    assert report["recommendations"]["device"] == "cuda"
    text = render_text(report)
    assert "NVIDIA GeForce RTX 3060" in text and "compute capability 8.6" in text
    assert "GPU ready" in text


def test_probe_torch_without_smoke_test_creates_no_context() -> None:
    torch = probe_torch(fake_torch(kernel_error="must not run"), smoke_test=False)
    assert torch["smoke_test"] == "skipped"
    assert torch["devices"][0]["capability"] == "8.6"
    assert torch["devices"][0]["memory_total_bytes"] == 12 * GIB


@pytest.mark.parametrize(
    ("capability", "arch", "expected"),
    [
        ("8.6", ["sm_80"], True),  # same generation, newer minor
        ("8.6", ["sm_86"], True),
        ("8.0", ["sm_86"], False),  # older minor cannot run newer code
        ("12.0", ["sm_80", "sm_86", "sm_90"], False),
        ("12.0", ["sm_90", "compute_90"], True),  # PTX compiles for newer GPUs
        ("9.0", ["sm_90a"], True),
        ("10.0", ["sm_90a"], False),
        ("6.1", ["sm_70", "sm_75"], False),
        ("8.6", [], None),  # the build lists nothing: cannot tell
        (None, ["sm_80"], None),
    ],
)
def test_arch_supported(capability: str | None, arch: list[str], expected: bool | None) -> None:
    assert arch_supported(capability, arch) is expected


# --------------------------------------------------------------------------------------------
# Pure findings and recommendations on hand-made reports


def report_with(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cpu": {"physical_cores": 8, "logical_cores": 16, "usable_cores": 16},
        "memory": {"effective_total_bytes": 32 * GIB, "effective_available_bytes": 24 * GIB},
        "disk": {"free_bytes": 500 * GIB, "total_bytes": 1000 * GIB, "measured_path": "/data"},
        "gpus": {"nvml_available": False, "error_kind": "library_not_found", "devices": []},
        "torch": {"installed": True, "cuda_build": None, "cuda_available": False},
        "packages": {"stable_baselines3": "2.9.2", "gymnasium": "1.4.0", "ale_py": "0.12.1"},
        "atari": {"roms_available": 108, "roms_known": 108},
    }
    base.update(sections)
    return base


def test_low_disk_and_memory() -> None:
    found = codes(
        findings(
            report_with(
                disk={"free_bytes": GIB // 2, "total_bytes": 100 * GIB, "measured_path": "/"},
                memory={"effective_total_bytes": 8 * GIB, "effective_available_bytes": GIB},
            )
        )
    )
    assert found["low_disk"]["severity"] == "error"
    assert found["low_memory"]["severity"] == "warning"
    warn_only = codes(findings(report_with(disk={"free_bytes": 3 * GIB, "total_bytes": GIB})))
    assert warn_only["low_disk"]["severity"] == "warning"


def test_missing_packages_and_roms() -> None:
    found = findings(
        report_with(
            packages={"stable_baselines3": None, "gymnasium": "1.4.0", "ale_py": "0.12.1"},
            atari={"roms_available": 0, "roms_known": 108, "roms_dir": "/nowhere"},
            torch={"installed": False, "error": "ModuleNotFoundError: No module named 'torch'"},
        )
    )
    by_code = codes(found)
    assert by_code["package_missing"]["title"] == "stable-baselines3 is not installed"
    assert by_code["no_atari_roms"]["severity"] == "error"
    assert by_code["torch_missing"]["severity"] == "error"
    assert [f["severity"] for f in found] == sorted(
        (f["severity"] for f in found), key={"error": 0, "warning": 1, "info": 2}.get
    )


@pytest.mark.parametrize(
    ("physical", "n_envs", "vec_env"),
    [(1, 1, "dummy"), (2, 2, "dummy"), (4, 4, "subproc"), (8, 8, "subproc"), (64, 16, "subproc")],
)
def test_recommended_envs_follow_the_cores(physical: int, n_envs: int, vec_env: str) -> None:
    rec = recommend_settings(report_with(cpu={"physical_cores": physical}))
    assert (rec["n_envs"], rec["vec_env"]) == (n_envs, vec_env)


def test_cores_this_process_may_not_use_are_not_counted() -> None:
    rec = recommend_settings(report_with(cpu={"physical_cores": 32, "usable_cores": 4}))
    assert rec["n_envs"] == 4


@pytest.mark.parametrize(
    ("available", "buffer_size", "optimize"),
    [
        (24 * GIB, 100_000, False),  # 100k x 56 KB = 5.6 GB fits in half of 24 GiB
        (8 * GIB, 100_000, True),  # only when each frame stack is stored once
        (4 * GIB, 70_000, True),  # 2 GiB budget / 28,244 B = 76,033 -> 70,000
        (GIB // 4, 4_000, True),
    ],
)
def test_dqn_buffer_fits_in_half_the_free_ram(
    available: int, buffer_size: int, optimize: bool
) -> None:
    rec = recommend_settings(
        report_with(
            memory={"effective_total_bytes": 32 * GIB, "effective_available_bytes": available}
        )
    )
    dqn = rec["dqn"]
    assert (dqn["buffer_size"], dqn["optimize_memory_usage"]) == (buffer_size, optimize)
    # runstore.estimate's size of a full SB3 ReplayBuffer row, one definition for both
    assert dqn["bytes_per_transition"] == replay_transition_bytes(ATARI_SPEC, optimize)
    assert dqn["buffer_bytes"] <= available / 2


def test_device_recommendation() -> None:
    assert recommend_settings(report_with())["device"] == "cpu"
    ok = report_with(torch={"installed": True, "cuda_available": True, "smoke_test": "ok"})
    assert recommend_settings(ok)["device"] == "cuda"
    broken = report_with(
        torch={"installed": True, "cuda_available": True, "smoke_test": "RuntimeError: ..."}
    )
    assert recommend_settings(broken)["device"] == "cpu"
