"""What a run costs the machine: CPU, memory and GPU of the trainer and its env workers.

A daemon thread samples every ``interval`` seconds, off the training loop's hot path: the loop
pays nothing per step; ``stop`` takes one last sample, so even a run shorter than an interval
has one. Each sample goes to TensorBoard under ``system/`` at the current global
step (``cpu_percent``, ``rss_mb``, ``gpu_util``, ``gpu_mem_mb``) and into the in-memory
status, which the training loop's own once-a-second status write carries to status.json. The
thread never writes status.json itself: one writer, one thread.

The processes counted are the trainer and its descendants (the SubprocVecEnv workers and their
forkserver): the members of the run's process group that this process started. ``cpu_percent``
is summed over them, so 200 means two cores busy. GPU figures come from NVML (nvidia-ml-py), no
CUDA context: memory is what NVML reports for these pids on every GPU, utilisation is that of
the busiest GPU they use (NVML has no reliable per-process utilisation on every driver). Inside
a container whose pid namespace differs from the driver's, NVML may not list our pids; then the
GPU memory reads 0 and the dashboard says so. Without NVML (no GPU) the GPU fields stay empty.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from machine.nvml import NvmlUnavailable, close_nvml, gpu_processes, open_nvml
from runstore import tags

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
INTERVAL_ENV = "RETRO_ML_SYSTEM_SAMPLE_SECONDS"
MB = 2**20


@dataclass
class Sample:
    cpu_percent: float
    rss_mb: float
    processes: int
    gpu_util: float | None = None
    gpu_mem_mb: float | None = None
    gpu_power_w: float | None = None

    def scalars(self) -> dict[str, float]:
        """The TensorBoard tags under ``system/`` (GPU ones only where there is a GPU)."""
        out = {tags.SYSTEM_CPU_PERCENT: self.cpu_percent, tags.SYSTEM_RSS_MB: self.rss_mb}
        if self.gpu_util is not None:
            out[tags.SYSTEM_GPU_UTIL] = self.gpu_util
        if self.gpu_mem_mb is not None:
            out[tags.SYSTEM_GPU_MEM_MB] = self.gpu_mem_mb
        if self.gpu_power_w is not None:
            out[tags.SYSTEM_GPU_POWER_W] = self.gpu_power_w
        return out


def interval_from_env(default: float = DEFAULT_INTERVAL) -> float:
    try:
        return max(0.2, float(os.environ.get(INTERVAL_ENV, default)))
    except ValueError:
        return default


class _Nvml:
    """NVML opened once for the sampler's life; absent (None) on a machine without a GPU."""

    def __init__(self, module: Any = None):
        self.nvml: Any = None
        self.handles: list[Any] = []
        try:
            nvml = open_nvml(module)
        except NvmlUnavailable:
            return
        try:
            count = int(nvml.nvmlDeviceGetCount())
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:  # noqa: BLE001 - a driver that lists no GPU: as if absent
            close_nvml(nvml)
            return
        self.nvml = nvml

    @property
    def available(self) -> bool:
        return self.nvml is not None

    def usage(self, pids: set[int]) -> tuple[float | None, float | None, float | None]:
        """(utilisation % of the busiest GPU our pids use, our GPU memory in MB, the board
        power in W of the GPUs our pids use: the whole board's, shared with anything else on
        it; None where NVML reports no power)."""
        if self.nvml is None:
            return None, None, None
        nvml, used, util, power = self.nvml, 0, None, None
        for handle in self.handles:
            mine = [mem for pid, mem in gpu_processes(nvml, handle) if pid in pids]
            if mine:
                used += sum(mem for mem in mine if mem is not None)
                with contextlib.suppress(Exception):
                    rate = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                    util = rate if util is None else max(util, rate)
                with contextlib.suppress(Exception):
                    watts = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                    power = watts if power is None else power + watts
        return (util if util is not None else 0.0), round(used / MB, 1), power

    def close(self) -> None:
        if self.nvml is not None:
            close_nvml(self.nvml)


class ProcessTree:
    """The trainer and its descendants, with psutil objects kept between samples:
    ``cpu_percent`` measures since the previous call on the *same* object."""

    def __init__(self, root_pid: int | None = None):
        self.root = psutil.Process(root_pid or os.getpid())
        self._known: dict[int, psutil.Process] = {}

    def processes(self) -> list[psutil.Process]:
        try:
            current = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            current = [self.root]
        alive: dict[int, psutil.Process] = {}
        for proc in current:
            known = self._known.get(proc.pid)
            # Same pid, same process: keep the object (and its CPU baseline).
            alive[proc.pid] = known if known is not None and known == proc else proc
        self._known = alive
        return list(alive.values())

    def sample(self) -> tuple[float, float, set[int]]:
        """(CPU % summed over processes, RSS MB summed, pids)."""
        cpu = rss = 0.0
        pids: set[int] = set()
        for proc in self.processes():
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                pids.add(proc.pid)
            except psutil.Error:
                continue
        return round(cpu, 1), round(rss / MB, 1), pids


class SystemSampler:
    """The sampling thread. ``step`` gives the global step; ``writer`` the TensorBoard
    SummaryWriter or None (SB3 creates its writer when ``learn`` starts); ``status`` the
    in-memory TrainStatus the training loop writes out."""

    def __init__(
        self,
        step: Callable[[], int],
        writer: Callable[[], Any],
        status: Any = None,
        interval: float | None = None,
        nvml: Any = None,
    ):
        self.step = step
        self.writer = writer
        self.status = status
        self.interval = interval_from_env() if interval is None else interval
        self.tree = ProcessTree()
        self.gpu = _Nvml(nvml)
        self.latest: Sample | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-sampler", daemon=True)

    def start(self) -> SystemSampler:
        self.tree.sample()  # the CPU baseline; the first real figure comes one interval later
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread, then record one last sample: a run shorter than one interval still
        has its cost (from the baseline taken at start), and every run's figures reach its
        end. The writer is flushed, as nothing after the run's end would flush it."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        if self._thread.ident is not None:  # started: there is a baseline to measure from
            try:
                self.record(self.take())
                writer = self.writer()
                if writer is not None:
                    writer.flush()
            except Exception:  # noqa: BLE001 - monitoring must never fail a run's end
                log.debug("last system sample failed", exc_info=True)
        self.gpu.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.record(self.take())
            except Exception:  # noqa: BLE001 - monitoring must never end a run
                log.debug("system sample failed", exc_info=True)

    def take(self) -> Sample:
        cpu, rss, pids = self.tree.sample()
        gpu_util, gpu_mem, gpu_power = self.gpu.usage(pids)
        return Sample(cpu, rss, len(pids), gpu_util, gpu_mem, gpu_power)

    def record(self, sample: Sample) -> None:
        self.latest = sample
        step = int(self.step())
        writer = self.writer()
        if writer is not None:
            for tag, value in sample.scalars().items():
                writer.add_scalar(tag, value, step)
        if self.status is not None:
            self.status.cpu_percent = sample.cpu_percent
            self.status.rss_mb = sample.rss_mb
            self.status.gpu_util = sample.gpu_util
            self.status.gpu_mem_mb = sample.gpu_mem_mb
            self.status.processes = sample.processes
