"""Config parsing and resolution: plain data in, a complete config or plain-words errors out."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from stable_baselines3 import DQN, PPO

from runstore.config import ConfigError, load_resolved, parse_config, to_yaml
from runstore.hyperparams import sb3_kwarg_names

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def errors(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_atari_ppo_gets_zoo_settings_and_explicit_preprocessing():
    config = parse_config(b"algo: ppo\nenv: ALE/Pong-v5\nn_timesteps: 1e7\n")
    hp = config.hyperparams
    assert config.n_timesteps == 10_000_000
    assert (hp.policy, hp.n_envs, hp.n_steps, hp.batch_size, hp.n_epochs) == (
        "CnnPolicy",
        8,
        128,
        256,
        4,
    )
    assert hp.learning_rate == "lin_2.5e-4" and hp.clip_range == "lin_0.1"
    assert config.atari.frame_stack == 4
    assert config.atari.repeat_action_probability == 0.25  # sticky actions, written out
    assert config.atari.terminal_on_life_loss and config.atari.clip_reward
    assert config.seed is not None and config.name == "pong-ppo"


def test_given_keys_override_the_zoo_entry():
    config = parse_config(
        b"algo: dqn\nenv: ALE/Breakout-v5\nn_timesteps: 1000\n"
        b"hyperparams: {buffer_size: 5000, learning_starts: 10}\n"
    )
    hp = config.hyperparams
    assert (hp.buffer_size, hp.learning_starts) == (5000, 10)
    assert hp.target_update_interval == 1000 and hp.exploration_final_eps == 0.01  # zoo


def test_non_atari_gets_sb3_defaults():
    config = parse_config(b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\n")
    hp = config.hyperparams
    assert (hp.policy, hp.n_steps, hp.batch_size, hp.learning_rate) == ("MlpPolicy", 2048, 64, 3e-4)
    assert config.atari is None


def test_pasted_zoo_entry_with_float_tags_and_schedules():
    text = """\
algo: ppo
env: ALE/Breakout-v5
hyperparams:
  env_wrapper:
    - stable_baselines3.common.atari_wrappers.AtariWrapper
  frame_stack: 4
  policy: 'CnnPolicy'
  n_envs: 8
  n_steps: 128
  n_epochs: 4
  batch_size: 256
  n_timesteps: !!float 1e7
  learning_rate: lin_2.5e-4
  clip_range: lin_0.1
  vf_coef: 0.5
  ent_coef: 0.01
  policy_kwargs: {net_arch: [{pi: [64], vf: [64]}]}
"""
    config = parse_config(text.encode())
    assert config.n_timesteps == 10_000_000  # from the zoo entry, as no top level was given
    assert config.hyperparams.policy_kwargs.net_arch == {"pi": [64], "vf": [64]}


def test_resolved_config_round_trips():
    config = parse_config((EXAMPLES / "pong-ppo.yaml").read_bytes())
    again = load_resolved(to_yaml(config))
    assert again == config


@pytest.mark.parametrize(
    "name", ["pong-ppo.yaml", "breakout-dqn.yaml", "cartpole-smoke.yaml", "cartpole-ppo-zoo.yaml"]
)
def test_readme_examples_are_valid(name):
    parse_config((EXAMPLES / name).read_bytes())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\nhyperparams: {learning_rat: 0.1}",
            "did you mean 'learning_rate'",
        ),
        ("algo: ppo\nenv: CartPole-v1\nn_timestep: 10", "did you mean 'n_timesteps'"),
        ("algo: a2c\nenv: CartPole-v1\nn_timesteps: 10", "algo"),
        ("algo: ppo\nenv: ALE/Pongg-v5\nn_timesteps: 10", "did you mean 'ALE/Pong-v5'"),
        ("algo: ppo\nenv: CartPole-v1\nn_timesteps: -5", "n_timesteps"),
        ("algo: ppo\nenv: CartPole-v1\nn_timesteps: 1e30", "n_timesteps"),
        ("algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\nhyperparams: {n_envs: 5000000}", "n_envs"),
        (
            "algo: dqn\nenv: CartPole-v1\nn_timesteps: 10\nhyperparams: {buffer_size: 0}",
            "buffer_size",
        ),
        (
            "algo: dqn\nenv: CartPole-v1\nn_timesteps: 10\nhyperparams: {n_steps: 5}",
            "not a DQN hyperparameter",
        ),
        ("algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\nname: ../../etc/x", "name"),
        ("algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\nname: a\\b", "name"),
        ("algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\ndevice: gpu", "device"),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\n"
            'hyperparams: {policy_kwargs: "dict(net_arch=[64, 64])"}',
            "never evaluated",
        ),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\n"
            "hyperparams: {policy_kwargs: {activation_fn: os.system}}",
            "activation_fn",
        ),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\n"
            "hyperparams: {learning_rate: \"__import__('os').getcwd()\"}",
            "learning_rate",
        ),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\n"
            "hyperparams: {env_wrapper: my.module.Evil}",
            "not imported by name",
        ),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\nhyperparams: {batch_size: 4096}",
            "larger than n_steps x n_envs",
        ),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\natari: {frame_skip: 2}",
            "not an Atari game",
        ),
        ("", "empty"),
        ("   \n", "empty"),
        ("- a\n- b\n", "not a mapping"),
        ("algo: [unclosed", "not valid YAML"),
        ("a: !!python/object/apply:os.system ['touch /tmp/pwn']", "tag"),
        ("a: !custom x", "tag"),
        ("a: &anchor 1\nb: *anchor", "anchors and aliases"),
    ],
)
def test_bad_configs_are_rejected_with_the_reason(text, expected):
    assert expected in errors(text)


def test_every_problem_is_reported_at_once():
    message = errors(
        "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10\n"
        "hyperparams: {learning_rat: 0.1, n_envs: 0}\natari_x: 1"
    )
    assert "learning_rate" in message and "n_envs" in message and "atari_x" in message


def test_binary_and_oversized_files():
    assert "binary" in errors(b"\x00\x01\x02algo: ppo")
    assert "UTF-8" in errors(b"algo: \xff\xfe ppo")
    assert "at most" in errors(b"# " + b"x" * 100_000)


def test_alias_bomb_is_refused_before_expansion():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert "anchors and aliases" in errors(bomb)


def test_time_budget_accepts_human_durations():
    base = "algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\ntime_budget: "
    assert parse_config((base + "2h").encode()).time_budget == 7200
    assert parse_config((base + "90m").encode()).time_budget == 5400
    assert parse_config((base + "45").encode()).time_budget == 45
    assert "time_budget" in errors(base + "soon")


@pytest.mark.parametrize(("algo", "cls"), [("ppo", PPO), ("dqn", DQN)])
def test_hyperparameter_names_match_sb3_signatures(algo, cls):
    """runstore keeps SB3's names without importing it; this holds the list against SB3."""
    accepted = set(inspect.signature(cls.__init__).parameters)
    assert sb3_kwarg_names(algo) <= accepted


