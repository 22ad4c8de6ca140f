"""Evaluation during training (real SB3 runs): the protocol, eval/ scalars, best.zip, clips,
and ``init_from`` carrying weights into a new run."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from stable_baselines3 import PPO
from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv
from stable_baselines3.common.vec_env import VecEnvWrapper

from runstore import checkpoints
from runstore.config import ConfigError, parse_config, resolve
from runstore.metrics import load_scalars
from runstore.store import RunStore
from runstore.videos import list_clips
from training.evaluation import episode_targets, make_eval_env, run_episodes
from training.weights import WeightsError, check_compatible, resolve_init_from

from .conftest import ROOT, cartpole

INVADERS = {
    "algo": "ppo",
    "env": "ALE/SpaceInvaders-v5",
    "n_timesteps": 1000,
    "seed": 2,
    # Bounded games keep the test short: the ALE ends one after 6,000 frames.
    "hyperparams": {"env_kwargs": {"max_num_frames_per_episode": 6000}},
}


class RewardSpy(VecEnvWrapper):
    """Records what the evaluation env hands out per step: reward and lives left."""

    def __init__(self, venv):  # type: ignore[no-untyped-def]
        super().__init__(venv)
        self.rewards: list[float] = []
        self.lives: list[int] = []

    def reset(self):  # type: ignore[no-untyped-def]
        return self.venv.reset()

    def step_wait(self):  # type: ignore[no-untyped-def]
        obs, rewards, dones, infos = self.venv.step_wait()
        self.rewards.append(float(rewards[0]))
        self.lives.append(int(infos[0].get("lives", -1)))
        return obs, rewards, dones, infos


def wrappers(env: object) -> list[type]:
    found = []
    while env is not None:
        found.append(type(env))
        env = getattr(env, "env", None)
    return found


def test_eval_env_plays_whole_games_for_real_points() -> None:
    config = resolve(INVADERS)
    venv = make_eval_env(config)
    chain = wrappers(venv.unwrapped.envs[0])
    assert EpisodicLifeEnv not in chain and ClipRewardEnv not in chain
    spy = RewardSpy(venv)
    model = PPO("CnnPolicy", venv, n_steps=64, batch_size=64, device="cpu", seed=2)
    returns, lengths = run_episodes(model, spy, 1, deterministic=False, seed=2)
    spy.close()
    assert returns[0] == sum(spy.rewards) and lengths[0] == len(spy.rewards)
    assert max(spy.rewards) >= 5  # Space Invaders pays 5-30 points an alien: not clipped to 1
    assert spy.lives[0] == 3 and min(spy.lives) < 3  # lives were lost inside the one episode


def make_run(store: RunStore, text: str, name: str) -> Path:
    path = store.submit(text, name)
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    return store.paths(record.id).dir


def train(run_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "training", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_training_evaluates_writes_scalars_best_model_and_clips(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    text = """\
algo: ppo
env: ALE/SpaceInvaders-v5
n_timesteps: 192
seed: 4
backend: sb3
eval_every: 64
video_every: 1000
eval_episodes: 1
eval_deterministic: false
video_length: 60
hyperparams:
  n_envs: 1
  n_steps: 64
  batch_size: 64
  n_epochs: 1
  env_kwargs: {max_num_frames_per_episode: 2400}
