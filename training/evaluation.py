"""Evaluate the agent the way scores are reported: full games, real points, own environment.

The evaluation protocol (Machado et al. 2018, and what the RL Zoo reports): deterministic
actions by default, no reward clipping, no episodic-life resets (an episode is a whole game),
the same preprocessing otherwise, and a separate environment so training episodes are not
cut. Results go to TensorBoard under ``eval/``, to status.json, and the best model by mean
evaluation return is kept as ``checkpoints/best.zip`` (its SHA-256 signed in best.json with
the runs folder's key, ``checkpoints.commit_best``; only numbers are read back from best.json,
nothing is loaded from best.zip here). The first episode of an evaluation can be recorded as
a clip of the full-colour game screen.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecEnvWrapper,
    VecFrameStack,
    VecNormalize,
)

from runstore import checkpoints, tags
from runstore.config import AtariSettings, RunConfig
from runstore.paths import RunPaths
from runstore.videos import Clip, ClipMeta, clip_path
from training.envs import atari_env_kwargs, atari_wrapper, make_env, register_atari
from training.status import StatusWriter
from training.video import ClipWriter, Overlay

log = logging.getLogger(__name__)

# Every evaluation plays the same seeded games (comparable across steps), unlike training's.
EVAL_SEED_OFFSET = 1_000_003
PROGRESS_EVERY = 250  # game steps (all envs together) between heartbeats while evaluating
#: Games played side by side: one forward pass for ten frames cost 2.4x one for a single
#: frame, so ten Pong games took 1.6x less time than one at a time (docs/performance.md).
MAX_EVAL_ENVS = 10


class VideoError(RuntimeError):
    """The game could not be rendered or encoded; evaluation goes on without a clip."""


@dataclass
class EvalResult:
    step: int
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    clip: Clip | None = None
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    def scalars(self) -> dict[str, float]:
        r, n = np.asarray(self.returns, dtype=float), np.asarray(self.lengths, dtype=float)
        return {
            tags.EVAL_MEAN_RETURN: float(r.mean()),
            tags.EVAL_STD_RETURN: float(r.std()),
            tags.EVAL_MIN_RETURN: float(r.min()),
            tags.EVAL_MAX_RETURN: float(r.max()),
            tags.EVAL_MEAN_LENGTH: float(n.mean()),
            tags.EVAL_STD_LENGTH: float(n.std()),
            tags.EVAL_MIN_LENGTH: float(n.min()),
            tags.EVAL_MAX_LENGTH: float(n.max()),
            tags.EVAL_SECONDS: self.seconds,
        }


class Parkable(gym.Wrapper):
    """An evaluation env that can sit out: once it has played its share of games, stepping
    it repeats its last observation (reward 0, not done) without running the game. Games
    differ in length (an agent that keeps the ball in play can make one last many times
    longer), and a vector env steps every env until the longest game ends."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.parked = False
        self._last: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.parked = False
        obs, info = self.env.reset(**kwargs)
        self._last = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.parked:
            return self._last, 0.0, False, False, {}
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._last = obs
        return obs, reward, terminated, truncated, info


def _make_one(config: RunConfig) -> Parkable:
    hp = config.hyperparams
    assert hp is not None
    kwargs: dict[str, Any] = {**dict(hp.env_kwargs), "render_mode": "rgb_array"}
    if not config.is_atari:
        return Parkable(make_env(config.env, **kwargs))
    register_atari()
    settings = config.atari or AtariSettings()
    env = make_env(config.env, **atari_env_kwargs(settings, kwargs))
    return Parkable(atari_wrapper(env, settings, training=False))


def eval_envs(config: RunConfig) -> int:
    """Games an evaluation plays side by side: all of them, up to ``MAX_EVAL_ENVS``."""
    return max(1, min(config.eval_episodes, MAX_EVAL_ENVS))


def make_eval_env(config: RunConfig, n_envs: int = 1) -> VecEnv:
    """``n_envs`` environments, evaluation protocol, rendering full-colour frames (the first
    one is filmed). Stepped in one process: training waits while it evaluates, and the gain
    is the policy's forward pass over all games at once (docs/performance.md)."""
    env: VecEnv = DummyVecEnv([functools.partial(_make_one, config)] * n_envs)
    stack = (config.atari or AtariSettings()).frame_stack if config.is_atari else None
    stack = stack or (config.hyperparams.frame_stack if config.hyperparams else None)
    if stack and stack > 1:
        env = VecFrameStack(env, n_stack=stack)
    return env


