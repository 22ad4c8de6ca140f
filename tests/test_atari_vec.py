"""The native Atari backend (training/atari_vec.py) keeps SB3's VecEnv contract and our
episode semantics: real game scores once per game, episodic life and clipped rewards only for
training, terminal observations on every ``done``, channels-first frames CnnPolicy takes as is.

Real ale-py C++ envs throughout (Space Invaders: lives, FIRE, rewards above 1 point).
"""

from __future__ import annotations

import numpy as np
import pytest

from runstore.config import AtariSettings, ConfigError, parse_config
from training.atari_vec import NativeAtariVecEnv, NativeBackendError
from training.envs import make_train_env, uses_native_backend

GAME = "ALE/SpaceInvaders-v5"
N_ENVS = 4


def _config(extra: str = "", env: str = GAME) -> bytes:
    return f"algo: ppo\nenv: {env}\nn_timesteps: 1000\nseed: 3\n{extra}".encode()


def test_spaces_are_channels_first_frame_stacks():
    env = NativeAtariVecEnv(GAME, N_ENVS, AtariSettings(frame_stack=4, screen_size=84))
    try:
        assert env.observation_space.shape == (4, 84, 84)
        assert env.observation_space.dtype == np.uint8
        assert env.action_space.n == 6
        env.seed(1)
        obs = env.reset()
        assert obs.shape == (N_ENVS, 4, 84, 84) and obs.any()
        first = env.step(np.zeros(N_ENVS, dtype=np.int64))[0]
        second = env.step(np.zeros(N_ENVS, dtype=np.int64))[0]
        # Oldest frame first, as VecFrameStack after SB3's transpose: frames shift left.
        np.testing.assert_array_equal(second[:, :3], first[:, 1:])
    finally:
        env.close()


def test_same_seed_same_games_other_seed_other_games():
    envs = [NativeAtariVecEnv(GAME, 2, AtariSettings()) for _ in range(3)]
    try:
        for env, seed in zip(envs, (11, 11, 12), strict=True):
            env.seed(seed)
        resets = [env.reset() for env in envs]
        actions = np.random.default_rng(0).integers(0, 6, (200, 2))
        frames = [[env.step(a)[0] for a in actions][-1] for env in envs]
        np.testing.assert_array_equal(resets[0], resets[1])
        np.testing.assert_array_equal(frames[0], frames[1])
        assert not np.array_equal(frames[0], frames[2])
    finally:
        for env in envs:
            env.close()


def test_training_env_clips_and_splits_lives_but_reports_real_games():
    """A training env and an evaluation env on the same seeds play the same games; the
    training one clips rewards and ends an 'episode' at every lost life, yet its Monitor-style
    episode record carries the real score of the whole game, like the SB3 wrapper chain."""
    train = NativeAtariVecEnv(GAME, N_ENVS, AtariSettings(), training=True)
    plain = NativeAtariVecEnv(GAME, N_ENVS, AtariSettings(), training=False)
    try:
        train.seed(5)
        plain.seed(5)
        train.reset()
        plain.reset()
        rng = np.random.default_rng(0)
        score = np.zeros(N_ENVS)
        agent_steps = np.zeros(N_ENVS, dtype=int)
        games, life_losses = [], 0
        while len(games) < 3:
            actions = rng.integers(0, 6, N_ENVS)
            obs, reward, done, infos = train.step(actions)
            p_obs, p_reward, p_done, p_infos = plain.step(actions)
            np.testing.assert_array_equal(obs, p_obs)
            assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
            np.testing.assert_array_equal(reward, np.sign(p_reward))
            score += p_reward
            agent_steps += 1
            assert not (p_done & ~done).any()  # a game over is a done in both
            for i in np.flatnonzero(done):
                assert infos[i]["terminal_observation"].shape == (4, 84, 84)
                if "episode" not in infos[i]:
                    life_losses += 1
                    assert not p_done[i]  # a lost life ends nothing in the evaluation env
                    continue
                assert p_done[i]
                record, p_record = infos[i]["episode"], p_infos[i]["episode"]
                assert record["r"] == p_record["r"] == score[i]
                # Length in emulator frames (as Monitor counts on the frameskip=1 env):
                # 4 per agent step, plus the reset's no-ops and FIRE, less a cut-short skip.
                assert -4 < record["l"] - 4 * agent_steps[i] <= 30 + 8
                assert record["t"] >= 0 and infos[i]["TimeLimit.truncated"] is False
                games.append(record["r"])
                score[i], agent_steps[i] = 0.0, 0
        assert life_losses >= 2 * len(games)  # Space Invaders: 3 lives per game
        assert max(games) > 1  # real points (5-30 per invader), not clipped ones
    finally:
        train.close()
        plain.close()


