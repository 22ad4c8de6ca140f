"""Parity with plain Stable-Baselines3: same seed and hyperparameters give the same training.

Our trainer (``python -m training RUN_DIR``, backend ``sb3``, CPU) and the script a user would
write with SB3 alone must produce the same episode returns, episode for episode: same env
seeding (``seed + rank``), same wrapper chain, same policy initialisation, same updates. Both run
as fresh processes with the same torch thread count; CPU kernels of this small MLP are
deterministic there, so equality is exact. The episodes after the first rollout depend on the
updated policy, so equal returns past it also mean equal gradient steps.

The Atari half checks the env: our ``backend: sb3`` env against ``make_atari_env`` +
``VecFrameStack`` step for step (a Pong game is too long for a training-parity test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from runstore import RunStore
from runstore.config import parse_config
from runstore.metrics import load_episodes

ROOT = Path(__file__).resolve().parent.parent
SEED = 7
STEPS = 1536
EPISODES = 25

CONFIG = f"""\
algo: ppo
env: CartPole-v1
n_timesteps: {STEPS}
seed: {SEED}
device: cpu
backend: sb3
checkpoint_every: 100000
hyperparams:
  n_envs: 1
  n_steps: 128
  batch_size: 64
  n_epochs: 2
"""

PLAIN_SCRIPT = f"""
import json, sys
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import load_results

torch.set_num_threads(int(sys.argv[2]))
env = make_vec_env("CartPole-v1", n_envs=1, seed={SEED}, monitor_dir=sys.argv[1])
model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed={SEED}, device="cpu")
model.learn(total_timesteps={STEPS})
env.close()
print(json.dumps(load_results(sys.argv[1])["r"].tolist()))
"""


def test_trainer_matches_plain_sb3_episode_for_episode(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    path = store.submit(CONFIG, "parity.yaml")
    record = store.accept(path, store.read_queue_file(path))
    run = store.paths(record.id)
    threads = "1"
    env = {**os.environ, "RETRO_ML_TORCH_THREADS": threads}
    ours = subprocess.run(
        [sys.executable, "-m", "training", str(run.dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ours.returncode == 0, run.train_log.read_text()
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_SCRIPT, str(tmp_path / "plain"), threads],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    plain_returns = json.loads(plain.stdout.strip().splitlines()[-1])
    our_returns = load_episodes(run.dir)["episode_return"].to_list()
    assert len(plain_returns) >= EPISODES and len(our_returns) >= EPISODES
    # Past the first rollout (128 steps) the policy has been updated: equality there means
    # the same gradient steps, not only the same env seeds.
    assert sum(plain_returns[:EPISODES]) > 128
    assert our_returns[:EPISODES] == plain_returns[:EPISODES]


def test_sb3_backend_env_is_make_atari_env_step_for_step():
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from training.envs import make_train_env

    gym.register_envs(ale_py)
    config = parse_config(
        b"algo: ppo\nenv: ALE/Pong-v5\nn_timesteps: 1000\nbackend: sb3\nvec_env: dummy\n"
        b"hyperparams:\n  n_envs: 2\n"
    )
    ours = make_train_env(config, seed=SEED)
    plain = VecFrameStack(
        make_atari_env("ALE/Pong-v5", n_envs=2, seed=SEED, env_kwargs={"frameskip": 1}), 4
    )
    try:
        assert ours.observation_space == plain.observation_space
        np.testing.assert_array_equal(ours.reset(), plain.reset())
        rng = np.random.default_rng(SEED)
        for _ in range(300):
            actions = rng.integers(0, 6, 2)
            o1, r1, d1, i1 = ours.step(actions)
            o2, r2, d2, i2 = plain.step(actions)
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_array_equal(d1, d2)
            assert [i.get("lives") for i in i1] == [i.get("lives") for i in i2]
        assert np.any(o1)  # the screens are real frames, not zeros on both sides
    finally:
        ours.close()
        plain.close()
