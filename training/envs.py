"""Build the training environment a config asks for.

Atari games get the DeepMind preprocessing from SB3's own wrappers, composed here so every
switch in the config's ``atari`` block is honoured; the ALE's frame skip is set to 1 because
the wrappers skip frames themselves (``ALE/*-v5`` skips 4 by default, which would skip 16).
With ``backend: native`` (the default for Atari) ale-py's C++ vector env does the same
preprocessing instead (training/atari_vec.py lists the differences).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
from stable_baselines3.common.atari_wrappers import (
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
    WarpFrame,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecNormalize,
)

from runstore.config import AtariSettings, RunConfig
from runstore.envs import atari_env_ids
from training.atari_vec import NativeAtariVecEnv, unsupported_env_kwargs


def register_atari() -> None:
    import ale_py

    gym.register_envs(ale_py)


def atari_wrapper(env: gym.Env, settings: AtariSettings, training: bool = True) -> gym.Env:
    """The AtariWrapper chain; episodic life and reward clipping only while training."""
    if settings.noop_max > 0:
        env = NoopResetEnv(env, noop_max=settings.noop_max)
    if settings.frame_skip > 1:
        env = MaxAndSkipEnv(env, skip=settings.frame_skip)
    if training and settings.terminal_on_life_loss:
        env = EpisodicLifeEnv(env)
    if settings.fire_reset and "FIRE" in env.unwrapped.get_action_meanings():
        env = FireResetEnv(env)
    env = WarpFrame(env, width=settings.screen_size, height=settings.screen_size)
    if training and settings.clip_reward:
        env = ClipRewardEnv(env)
    return env


def atari_env_kwargs(settings: AtariSettings, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ALE's kwargs under ``atari_wrapper`` (training and evaluation alike): frame skip 1,
    since the wrapper skips frames itself, and the config's sticky actions and action set; the
    config's own ``env_kwargs`` win."""
    return {
        "frameskip": 1,
        "repeat_action_probability": settings.repeat_action_probability,
        "full_action_space": settings.full_action_space,
        **env_kwargs,
    }


def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """Create one env; module-level so SubprocVecEnv workers (forkserver/spawn, a fresh
    interpreter) can unpickle it, and registering ale-py there too."""
    if env_id in atari_env_ids():
        register_atari()
    return gym.make(env_id, **kwargs)


def vec_env_class(config: RunConfig) -> type[VecEnv]:
    """Subprocesses pay off when one env step costs more than the IPC (Atari, several envs)."""
    assert config.hyperparams is not None
    if config.vec_env == "subproc":
        return SubprocVecEnv
    if config.vec_env == "dummy":
        return DummyVecEnv
    return SubprocVecEnv if config.is_atari and config.hyperparams.n_envs > 1 else DummyVecEnv


def uses_native_backend(config: RunConfig) -> bool:
    """``auto`` picks ale-py's native vector env for Atari (measured faster: README,
    Performance) unless the config needs a gymnasium wrapper it cannot replace."""
    if config.backend == "sb3" or not config.is_atari:
        return False
    if config.backend == "native":
        return True
    assert config.hyperparams is not None
    return not unsupported_env_kwargs(config.hyperparams.env_kwargs)


def make_train_env(config: RunConfig, seed: int) -> VecEnv:
    hp = config.hyperparams
    assert hp is not None
    if uses_native_backend(config):
        env: VecEnv = NativeAtariVecEnv(
            config.env, hp.n_envs, config.atari or AtariSettings(), env_kwargs=hp.env_kwargs
        )
        env.seed(seed)
        return VecNormalize(env, gamma=hp.gamma) if hp.normalize else env
    vec_cls = vec_env_class(config)
    vec_kwargs = {"start_method": "forkserver"} if vec_cls is SubprocVecEnv else None
    env_kwargs = dict(hp.env_kwargs)
    wrapper = None
    wrapper_kwargs = None
    stack = hp.frame_stack
    if config.is_atari:
        register_atari()
        settings = config.atari or AtariSettings()
        env_kwargs = atari_env_kwargs(settings, env_kwargs)
        wrapper = atari_wrapper
        wrapper_kwargs = {"settings": settings}
        stack = settings.frame_stack
    env = make_vec_env(
        functools.partial(make_env, config.env),
        n_envs=hp.n_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        wrapper_class=wrapper,
        wrapper_kwargs=wrapper_kwargs,
        vec_env_cls=vec_cls,
        vec_env_kwargs=vec_kwargs,
    )
    if stack and stack > 1:
        env = VecFrameStack(env, n_stack=stack)
    if hp.normalize:
        env = VecNormalize(env, gamma=hp.gamma)
    return env
