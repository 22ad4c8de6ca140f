"""The memory estimate (runstore/estimate.py) against buffers SB3 really allocates."""

from __future__ import annotations

import numpy as np
import psutil
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer

from runstore.config import parse_config
from runstore.estimate import (
    MIB,
    estimate_memory,
    gym_spec,
    preflight_problem,
    replay_buffer_bytes,
    rollout_buffer_bytes,
    space_spec,
)

ATARI_OBS = spaces.Box(0, 255, (4, 84, 84), np.uint8)


def _nbytes(buffer: object) -> int:
    """Every numpy array the buffer holds: what it costs once full."""
    return sum(v.nbytes for v in vars(buffer).values() if isinstance(v, np.ndarray))


def _config(text: str):
    return parse_config(text.encode())


@pytest.mark.parametrize(("n_envs", "optimize"), [(1, False), (1, True), (4, False), (3, True)])
def test_dqn_atari_replay_buffer_matches_sb3(n_envs: int, optimize: bool):
    size = 5_000
    config = _config(
        "algo: dqn\nenv: ALE/Pong-v5\nn_timesteps: 1000\n"
        f"hyperparams: {{buffer_size: {size}, n_envs: {n_envs}, "
        f"optimize_memory_usage: {str(optimize).lower()}}}\n"
    )
    spec = space_spec(config)
    assert spec is not None and spec.obs_shape == (4, 84, 84) and spec.obs_bytes == 84 * 84 * 4
    buffer = ReplayBuffer(
        size,
        ATARI_OBS,
        spaces.Discrete(6),
        device="cpu",
        n_envs=n_envs,
        optimize_memory_usage=optimize,
        handle_timeout_termination=not optimize,
    )
    measured = _nbytes(buffer)
    assert replay_buffer_bytes(size, n_envs, spec, optimize) == measured
    assert estimate_memory(config).parts["replay buffer"] == measured
    # The rule of thumb: N x 84 x 84 x 4 bytes, twice that without the optimisation.
    rows = size // n_envs * n_envs
    frames = rows * 84 * 84 * 4 * (1 if optimize else 2)
    assert frames <= measured < frames * 1.01


def test_ppo_atari_rollout_buffer_matches_sb3():
    config = _config("algo: ppo\nenv: ALE/Breakout-v5\nn_timesteps: 1000\n")
    hp = config.hyperparams
    spec = space_spec(config)
    buffer = RolloutBuffer(
        hp.n_steps, ATARI_OBS, spaces.Discrete(4), device="cpu", n_envs=hp.n_envs
    )
    assert rollout_buffer_bytes(hp.n_steps, hp.n_envs, spec) == _nbytes(buffer)
    # get() flattens each column into a copy: the estimate counts the peak, two buffers.
    assert estimate_memory(config).parts["rollout buffer"] == 2 * _nbytes(buffer)


def test_non_atari_spaces_come_from_the_env():
    spec = gym_spec("CartPole-v1")
    assert spec is not None and spec.obs_shape == (4,) and spec.obs_itemsize == 4
    config = _config(
        "algo: dqn\nenv: CartPole-v1\nn_timesteps: 1000\nhyperparams: {buffer_size: 7000}\n"
    )
    buffer = ReplayBuffer(
        7000, spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2), device="cpu"
    )
    assert estimate_memory(config).parts["replay buffer"] == _nbytes(buffer)
    cont = gym_spec("Pendulum-v1")  # a float Box action space
    assert cont is not None and cont.action_dim == 1 and cont.action_itemsize == 4


def test_measured_buffer_allocation_fits_the_estimate():
    """Fill a real buffer (numpy allocates lazily) and compare what the process gained."""
    config = _config(
        "algo: dqn\nenv: ALE/Pong-v5\nn_timesteps: 1000\nhyperparams: {buffer_size: 4000}\n"
    )
    proc = psutil.Process()
    before = proc.memory_info().rss
    buffer = ReplayBuffer(4000, ATARI_OBS, spaces.Discrete(6), device="cpu")
    for array in (buffer.observations, buffer.next_observations):
        array.fill(1)  # touch every page
    gained = proc.memory_info().rss - before
    expected = estimate_memory(config).parts["replay buffer"]
    assert 0.9 * expected <= gained <= 1.1 * expected + 16 * MIB
    del buffer


def test_preflight_problem_names_the_total_and_the_fix():
    config = _config(
        "algo: dqn\nenv: ALE/Pong-v5\nn_timesteps: 1000\nhyperparams: {buffer_size: 1_000_000}\n"
    )
    estimate = estimate_memory(config)
    assert 50 * 2**30 < estimate.total_bytes < 60 * 2**30  # 1M frames x 2 x 28 KB = 52.6 GiB
    assert preflight_problem(estimate, estimate.total_bytes) is None
    problem = preflight_problem(estimate, 8 * 2**30)
    assert "replay buffer 52.6 GiB" in problem and "only 8.0 GiB of RAM is free" in problem
    assert "optimize_memory_usage: true" in problem