def clip_fps(config: RunConfig, env: VecEnv) -> float:
    """Real-time playback: one frame per agent step, the game's rate over the frame skip."""
    if config.is_atari:  # the console's 60 Hz (ale-py's metadata says 30: its render rate)
        return 60.0 / (config.atari or AtariSettings()).frame_skip
    return float(env.get_attr("metadata")[0].get("render_fps") or 30)


def run_episodes(
    model: BaseAlgorithm,
    env: VecEnv,
    episodes: int,
    deterministic: bool = True,
    writer: ClipWriter | None = None,
    progress: Callable[[], bool] | None = None,
    seed: int | None = None,
) -> tuple[list[float], list[int]] | None:
    """Play ``episodes`` whole games on ``env``'s envs side by side; env 0's first game goes
    to ``writer`` (up to its frame bound). Returns None when ``progress`` asked to stop."""
    threads = torch.get_num_threads()
    # At most MAX_EVAL_ENVS small frames a forward pass: intra-op threads only add sync cost
    # (measured 10-16x slower with 2 threads on a busy 2-core machine, for 1 and for 10
    # frames), so play on one and give them back after.
    torch.set_num_threads(1)
    try:
        return _play(model, env, episodes, deterministic, writer, progress, seed)
    finally:
        torch.set_num_threads(threads)


def episode_targets(episodes: int, n_envs: int) -> list[int]:
    """Games each env plays so that ``episodes`` are played in all: spread evenly and fixed in
    advance, so short games do not crowd out long ones (as SB3's ``evaluate_policy``); the
    remainder goes to the first envs, so env 0 (the filmed one) always plays."""
    share, rest = divmod(episodes, n_envs)
    return [share + (i < rest) for i in range(n_envs)]


def _play(
    model: BaseAlgorithm,
    env: VecEnv,
    episodes: int,
    deterministic: bool,
    writer: ClipWriter | None,
    progress: Callable[[], bool] | None,
    seed: int | None,
) -> tuple[list[float], list[int]] | None:
    """Every env plays its share of games; env ``i`` is seeded ``seed + i`` (VecEnv.seed),
    so each evaluation plays the same games. Env 0's first game is the filmed one and comes
    first in the returned lists (the clip's score is ``returns[0]``)."""
    if seed is not None:
        env.seed(seed)
    obs = env.reset()
    n = env.num_envs
    targets = episode_targets(episodes, n)
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    score, length = np.zeros(n), np.zeros(n, dtype=int)
    steps = 0
    state = None
    starts = np.ones((n,), dtype=bool)
    inner = env.unwrapped if isinstance(env, VecEnvWrapper) else env
    envs: list[Parkable] = inner.envs  # type: ignore[attr-defined]
    for env_i, target in zip(envs, targets, strict=True):
        env_i.parked = target == 0  # an env with no game to play sits out
    while (playing := np.flatnonzero([not env_i.parked for env_i in envs])).size:
        if writer is not None and not returns[0] and not writer.full:
            try:
                frame = envs[0].render()
            except Exception as exc:  # e.g. pygame missing for classic-control games
                raise VideoError(f"{type(exc).__name__}: {exc}") from exc
            if frame is None:
                raise VideoError("the environment rendered no frame (render_mode rgb_array?)")
            writer.add(frame, episode=1, score=float(score[0]))
        action, state = model.predict(
            obs[playing],  # type: ignore[index]
            state=state,
            episode_start=starts[playing],
            deterministic=deterministic,
        )
        actions = np.zeros((n, *np.shape(action)[1:]), dtype=np.asarray(action).dtype)
        actions[playing] = action
        obs, rewards, dones, infos = env.step(actions)
        if isinstance(env, VecNormalize):
            rewards = env.get_original_reward()
        score += rewards
        length += 1
        steps += len(playing)
        starts = dones
        for i in playing[dones[playing]]:  # a parked env's game is not stepped
            returns[i].append(float(score[i]))
            lengths[i].append(int(length[i]))
            score[i], length[i] = 0.0, 0
            envs[i].parked = len(returns[i]) == targets[i]  # its share played: it sits out
        if progress is not None and steps % PROGRESS_EVERY < len(playing) and not progress():
            return None
    return list(itertools.chain(*returns)), list(itertools.chain(*lengths))