PPO_CARTPOLE = "algo: ppo\nenv: CartPole-v1\nn_timesteps: 10000\n"
DQN_CARTPOLE = "algo: dqn\nenv: CartPole-v1\nn_timesteps: 10000\n"
PPO_PONG = "algo: ppo\nenv: ALE/Pong-v5\nn_timesteps: 10000\n"


@pytest.mark.parametrize(
    ("text", "field", "allowed"),
    [
        (
            PPO_CARTPOLE + "hyperparams: {learning_rate: .nan}",
            "hyperparams.learning_rate",
            "(0, ",
        ),
        (
            PPO_CARTPOLE + "hyperparams: {learning_rate: .inf}",
            "hyperparams.learning_rate",
            "(0, ",
        ),
        (PPO_CARTPOLE + "hyperparams: {learning_rate: lin_1e999}", "learning_rate", "(0, "),
        (PPO_CARTPOLE + "hyperparams: {learning_rate: lin_-1}", "learning_rate", "(0, "),
        (PPO_CARTPOLE + "hyperparams: {clip_range: -5}", "hyperparams.clip_range", "(0, 1]"),
        (PPO_CARTPOLE + "hyperparams: {clip_range: .nan}", "hyperparams.clip_range", "(0, 1]"),
        (
            PPO_CARTPOLE + "hyperparams: {policy_kwargs: {log_std_init: .nan}}",
            "hyperparams.policy_kwargs.log_std_init",
            "[-20, 20]",
        ),
        (PPO_CARTPOLE + "hyperparams: {max_grad_norm: .inf}", "hyperparams.max_grad_norm", "(0, "),
        (PPO_CARTPOLE + "hyperparams: {target_kl: .inf}", "hyperparams.target_kl", "(0, 10]"),
        (PPO_CARTPOLE + "time_budget: .inf", "time_budget", "(0, 31_622_400]"),
        (
            PPO_CARTPOLE + "hyperparams: {policy_kwargs: {optimizer_kwargs: {__class__: 1}}}",
            "hyperparams.policy_kwargs.optimizer_kwargs.__class__",
            "eps",
        ),
        (
            PPO_CARTPOLE + "hyperparams: {policy_kwargs: {net_arch: {pi: [1000000000], vf: [64]}}}",
            "hyperparams.policy_kwargs.net_arch",
            "[1, 65_536]",
        ),
        (
            PPO_CARTPOLE + "hyperparams: {policy_kwargs: {net_arch: {pi: [-3], vf: [64]}}}",
            "hyperparams.policy_kwargs.net_arch",
            "[1, 65_536]",
        ),
        (
            PPO_CARTPOLE + "hyperparams: {sde_sample_freq: 1e20}",
            "hyperparams.sde_sample_freq",
            "[-1, 100_000_000_000]",
        ),
        (
            DQN_CARTPOLE + "hyperparams: {target_update_interval: 1e23}",
            "hyperparams.target_update_interval",
            "[1, 100_000_000_000]",
        ),
        (PPO_CARTPOLE + "resources: {cpus: [99999999999]}", "resources.cpus", "[0, 4_095]"),
        (
            "algo: ppo\nenv: CartPole-v1\nn_timesteps: 1e11\ncheckpoint_every: 1",
            "checkpoint_every",
            "1_000_000 checkpoints",
        ),
        (
            PPO_PONG + "hyperparams: {env_kwargs: {game: ../../../../etc/passwd}}",
            "hyperparams.env_kwargs.game",
            "ROM",
        ),
        (
            PPO_PONG + "hyperparams: {env_kwargs: {repeat_action_probability: 1.5}}",
            "hyperparams.env_kwargs.repeat_action_probability",
            "[0, 1]",
        ),
    ],
)
def test_values_that_cannot_train_are_rejected_with_field_and_range(text, field, allowed):
    message = errors(text)
    assert f"{field}" in message and allowed in message, message


