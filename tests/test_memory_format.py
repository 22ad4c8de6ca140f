"""Channels-last convolutions (training/memory_format.py): faster, and otherwise invisible.

The speed is measured in ``bench/bench_train.py`` (``--only layout`` and the ``ours-nchw``
row); here: same outputs as the NCHW network, training steps that keep the two together,
checkpoints a plain SB3 install loads, and the switch in a real Atari training.
"""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy

from runstore import RunStore, checkpoints
from training.memory_format import use_channels_last, wants_channels_last

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def cnn_policy(seed: int = 0) -> ActorCriticCnnPolicy:
    torch.manual_seed(seed)
    return ActorCriticCnnPolicy(FRAMES, gym.spaces.Discrete(6), lambda _: 2.5e-4)


def frames(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8))


def outputs(policy: ActorCriticCnnPolicy, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    actions = torch.arange(len(obs)) % 6
    with torch.no_grad():
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    return values, log_prob, entropy


def ppo_step(policy: ActorCriticCnnPolicy, obs: torch.Tensor) -> None:
    values, log_prob, entropy = policy.evaluate_actions(obs, torch.arange(len(obs)) % 6)
    loss = values.pow(2).mean() - log_prob.mean() - 0.01 * entropy.mean()
    policy.optimizer.zero_grad()
    loss.backward()
    policy.optimizer.step()


def test_same_outputs_and_same_training_as_nchw() -> None:
    plain = cnn_policy()
    fast = copy.deepcopy(plain)
    params_before = list(fast.parameters())
    assert use_channels_last(fast) == 3  # NatureCNN's three convolutions
    assert list(fast.parameters()) == params_before  # the optimizer's parameters still
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not all(c.weight.is_contiguous() for c in convs)

    obs = frames(16)
    for a, b in zip(outputs(plain, obs), outputs(fast, obs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for step in range(3):  # Adam steps on both: the weights stay together
        batch = frames(32, seed=step + 1)
        ppo_step(plain, batch)
        ppo_step(fast, batch)
    for a, b in zip(plain.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
    assert not torch.equal(next(plain.parameters()), next(cnn_policy().parameters()))


def test_state_dict_loads_into_a_plain_nchw_policy() -> None:
    fast = cnn_policy(seed=3)
    use_channels_last(fast)
    ppo_step(fast, frames(32))
    plain = cnn_policy(seed=9)
    plain.load_state_dict(fast.state_dict())
    assert all(p.is_contiguous() for p in plain.parameters())
    obs = frames(8, seed=5)
    for a, b in zip(outputs(plain, obs), outputs(fast, obs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("setting", "image", "device", "want"),
    [
        ("auto", True, "cpu", True),
        ("auto", False, "cpu", False),  # an MLP has nothing to convert
        ("auto", True, "cuda", False),  # not measured on CUDA: off unless asked
        (True, True, "cuda", True),
        (True, False, "cpu", False),
        (False, True, "cpu", False),
    ],
)
def test_when_it_applies(setting: bool | str, image: bool, device: str, want: bool) -> None:
    # torch.device("cuda") is only a name here: nothing is allocated on a GPU.
    policy = (
        cnn_policy()
        if image
        else ActorCriticPolicy(
            gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2), lambda _: 1e-3
        )
    )
    assert wants_channels_last(setting, policy, torch.device(device)) is want


def pong_run(tmp_path: Path, steps: int, every: int) -> Path:
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    text = f"""\
algo: ppo
env: ALE/Pong-v5
n_timesteps: {steps}
checkpoint_every: {every}
seed: 3
device: cpu
hyperparams:
  n_envs: 2
  n_steps: 64
  batch_size: 64
  n_epochs: 1
"""
    path = store.submit(text, "pong.yaml")
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    return store.paths(record.id).dir


def trainer(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "training", str(run_dir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_atari_training_uses_it_and_its_checkpoint_loads_in_plain_sb3(tmp_path: Path) -> None:
    run_dir = pong_run(tmp_path, 256, 256)
    proc = trainer(run_dir)
    assert proc.wait(timeout=240) == 0
    log = (run_dir / "logs" / "train.log").read_text()
    assert "3 convolutions in channels-last layout" in log
    ckpt, _ = checkpoints.latest_complete(run_dir / "checkpoints")
    assert ckpt is not None and ckpt.step == 256
    plain = PPO.load(ckpt.model, device="cpu")  # what a user without Retro ML does
    assert all(p.is_contiguous() for p in plain.policy.parameters())
    fast = PPO.load(ckpt.model, device="cpu")
    use_channels_last(fast.policy)
    obs = frames(8, seed=11).numpy()
    with torch.no_grad():
        want = plain.policy.get_distribution(plain.policy.obs_to_tensor(obs)[0]).distribution
        got = fast.policy.get_distribution(fast.policy.obs_to_tensor(obs)[0]).distribution
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-5)


def test_stopped_atari_run_resumes_with_its_optimizer_state(tmp_path: Path) -> None:
    """The checkpoint holds Adam's moments as saved from channels-last weights; the resumed
    process loads them into a fresh (NCHW) model, converts it, and trains on."""
    run_dir = pong_run(tmp_path, 1024, 128)
    proc = trainer(run_dir)
    try:
        wait_for(
            lambda: checkpoints.latest_complete(run_dir / "checkpoints")[0] is not None,
            240,
            "a first checkpoint",
        )
        proc.send_signal(signal.SIGTERM)  # a stop request: checkpoint and exit
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first, _ = checkpoints.latest_complete(run_dir / "checkpoints")
    assert first is not None and first.step < 1024
    time.sleep(0.01)
    proc = trainer(run_dir)
    assert proc.wait(timeout=240) == 0
    log = (run_dir / "logs" / "train.log").read_text()
    assert f"resumed from {first.dir.name}" in log
    assert log.count("3 convolutions in channels-last layout") == 2
    last, _ = checkpoints.latest_complete(run_dir / "checkpoints")
    assert last is not None and last.step >= 1024  # PPO ends on whole rollouts after a stop
    resumed = PPO.load(last.model, device="cpu")
    assert resumed.num_timesteps == last.step
    assert all(torch.isfinite(p).all() for p in resumed.policy.parameters())