"""
    run_dir = make_run(store, text, "invaders.yaml")
    train(run_dir)
    frame = load_scalars(run_dir)
    tags = set(frame["tag"].to_list())
    for tag in ("mean_return", "std_return", "min_return", "max_return", "mean_length"):
        assert f"eval/{tag}" in tags
    means = frame.filter(frame["tag"] == "eval/mean_return")
    assert means["step"].to_list() == [64, 128, 192]
    maxima = frame.filter(frame["tag"] == "eval/max_return")["value"].to_list()
    minima = frame.filter(frame["tag"] == "eval/min_return")["value"].to_list()
    # Real game points: Space Invaders pays in fives; a clipped score would count aliens.
    assert all(v % 5 == 0 for v in maxima + minima) and max(maxima) >= 5
    status = store.read_status(run_dir.name)
    assert status is not None
    assert status.last_eval_step == 192
    assert status.last_eval_return == means["value"].to_list()[-1]
    assert status.best_eval_return == max(means["value"].to_list())
    best = checkpoints.read_best(run_dir / "checkpoints")
    assert best is not None and best["eval_return"] == status.best_eval_return
    assert checkpoints.best_model(run_dir / "checkpoints") is not None
    clips = list_clips(run_dir / "videos")
    # The first evaluation films, the next is not due (video_every 1000), and the run's last
    # evaluation always films: the final agent is on video whatever video_every says.
    assert [c.step for c in clips] == [64, 192]
    assert clips[0].meta is not None and clips[0].meta.frames == 60
    assert clips[0].meta.eval_mean_return == means["value"].to_list()[0]


def test_init_from_loads_the_weights(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    source = make_run(store, cartpole(steps=128, ckpt=64), "a.yaml")
    train(source)
    ckpt = checkpoints.latest_complete(source / "checkpoints")[0]
    assert ckpt is not None
    # A vanishing learning rate: the new run's weights stay what it loaded (to ~1e-12), so its
    # checkpoint shows them.
    extra = f"init_from: {source.name}/{ckpt.dir.name}\n"
    lr_tiny = "  learning_rate: 1.0e-12\n"
    text = cartpole(steps=64, ckpt=64, extra=lr_tiny + extra).replace("seed: 1", "seed: 99")
    copy = make_run(store, text, "b.yaml")
    train(copy)
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)

    def actions(run_dir: Path | None) -> np.ndarray:
        if run_dir is None:  # a network the run would have started with on its own
            model = PPO("MlpPolicy", "CartPole-v1", seed=99, device="cpu")
        else:
            model = PPO.load(checkpoints.latest_complete(run_dir / "checkpoints")[0].model)
        return model.predict(obs, deterministic=True)[0]

    assert (actions(copy) == actions(source)).all()
    assert not (actions(None) == actions(source)).all()  # the check can tell them apart


def test_init_from_refuses_missing_runs_checkpoints_and_other_games(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    source = make_run(store, cartpole(steps=64, ckpt=64), "a.yaml")
    with pytest.raises(WeightsError, match="no run 20261125-000000-nothing-0000"):
        resolve_init_from(store.root, "20261125-000000-nothing-0000")
    with pytest.raises(WeightsError, match="no complete checkpoint"):
        resolve_init_from(store.root, source.name)
    with pytest.raises(WeightsError, match="no best model"):
        resolve_init_from(store.root, f"{source.name}/best")
    pong = resolve({"algo": "ppo", "env": "ALE/Pong-v5", "n_timesteps": 1000})
    with pytest.raises(WeightsError, match="only carry over between runs of the same"):
        check_compatible(pong, store.read_config(source.name), source.name)


@pytest.mark.parametrize(
    "value", ["../etc", "20261125-000000-a-0000/../../x", "run/step-1", "/abs/path"]
)
def test_init_from_must_name_a_run_and_checkpoint(value: str) -> None:
    with pytest.raises(ConfigError, match="init_from"):
        parse_config(cartpole(extra=f"init_from: '{value}'\n").encode())


def test_evaluation_defaults() -> None:
    atari = resolve({"algo": "ppo", "env": "ALE/Pong-v5", "n_timesteps": 10_000_000})
    assert (atari.eval_every, atari.video_every, atari.eval_episodes) == (250_000, 250_000, 5)
    assert atari.eval_deterministic and atari.video_overlay
    tiny = resolve({"algo": "ppo", "env": "ALE/Pong-v5", "n_timesteps": 10_000})
    assert tiny.eval_every == 0
    cart = resolve({"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 10_000_000})
    assert cart.eval_every == 0
    own = resolve({"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 1000, "eval_every": 100})
    assert own.video_every == 100


def test_episode_targets_share_the_games_out_evenly() -> None:
    assert episode_targets(10, 10) == [1] * 10
    assert episode_targets(7, 3) == [3, 2, 2]
    assert episode_targets(3, 10) == [1, 1, 1] + [0] * 7  # env 0, the filmed one, plays
    assert episode_targets(1, 1) == [1]
    assert all(sum(episode_targets(e, n)) == e for e in range(1, 30) for n in range(1, 11))


def test_games_played_side_by_side_are_the_games_each_env_plays_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batching is only a speed-up: env ``i`` of a batched evaluation plays exactly the games a
    single env seeded ``seed + i`` plays, each counted once, env 0's first game first (the
    filmed one). An env that has played its share sits out: its game is not stepped while
    the others finish theirs."""
    config = resolve(parse_config(b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\nseed: 1"))
    venv = make_eval_env(config, 3)
    assert venv.num_envs == 3
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=64, device="cpu", seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: 2 threads on a loaded 2-core machine take 5x longer
    try:
        model.learn(1024)  # games of different lengths, not ten-step falls
    finally:
        torch.set_num_threads(threads)
    stepped: Counter[int] = Counter()
    step = CartPoleEnv.step

    def counted(self: CartPoleEnv, action: int) -> tuple:
        stepped[id(self)] += 1
        return step(self, action)

    monkeypatch.setattr(CartPoleEnv, "step", counted)
    returns, lengths = run_episodes(model, venv, 7, seed=50)
    games = [sum(lengths[:3]), sum(lengths[3:5]), sum(lengths[5:])]  # shares 3, 2, 2
    assert [stepped[id(env.unwrapped)] for env in venv.envs] == games
    venv.close()
    alone: list[float] = []
    for i, share in enumerate(episode_targets(7, 3)):
        single = make_eval_env(config)
        games, _ = run_episodes(model, single, share, seed=50 + i)
        single.close()
        alone += games
    assert returns == alone and lengths == [int(r) for r in alone]  # CartPole pays 1 a step
    assert len(set(returns)) > 1
