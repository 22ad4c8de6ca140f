"""Settings that suit this machine, each with its reason, for the new-run form, the System page
and the diagnostics report. Pure: reads only a report (or the part of one it needs)."""

from __future__ import annotations

from typing import Any

from runstore.estimate import ATARI_SPEC, replay_transition_bytes

__all__ = ["recommend_settings"]

DQN_BUFFER_TARGET = 100_000  # RL Zoo's Atari DQN buffer_size
RAM_BUDGET_FRACTION = 0.5  # of available RAM; the rest is for envs, the network, the OS
MAX_RECOMMENDED_ENVS = 16
NOTES = [
    "Observations are 84x84 grey frames stacked 4 deep (frame_stack: 4), one byte each.",
    "SB3's optimize_memory_usage needs replay_buffer_kwargs handle_timeout_termination: false.",
]


def _round_down(n: int) -> int:
    step = 10_000 if n >= 10_000 else 1_000
    return max(step, n // step * step) if n >= 1_000 else max(0, n)


def _cores(cpu: dict[str, Any]) -> int:
    cores = cpu.get("physical_cores") or cpu.get("usable_cores") or cpu.get("logical_cores") or 1
    usable = cpu.get("usable_cores")
    return min(cores, usable) if usable else cores


def _device(torch: dict[str, Any]) -> tuple[str, str]:
    usable = bool(torch.get("cuda_available"))
    if usable and torch.get("smoke_test") in (None, "ok", "skipped"):
        return "cuda", "PyTorch can use the GPU."
    if usable:
        return "cpu", "A test calculation on the GPU failed."
    return "cpu", "PyTorch cannot use a GPU on this machine."


def _vec_env(n_envs: int, cores: int) -> tuple[str, str]:
    if n_envs >= 2 and cores >= 4:
        return "subproc", "With 4 or more cores, stepping the games in parallel processes pays off."
    return (
        "dummy",
        "With fewer than 4 cores, worker processes compete with training for the same cores.",
    )


def _dqn(memory: dict[str, Any]) -> dict[str, Any]:
    """The largest replay buffer (up to the RL Zoo's) that fits in half of the free RAM, each
    transition costing what runstore.estimate says a full SB3 ReplayBuffer holds."""
    available = memory.get("effective_available_bytes") or memory.get("available_bytes") or 0
    budget = int(available * RAM_BUDGET_FRACTION)
    once, twice = (replay_transition_bytes(ATARI_SPEC, opt) for opt in (True, False))
    fit_optimized, fit_plain = budget // once, budget // twice
    if fit_plain >= DQN_BUFFER_TARGET:
        buffer_size, optimize = DQN_BUFFER_TARGET, False
        reason = "The RL Zoo's 100,000 transitions fit in half of the free RAM."
    elif fit_optimized >= DQN_BUFFER_TARGET:
        buffer_size, optimize = DQN_BUFFER_TARGET, True
        reason = "100,000 transitions fit in half of the free RAM only when stored once."
    else:
        buffer_size, optimize = _round_down(int(fit_optimized)), True
        reason = "Free RAM is short: a smaller buffer, stored once per transition."
    per_transition = once if optimize else twice
    return {
        "buffer_size": buffer_size,
        "optimize_memory_usage": optimize,
        "bytes_per_transition": per_transition,
        "buffer_bytes": buffer_size * per_transition,
        "ram_budget_bytes": budget,
        "max_buffer_size_optimized": int(fit_optimized),
        "max_buffer_size_plain": int(fit_plain),
        "reason": reason,
    }


def recommend_settings(report: dict[str, Any]) -> dict[str, Any]:
    """Settings that suit this machine, each with the reason, for the new-run form.

    - device: cuda only when PyTorch can use a GPU and the test calculation passed.
    - n_envs: one environment per physical core (at most 16): more only adds waiting.
    - vec_env: subprocesses pay off with 4+ cores; with fewer, workers compete with training.
    - DQN buffer_size: an Atari transition costs 84*84*4 bytes with optimize_memory_usage, twice
      that without; the buffer may use half of the free RAM.
    """
    cores = _cores(report.get("cpu", {}))
    n_envs = max(1, min(int(cores), MAX_RECOMMENDED_ENVS))
    device, device_reason = _device(report.get("torch", {}))
    vec_env, vec_reason = _vec_env(n_envs, cores)
    return {
        "device": device,
        "device_reason": device_reason,
        "n_envs": n_envs,
        "vec_env": vec_env,
        "vec_env_reason": vec_reason,
        "dqn": _dqn(report.get("memory", {})),
        "notes": list(NOTES),
    }