def test_backend_choice_from_config():
    assert uses_native_backend(parse_config(_config()))
    assert uses_native_backend(parse_config(_config("backend: native\n")))
    assert not uses_native_backend(parse_config(_config("backend: sb3\n")))
    assert not uses_native_backend(parse_config(_config(env="CartPole-v1")))
    # auto falls back to SB3's wrappers for a gym.make keyword the C++ env has no use for
    odd = "hyperparams:\n  env_kwargs:\n    mode: 1\n"
    assert not uses_native_backend(parse_config(_config(odd)))
    with pytest.raises(NativeBackendError, match="mode.*backend: sb3"):
        make_train_env(parse_config(_config("backend: native\n" + odd)), seed=0)
    with pytest.raises(ConfigError, match="native runs Atari games only"):
        parse_config(_config("backend: native\n", env="CartPole-v1"))


def test_config_atari_block_reaches_the_native_env():
    config = parse_config(
        _config(
            "atari:\n  screen_size: 64\n  terminal_on_life_loss: false\n"
            "hyperparams:\n  frame_stack: 2\n"  # the Zoo's key; it fills atari.frame_stack
        )
    )
    env = make_train_env(config, seed=0)
    try:
        assert isinstance(env, NativeAtariVecEnv)
        assert env.observation_space.shape == (2, 64, 64)
        assert env.num_envs == 8  # the Zoo's Atari PPO entry
        assert not env._episodic_life and env._clip
    finally:
        env.close()


def test_ppo_cnn_policy_trains_on_it_without_transposing():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecTransposeImage

    env = NativeAtariVecEnv(GAME, 2, AtariSettings())
    try:
        model = PPO("CnnPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
        assert not isinstance(model.get_env(), VecTransposeImage)
        model.learn(total_timesteps=32)
        assert model.num_timesteps == 32
    finally:
        env.close()


def test_native_and_sb3_chains_play_the_same_pong_and_see_nearly_the_same_frames():
    """Learning parity at its root (docs/performance.md, "Learning parity"): with no random
    no-ops and no FIRE reset, the same seed and actions give the same game on both backends
    as ``make_train_env`` builds them (the same clipped rewards, the game over at the same
    step), and the same frames up to the few pixels where max-pooling before or after the
    grayscale differs. ALE's resize is OpenCV's INTER_AREA pixel for pixel: the first frame
    after reset is identical."""
    same = (
        "atari:\n  noop_max: 0\n  fire_reset: false\n  repeat_action_probability: 0.0\n"
        "hyperparams:\n  n_envs: 1\n  batch_size: 64\n"
    )
    native, chain = (
        make_train_env(parse_config(_config(f"backend: {b}\n{same}", env="ALE/Pong-v5")), seed=0)
        for b in ("native", "sb3")
    )
    try:
        assert isinstance(native, NativeAtariVecEnv) and not isinstance(chain, NativeAtariVecEnv)
        np.testing.assert_array_equal(native.reset(), chain.reset().transpose(0, 3, 1, 2))
        rewards, equal = np.zeros(2), []
        for action in np.random.default_rng(0).integers(0, 6, (2000, 1)):
            obs, reward, done, _ = native.step(action)
            obs_sb3, reward_sb3, done_sb3, _ = chain.step(action)
            assert reward[0] == reward_sb3[0] and done[0] == done_sb3[0]
            rewards += reward[0], reward_sb3[0]
            equal.append((obs == obs_sb3.transpose(0, 3, 1, 2)).mean())
            if done[0]:
                break
        assert done[0], "a random policy loses a game of Pong within 2,000 steps"
        assert rewards[0] == rewards[1] < -15
        assert np.mean(equal) > 0.99  # measured: 99.8% of pixels; about 16 of 7,056 a frame
    finally:
        native.close()
        chain.close()