class Evaluator:
    """Called by the training callback every ``eval_every`` steps (and once at the end)."""

    def __init__(self, config: RunConfig, paths: RunPaths, status: StatusWriter, train_env: VecEnv):
        self.config = config
        self.paths = paths
        self.status = status
        self.train_env = train_env
        self.env: VecEnv = make_eval_env(config, eval_envs(config))
        if isinstance(train_env, VecNormalize):
            self.env = VecNormalize(self.env, training=False, norm_reward=False)
        self.fps = clip_fps(config, self.env)
        self.last_step: int | None = None
        self.next_video = 0
        self.videos_ok = True
        best = checkpoints.read_best(paths.checkpoints)
        self.best: float | None = float(best["eval_return"]) if best else None
        if best:  # a resumed run remembers its best evaluation
            status.write(best_eval_return=self.best, best_eval_step=int(best.get("step", 0)))
        self.stop_requested: Callable[[], bool] = lambda: False

    def video_due(self, step: int) -> bool:
        every = self.config.video_every or 0
        if every <= 0 or step < self.next_video:
            return False
        self.next_video = (step // every + 1) * every
        return True

    def __call__(
        self, model: BaseAlgorithm, step: int, tb: Any | None, final: bool = False
    ) -> EvalResult | None:
        """Evaluate at ``step``; film it when a clip is due, and always when ``final`` (the
        run's last evaluation) with clips on: the best and last agent is always on video."""
        started = time.monotonic()
        self.status.write(step, phase="evaluating")
        if isinstance(self.env, VecNormalize) and isinstance(self.train_env, VecNormalize):
            self.env.obs_rms = copy.deepcopy(self.train_env.obs_rms)
        film = self.video_due(step) or (final and (self.config.video_every or 0) > 0)
        writer = self._writer(step) if film else None

        def progress() -> bool:
            self.status.tick(step)
            return not self.stop_requested()

        try:
            played = self._play(model, writer, progress)
        except VideoError as exc:  # a clip is a nicety: evaluate on without videos
            log.warning("clips turned off for this run: %s", exc)
            writer.abort()  # type: ignore[union-attr]
            writer, self.videos_ok = None, False
            played = self._play(model, None, progress)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        self.last_step = step
        if played is None:  # a stop request arrived: no half evaluation is reported
            if writer is not None:
                writer.abort()
            self.status.write(step, phase="training")
            return None
        result = EvalResult(step, *played, seconds=time.monotonic() - started)
        if writer is not None:
            result.clip = writer.close(self._meta(result))
        self._report(model, result, tb)
        return result

    def _writer(self, step: int) -> ClipWriter | None:
        if not self.videos_ok:
            return None
        overlay = Overlay(self.config.display_name, step) if self.config.video_overlay else None
        try:
            return ClipWriter(
                clip_path(self.paths.videos, step), self.fps, self.config.video_length, overlay
            )
        except OSError as exc:
            log.warning("clips turned off for this run: could not start the encoder: %s", exc)
            self.videos_ok = False
            return None

    def _play(
        self, model: BaseAlgorithm, writer: ClipWriter | None, progress: Callable[[], bool]
    ) -> tuple[list[float], list[int]] | None:
        return run_episodes(
            model,
            self.env,
            self.config.eval_episodes,
            self.config.eval_deterministic,
            writer,
            progress,
            seed=(self.config.seed or 0) + EVAL_SEED_OFFSET,
        )

    def _meta(self, result: EvalResult) -> ClipMeta:
        return ClipMeta(
            step=result.step,
            kind="eval",
            run_name=self.config.display_name,
            env=self.config.env,
            algo=self.config.algo,
            episode_return=result.returns[0],
            episode_length=result.lengths[0],
            eval_mean_return=result.mean,
            eval_episodes=len(result.returns),
            deterministic=self.config.eval_deterministic,
        )

    def _report(self, model: BaseAlgorithm, result: EvalResult, tb: Any | None) -> None:
        if tb is not None:
            for tag, value in result.scalars().items():
                tb.add_scalar(tag, value, result.step)
            tb.flush()
        fields: dict[str, Any] = {
            "last_eval_return": result.mean,
            "last_eval_step": result.step,
            "phase": "training",
        }
        if self.best is None or result.mean > self.best:
            self.best = result.mean
            staging = checkpoints.best_staging(self.paths.checkpoints)
            model.save(staging)
            checkpoints.commit_best(staging, result.step, result.mean, {"algo": self.config.algo})
            fields.update(best_eval_return=result.mean, best_eval_step=result.step)
        self.status.write(result.step, **fields)
        log.info(
            "evaluation at step %d: mean return %.2f over %d episodes (%.1f s)%s",
            result.step,
            result.mean,
            len(result.returns),
            result.seconds,
            f", clip {result.clip.path.name}" if result.clip else "",
        )

    def close(self) -> None:
        self.env.close()