def test_stop_grace_below_a_second_is_rejected_with_the_range():
    from runstore.settings import SettingsError, parse_settings

    for bad in ("1e-9", ".nan", ".inf", "0"):
        with pytest.raises(SettingsError) as info:
            parse_settings(f"stop_grace: {bad}\n".encode())
        assert "stop_grace" in str(info.value) and "[1, 3_600]" in str(info.value)
    with pytest.raises(SettingsError) as info:
        parse_settings(b"max_concurrent: .inf\n")
    assert "max_concurrent" in str(info.value) and "[1, 64]" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            PPO_CARTPOLE + "learning_rate: 0.1",
            "learning_rate: belongs under hyperparams: (hyperparams: {learning_rate: 0.1})",
        ),
        (PPO_CARTPOLE + "lerning_rate: 0.1", "did you mean 'hyperparams.learning_rate'"),
        (DQN_CARTPOLE + "buffer_size: 5000", "hyperparams: {buffer_size: 5000}"),
        (PPO_CARTPOLE + "n_timestep: 10", "did you mean 'n_timesteps'"),
        (PPO_CARTPOLE + "hyperparams: {seed: 3}", "hyperparams.seed: a top-level key"),
    ],
)
def test_a_top_level_hyperparameter_points_under_hyperparams(text, expected):
    assert expected in errors(text)


@pytest.mark.parametrize(
    "extra",
    [
        "hyperparams: {learning_rate: 1, clip_range: lin_1, gamma: 0, target_kl: 0.01}",
        "hyperparams: {learning_rate: '1e-3', sde_sample_freq: 4, max_grad_norm: 1e6}",
        "hyperparams: {policy_kwargs: {net_arch: {pi: [65536], vf: [1]}, log_std_init: -2}}",
        "hyperparams: {policy_kwargs: {net_arch: [{pi: [64], vf: [64]}]}}",
        "hyperparams: {policy_kwargs: {optimizer_kwargs: {eps: 1e-5, betas: [0.9, 0.999]}}}",
        "hyperparams: {policy_kwargs: {optimizer_class: RMSprop, "
        "optimizer_kwargs: {alpha: 0.99, eps: 1e-5, centered: true}}}",
        "hyperparams: {policy_kwargs: {optimizer_class: sgd, "
        "optimizer_kwargs: {momentum: 0.9, nesterov: true}}}",
        "hyperparams: {env_kwargs: {sutton_barto_reward: true, max_episode_steps: 200}}",
        "time_budget: 366d\ncheckpoint_every: 1\nresources: {cpus: [0, 4095]}",
    ],
)
def test_values_an_sb3_user_would_write_are_accepted(extra):
    from training.sb3_kwargs import policy_kwargs

    config = parse_config((PPO_CARTPOLE + extra).encode())
    assert load_resolved(to_yaml(config)) == config
    kwargs = policy_kwargs(config)
    if "optimizer_kwargs" in kwargs:  # torch takes exactly what the allow-list lets through
        import torch

        cls = kwargs.get("optimizer_class", torch.optim.Adam)
        cls([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, **kwargs["optimizer_kwargs"])


def test_atari_env_kwargs_allow_list():
    config = parse_config(
        (
            PPO_PONG + "hyperparams: {env_kwargs: {mode: 1, difficulty: 0, game: pong, "
            "repeat_action_probability: 0, max_num_frames_per_episode: 108000}}"
        ).encode()
    )
    assert config.hyperparams.env_kwargs["mode"] == 1
    assert "env: ALE/Breakout-v5" in errors(
        PPO_PONG + "hyperparams: {env_kwargs: {game: breakout}}"
    )
    message = errors(PPO_PONG + "hyperparams: {env_kwargs: {obs_type: ram}}")
    assert "hyperparams.env_kwargs.obs_type: unknown key" in message and "frameskip" in message


def test_stop_at_score_needs_evaluations_and_a_finite_bounded_target():
    base = "algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\nstop_at_score: 475\n"
    assert "stop_at_score: 475 is judged by evaluations" in errors(base)
    assert "set eval_every" in errors(base)
    assert parse_config((base + "eval_every: 500").encode()).stop_at_score == 475
    for bad in (".nan", "-.inf", "1e12"):
        problem = errors(base.replace("475", bad) + "eval_every: 500")
        wanted = "stop_at_score: must be a number in [-1_000_000_000, 1_000_000_000]"
        assert wanted in problem, problem
