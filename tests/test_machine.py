"""The torch-free machine package: opening NVML the one way, the processes on a GPU, the ROM
probe that reads ale-py's files without importing it, and the reinstall step.

The GPU probes themselves (every NVML reading, the findings they lead to) are exercised in
tests/test_diagnostics.py with a stand-in pynvml; this machine has no GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from machine.cuda import reinstall_step
from machine.nvml import NvmlUnavailable, gpu_processes, open_nvml
from machine.probes import available_memory, probe_atari, probe_memory

from .conftest import ROOT


class NVMLError_DriverNotLoaded(Exception):  # noqa: N801 - pynvml's class name
    pass


def test_open_nvml_says_why_it_is_unavailable() -> None:
    def init() -> None:
        raise NVMLError_DriverNotLoaded("Driver Not Loaded")

    with pytest.raises(NvmlUnavailable) as caught:
        open_nvml(SimpleNamespace(nvmlInit=init))
    assert caught.value.kind == "driver_not_loaded"
    assert caught.value.error == "NVMLError_DriverNotLoaded: Driver Not Loaded"
    # This machine: nvidia-ml-py is installed, the driver library is not.
    with pytest.raises(NvmlUnavailable) as real:
        open_nvml()
    assert real.value.kind in ("library_not_found", "driver_not_loaded", "module_missing")


def test_gpu_processes_merges_both_lists_once_per_pid() -> None:
    compute = [
        SimpleNamespace(pid=10, usedGpuMemory=300),
        SimpleNamespace(pid=11, usedGpuMemory=2**64 - 1),  # NVML_VALUE_NOT_AVAILABLE
    ]
    graphics = [SimpleNamespace(pid=10, usedGpuMemory=300), SimpleNamespace(pid=12)]

    def broken(handle: object) -> list[object]:
        raise RuntimeError("not supported")

    nvml = SimpleNamespace(
        nvmlDeviceGetComputeRunningProcesses=lambda h: compute,
        nvmlDeviceGetGraphicsRunningProcesses=lambda h: graphics,
    )
    assert gpu_processes(nvml, 0) == [(10, 300), (11, None), (12, None)]
    nvml.nvmlDeviceGetGraphicsRunningProcesses = broken  # a list NVML cannot read is empty
    assert gpu_processes(nvml, 0) == [(10, 300), (11, None)]


def test_rom_probe_reads_ale_py_files_without_importing_it() -> None:
    code = (
        "import json, sys\n"
        "from machine.probes import probe_atari\n"
        "print(json.dumps([probe_atari(), 'ale_py' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    atari, imported = json.loads(out.stdout)
    assert not imported
    assert atari == probe_atari()
    assert atari["roms_known"] >= atari["roms_available"] > 50


def test_rom_probe_with_an_empty_roms_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ALE_ROMS_DIR", str(tmp_path))
    atari = probe_atari()
    assert atari["roms_dir_from_env"] and atari["roms_available"] == 0 and atari["roms_known"]


def test_available_memory_is_the_effective_figure() -> None:
    memory = probe_memory()
    assert 0 < available_memory() <= memory["total_bytes"]


def test_reinstall_step_follows_the_driver() -> None:
    assert "--index-url https://download.pytorch.org/whl/cu126" in reinstall_step("12.7")
    assert "update the NVIDIA driver first" in reinstall_step("10.2")
    assert "pytorch.org/get-started/locally" in reinstall_step(None)
