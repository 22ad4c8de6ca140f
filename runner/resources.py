"""Apply a run's ``resources`` block to the trainer the runner starts.

Split in two so each half is testable: :func:`plan` turns the config into concrete choices
(which cores, which nice level, which GPU, which environment variables) for *this* machine and
raises :class:`ResourceError` with a fix when it cannot; :func:`apply` sets affinity and nice on
the new process with psutil, right after it was spawned, before it has imported torch (a
second or more), so its SubprocVecEnv workers, forked later, inherit both.

GPU choice goes through NVML (``machine.nvml``, no CUDA context): NVML numbers GPUs in PCI bus order
while CUDA by default puts the fastest first, so a pinned GPU also sets
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` to make the two agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil

from machine.nvml import gpus_by_free_memory
from machine.probes import available_memory
from runstore.config import Resources, RunConfig
from runstore.config_schema import TORCH_THREADS_ENV
from runstore.estimate import estimate_memory, preflight_problem

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class ResourceError(ValueError):
    """A resources block this machine cannot honour, said so the user can fix it."""


@dataclass
class Plan:
    cpus: list[int] | None = None
    nice: int = 0
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"cpus {self.cpus}" if self.cpus is not None else "all cpus", f"nice {self.nice}"]
        if "CUDA_VISIBLE_DEVICES" in self.env:
            parts.append(f"CUDA_VISIBLE_DEVICES={self.env['CUDA_VISIBLE_DEVICES']!r}")
        if "OMP_NUM_THREADS" in self.env:
            parts.append(f"{self.env['OMP_NUM_THREADS']} threads")
        if TORCH_THREADS_ENV in self.env:
            parts.append(f"{self.env[TORCH_THREADS_ENV]} torch thread(s)")
        return ", ".join(parts + self.notes)


def shared_torch_threads(cores: int, share: int) -> int:
    """Torch threads for a run that may share ``cores`` with ``share - 1`` others: its part of
    them. Each trainer takes one thread per core by default, and two such trainers on 2 cores
    ran at 63 steps/s each against 180 with one thread each (docs/performance.md): a pool
    whose threads wait for a core that the other run holds stalls at every sync."""
    return max(1, cores // max(1, share))


def available_cores() -> list[int]:
    """The cores this runner may use (its own affinity: a container or taskset may limit it)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity; every core counts
        return list(range(psutil.cpu_count() or 1))


def plan(
    resources: Resources,
    cores: list[int] | None = None,
    gpus: list[tuple[int, int]] | None | str = "probe",
    share: int = 1,
) -> Plan:
    """Concrete choices for this machine. ``cores`` and ``gpus`` default to probing it;
    ``share`` is how many runs may train on these cores at once (``max_concurrent``)."""
    cores = available_cores() if cores is None else cores
    result = Plan(nice=resources.nice)
    if isinstance(resources.cpus, int):
        if resources.cpus > len(cores):
            raise ResourceError(
                f"resources.cpus: {resources.cpus} cores asked, but this runner may use "
                f"{len(cores)} ({_ranges(cores)}); ask for at most {len(cores)}"
            )
        result.cpus = cores[: resources.cpus]
    elif isinstance(resources.cpus, list):
        missing = sorted(set(resources.cpus) - set(cores))
        if missing:
            raise ResourceError(
                f"resources.cpus: core(s) {missing} are not available here; this runner may "
                f"use cores {_ranges(cores)}"
            )
        result.cpus = sorted(resources.cpus)
    if result.cpus is not None:
        threads = str(len(result.cpus))
        result.env.update(dict.fromkeys(THREAD_VARS, threads))
    elif share > 1 and TORCH_THREADS_ENV not in os.environ:
        result.env[TORCH_THREADS_ENV] = str(shared_torch_threads(len(cores), share))
    if resources.gpu == "none":
        result.env["CUDA_VISIBLE_DEVICES"] = ""
        return result
    listed = gpus_by_free_memory() if gpus == "probe" else gpus
    if isinstance(resources.gpu, int):
        if listed is not None and resources.gpu not in {i for i, _ in listed}:
            raise ResourceError(
                f"resources.gpu: GPU {resources.gpu} does not exist here; the GPUs are "
                f"{sorted(i for i, _ in listed) or 'none'}"
            )
        result.env["CUDA_VISIBLE_DEVICES"] = str(resources.gpu)
        result.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    elif listed and len(listed) > 1:  # auto among several GPUs: the most free memory
        best, free = listed[0]
        result.env["CUDA_VISIBLE_DEVICES"] = str(best)
        result.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        result.notes.append(f"GPU {best} picked ({free / 2**30:.1f} GiB free)")
    return result


def apply(pid: int, chosen: Plan) -> list[str]:
    """Set affinity and nice on a freshly spawned trainer; returns notes on what could not be
    done (raising priority needs privileges: the run then keeps the runner's own nice)."""
    notes: list[str] = []
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return notes
    if chosen.cpus is not None:
        try:
            proc.cpu_affinity(chosen.cpus)
        except (psutil.AccessDenied, OSError, AttributeError) as exc:
            notes.append(f"could not pin cores {chosen.cpus}: {exc}")
        except psutil.NoSuchProcess:
            return notes
    if chosen.nice != proc.nice():
        try:
            proc.nice(chosen.nice)
        except (psutil.AccessDenied, PermissionError):
            notes.append(
                f"nice {chosen.nice} needs privileges this runner lacks (CAP_SYS_NICE or root); "
                f"the run keeps nice {proc.nice()}"
            )
        except psutil.NoSuchProcess:
            return notes
    return notes


def _ranges(cores: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out: list[str] = []
    for core in sorted(cores):
        if out and "-" not in out[-1] and int(out[-1]) == core - 1:
            out[-1] = f"{out[-1]}-{core}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == core - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{core}"
        else:
            out.append(str(core))
    return ", ".join(out) or "none"


def prepare(config: RunConfig, share: int = 1) -> tuple[Plan, list[str]]:
    """The resources plan of a run that may share the cores with ``share - 1`` others, and
    the preflight warnings to record before it starts.

    A memory estimate over the free RAM is a warning, not a refusal: the estimate is rounded
    up, swap may absorb the rest, and the user may know better."""
    chosen = plan(config.resources, share=share)
    warnings: list[str] = []
    problem = preflight_problem(estimate_memory(config), available_memory())
    if problem:
        warnings.append(problem)
    return chosen, warnings
