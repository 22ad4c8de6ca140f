"""The native Atari backend: ale-py's C++ vector environment behind SB3's VecEnv interface.

``ale_py.vector_env.AtariVectorEnv`` steps every game in C++ threads and does frame skipping,
max-pooling, no-op and fire resets, the 84x84 grayscale resize and frame stacking there too, so
one vector step is one call without Python wrappers or inter-process pipes. This module adapts
it to what SB3 expects from a VecEnv and to what training/callbacks.py reads:

- observations ``(n_envs, frame_stack, 84, 84)`` uint8, channels first (oldest frame first), so
  SB3's CnnPolicy takes them as they are (it transposes only channels-last images);
- a finished game's obs in ``infos[i]["terminal_observation"]`` and the new game's first obs in
  the returned batch (SB3's auto-reset contract), ``TimeLimit.truncated`` for a cut-off game;
- Monitor's ``infos[i]["episode"] = {"r", "l", "t"}`` once per *real game*, with the real
  (unclipped) score, the game's length in emulator frames (as Monitor counts them on the
  ``frameskip=1`` env of the SB3 backend) and seconds since the env was built.

Same semantics as the SB3 wrapper chain in training/envs.py (``backend: sb3``), all read from
the config's ``atari`` block: frame skip with max-pool over the last two frames, up to
``noop_max`` random no-ops on reset, FIRE on reset where the game has it, grayscale resize,
``frame_stack`` frames, sticky actions with ``repeat_action_probability`` (per emulator frame,
as in ALE v5), the env's own frame limit (108,000 frames for ``ALE/*-v5``).

Where episodic life and reward clipping live, and the differences that follow (documented in
the README's performance section too):

1. Reward clipping (sign of the reward summed over the skipped frames, as ClipRewardEnv) is
   done here in Python, not in C++, so the real score survives for ``info["episode"]``.
2. Episodic life is done here: a lost life (lives went down, game not over) is reported as
   ``done`` with the current obs as terminal observation, while the C++ game simply goes on,
   as EpisodicLifeEnv does. Unlike the SB3 chain, no no-op/FIRE steps follow a lost life (the
   agent presses FIRE itself, as with envpool/CleanRL), and the frame stack is not cleared at a
   lost life (VecFrameStack zeroes it on every ``done``); at a real game over it restarts.
3. ALE max-pools the last two skipped frames after the grayscale, SB3's MaxAndSkipEnv before
   it (over RGB): a few pixels around moving objects differ. The resize is OpenCV's
   INTER_AREA pixel for pixel (tests/test_atari_vec.py compares the two chains frame by frame).
4. Seeding: ``seed(s)`` seeds env ``i`` with ``s + i`` as SB3 does, but the random no-ops draw
   from the emulator's streams, not gymnasium's, and the FIRE reset differs (SB3 presses FIRE,
   then action 2), so the same seed gives other games than ``backend: sb3`` (without either,
   the same games). Parity with plain SB3 is a property of ``backend: sb3``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from runstore.config import AtariSettings

# gym.make kwargs of an ALE env that this backend honours; any other one needs backend: sb3.
SUPPORTED_ENV_KWARGS = frozenset(
    {"repeat_action_probability", "full_action_space", "max_num_frames_per_episode"}
)


class NativeBackendError(ValueError):
    """The config asks for something the native Atari backend cannot do."""


def rom_name(env_id: str) -> str:
    """The ROM ale-py knows a registered Atari env id by (``ALE/Pong-v5`` -> ``pong``)."""
    import ale_py

    gym.register_envs(ale_py)
    spec = gym.spec(env_id)
    game = spec.kwargs.get("game")
    if not isinstance(game, str) or spec.kwargs.get("obs_type", "rgb") != "rgb":
        raise NativeBackendError(
            f"{env_id} is not a pixel Atari env the native backend can run; use backend: sb3"
        )
    return game


def unsupported_env_kwargs(env_kwargs: dict[str, Any]) -> list[str]:
    return sorted(set(env_kwargs) - SUPPORTED_ENV_KWARGS)


class NativeAtariVecEnv(VecEnv):
    """``AtariVectorEnv`` as an SB3 VecEnv with training-time episodic life and reward clipping.

    :param env_id: a registered ALE env id, e.g. ``ALE/Pong-v5``
    :param n_envs: number of games stepped together
    :param settings: the resolved config's ``atari`` block
    :param training: episodic life and reward clipping apply only while training (as in
        training/envs.py); an evaluation env reports real rewards and whole games
    :param env_kwargs: the config's ``hyperparams.env_kwargs`` (only sticky actions, the action
        set and the frame limit are honoured; anything else raises NativeBackendError)
    :param num_threads: C++ worker threads; 0 lets ale-py choose (one per env, capped by cores)
    """

    def __init__(
        self,
        env_id: str,
        n_envs: int,
        settings: AtariSettings,
        training: bool = True,
        env_kwargs: dict[str, Any] | None = None,
        num_threads: int = 0,
    ):
        from ale_py.vector_env import AtariVectorEnv

        env_kwargs = dict(env_kwargs or {})
        bad = unsupported_env_kwargs(env_kwargs)
        if bad:
            raise NativeBackendError(
                f"env_kwargs {', '.join(bad)} are not supported by the native Atari backend; "
                "remove them or set backend: sb3"
            )
        spec_kwargs = gym.spec(env_id).kwargs
        self.settings = settings
        self.training = training
        self._episodic_life = training and settings.terminal_on_life_loss
        self._clip = training and settings.clip_reward
        self.env = AtariVectorEnv(
            rom_name(env_id),
            n_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=int(
                env_kwargs.get(
                    "max_num_frames_per_episode",
                    spec_kwargs.get("max_num_frames_per_episode", 108_000),
                )
            ),
            repeat_action_probability=float(
                env_kwargs.get("repeat_action_probability", settings.repeat_action_probability)
            ),
            full_action_space=bool(env_kwargs.get("full_action_space", settings.full_action_space)),
            autoreset_mode=AutoresetMode.SAME_STEP,
            img_height=settings.screen_size,
            img_width=settings.screen_size,
            grayscale=True,
            stack_num=settings.frame_stack,
            frameskip=settings.frame_skip,
            maxpool=True,
            noop_max=settings.noop_max,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=settings.fire_reset,
        )
        self.render_mode = None
        super().__init__(n_envs, self.env.single_observation_space, self.env.single_action_space)
        self._t_start = time.time()
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(n_envs, dtype=np.float64)
        self._lives = np.zeros(n_envs, dtype=np.int32)
        self._episode_start = np.zeros(n_envs, dtype=np.int64)  # frame_number at game start

    # -- VecEnv ------------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seeds = None if self._seeds[0] is None else np.asarray(self._seeds, dtype=np.int64)
        obs, info = self.env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lives[:] = info["lives"]
        self._episode_start[:] = info["frame_number"] - info["episode_frame_number"]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must come before step_wait"
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        reward = reward.astype(np.float32)
        self._returns += reward
        game_over = terminated | truncated
        lives = info["lives"]
        dones = game_over.copy()
        if self._episodic_life:
            life_lost = (lives < self._lives) & (lives > 0) & ~game_over
            dones |= life_lost
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = obs[i].copy()
        if game_over.any():
            self._game_over(np.flatnonzero(game_over), info, truncated & ~terminated, infos)
        self._lives[:] = lives
        if self._clip:
            reward = np.sign(reward)
        return obs, reward, dones, infos

    def _game_over(
        self,
        ended: np.ndarray,
        info: dict[str, np.ndarray],
        cut: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Monitor's episode record for each finished game; the batch already holds the next
        game's first obs (same-step auto-reset) and ``final_obs`` the last one of this game."""
        final_obs = info["final_obs"]
        # frame_number counts on across games; the new game has run episode_frame_number
        # frames of its reset (no-ops, FIRE) already.
        new_start = info["frame_number"] - info["episode_frame_number"]
        now = round(time.time() - self._t_start, 6)
        for i in ended:
            infos[i]["terminal_observation"] = np.array(final_obs[i])
            infos[i]["episode"] = {
                "r": float(self._returns[i]),
                "l": int(new_start[i] - self._episode_start[i]),
                "t": now,
            }
            infos[i]["TimeLimit.truncated"] = bool(cut[i])
            self._returns[i] = 0.0
            self._episode_start[i] = new_start[i]

    def close(self) -> None:
        self.env.close()

    # The C++ env has no per-env Python objects: attributes are this adapter's own.

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        raise NotImplementedError(
            f"the native Atari backend has no per-env objects to call {method_name!r} on; "
            "use backend: sb3 for code that needs gymnasium wrappers"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        # SB3 asks whether a Monitor is there; the episode records above stand in for it.
        from stable_baselines3.common.monitor import Monitor

        return [wrapper_class is Monitor for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
