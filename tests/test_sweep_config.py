"""The sweep file (runstore.sweep_config): a bad space is refused with the reason and the fix,
before anything runs; a good one gives each trial a config the run schema accepts."""

from __future__ import annotations

import pytest

from runstore.config import ConfigError, resolve
from runstore.sweep_config import (
    ChoiceSpace,
    is_sweep_file,
    parse_sweep,
    searchable_keys,
    trial_doc,
)
from tests.conftest import ROOT

BASE = """
name: cartpole-lr
algo: ppo
env: CartPole-v1
n_timesteps: 50_000
eval_every: 10_000
"""

GOOD = (
    BASE
    + """
sweep:
  n_trials: 30
  max_concurrent: 2
  metric: eval/mean_return
  direction: maximize
  sampler: tpe
  pruner: median
  seeds: 2
  space:
    hyperparams.learning_rate: {float: [1.0e-5, 1.0e-2], log: true}
    hyperparams.n_steps: {choice: [64, 128, 256, 512]}
    hyperparams.ent_coef: {float: [0.0, 0.05]}
    hyperparams.n_epochs: {int: [3, 10]}
"""
)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_sweep(text.encode())
    return caught.value.problems


def sweep_of(space: str, extra: str = "n_trials: 5") -> str:
    lines = "\n".join(f"    {line}" for line in space.strip().splitlines())
    return BASE + f"sweep:\n  {extra}\n  space:\n{lines}\n"


def test_the_issue_example_is_accepted_with_its_settings():
    sweep = parse_sweep(GOOD.encode())
    assert sweep.n_trials == 30
    assert sweep.block.max_concurrent == 2 and sweep.block.seeds == 2
    assert sweep.metric == "eval/mean_return"
    assert set(sweep.block.space) == {
        "hyperparams.learning_rate",
        "hyperparams.n_steps",
        "hyperparams.ent_coef",
        "hyperparams.n_epochs",
    }
    assert sweep.block.space["hyperparams.learning_rate"].log
    assert isinstance(sweep.block.space["hyperparams.n_steps"], ChoiceSpace)
    assert sweep.base.n_timesteps == 50_000


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ("hyperparams.learning_rate: {float: [0.1, 0.01]}", ["above high", "[0.01, 0.1]"]),
        ("hyperparams.learning_rate: {float: [0.0, 0.01], log: true}", ["above 0", "log"]),
        ("hyperparams.n_epochs: {int: [0, 10], log: true}", ["above 0"]),
        ("hyperparams.n_steps: {choice: []}", ["empty"]),
        ("hyperparams.n_steps: {choice: [64, 64]}", ["twice"]),
        ("hyperparams.n_steps: {choice: [[64], [128]]}", ["plain value"]),
        (
            "hyperparams.learning_rat: {float: [0.001, 0.01]}",
            ["no key", "hyperparams.learning_rate"],
        ),
        ("hyperparams.exploration_fraction: {float: [0.1, 0.2]}", ["no key"]),  # a DQN key
        ("hyperparams.n_steps: {choice: [64, -5]}", ["-5", "refused", "n_steps"]),
        ("hyperparams.gamma: {float: [0.9, 1.5]}", ["1.5", "refused", "gamma"]),
        ("hyperparams.n_epochs: {float: [3, 10]}", ["whole number", "int: [3, 10]"]),
        ("hyperparams.policy: {float: [1, 2]}", ["not a number", "choice"]),
        ("seed: {int: [0, 10]}", ["cannot be searched", "sweep.seeds"]),
        ("hyperparams.learning_rate: {uniform: [0.1, 0.2]}", ["float: [low, high]"]),
        ("hyperparams.learning_rate: {float: [0.001, 0.01], int: [1, 2]}", ["one of"]),
        ("hyperparams.learning_rate: {float: [0.001, .nan]}", ["learning_rate"]),
    ],
)
def test_a_bad_space_names_the_key_the_problem_and_the_fix(space: str, words: list[str]):
    problems = problems_of(sweep_of(space))
    text = " | ".join(problems)
    assert all(w in text for w in words), text
    key = space.split(":")[0]
    assert key in text, f"the problem must name {key}: {text}"


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ("n_trials: 0\n  space: {hyperparams.n_epochs: {int: [3, 5]}}", ["n_trials"]),
        ("space: {hyperparams.n_epochs: {int: [3, 5]}}", ["n_trials", "timeout"]),
        ("seeds: 1", ["nothing to sweep"]),
        ("seeds: 3\n  n_trials: 4", ["seeds for repeats"]),
        ("metric: system/cpu_percent\n  seeds: 2", ["not a training or evaluation tag"]),
        ("metric: 'eval mean'\n  seeds: 2", ["not a training or evaluation tag"]),
        ("direction: up\n  seeds: 2", ["direction"]),
        ("sampler: bayes\n  seeds: 2", ["sampler", "tpe"]),
        ("pruner: early\n  seeds: 2", ["pruner", "median"]),
        ("storage: sqlite:///x.db\n  seeds: 2", ["postgresql://", "journal"]),
        ("storage: postgresql+psycopg://u:p@h/d\n  seeds: 2", ["postgresql://"]),
        ("timeout: soon\n  seeds: 2", ["timeout"]),
        (
            "sampler: grid\n  space: {hyperparams.learning_rate: {float: [0.001, 0.01]}}",
            ["grid", "step"],
        ),
        ("seeds: 2\n  colour: red", ["colour"]),
    ],
)
def test_a_bad_block_is_refused_with_the_fix(block: str, words: list[str]):
    text = " | ".join(problems_of(BASE + f"sweep:\n  {block}\n"))
    assert all(w in text for w in words), text


def test_the_base_config_is_checked_like_any_queue_file():
    text = " | ".join(problems_of(GOOD.replace("CartPole-v1", "CartPol-v1")))
    assert "CartPol-v1" in text


def test_a_grid_runs_every_point_once():
    sweep = parse_sweep(
        sweep_of(
            """
hyperparams.n_steps: {choice: [64, 128]}
hyperparams.n_epochs: {int: [3, 9], step: 3}
hyperparams.ent_coef: {float: [0.0, 0.02], step: 0.01}
""",
            extra="sampler: grid",
        ).encode()
    )
    assert sweep.n_trials == 2 * 3 * 3


def test_timeout_is_a_duration_and_can_stand_in_for_n_trials():
    sweep = parse_sweep(sweep_of("hyperparams.n_epochs: {int: [3, 5]}", "timeout: 2h").encode())
    assert sweep.block.timeout == 7200 and sweep.n_trials is None


def test_seeds_without_a_space_is_a_multi_seed_launch():
    sweep = parse_sweep((BASE + "sweep:\n  seeds: 5\n").encode())
    assert sweep.n_trials == 1 and sweep.block.seeds == 5


def test_the_default_metric_is_evaluation_else_the_episode_return():
    assert parse_sweep(GOOD.replace("  metric: eval/mean_return\n", "").encode()).metric == (
        "eval/mean_return"
    )
    no_eval = GOOD.replace("eval_every: 10_000", "eval_every: 0").replace(
        "  metric: eval/mean_return\n", ""
    )
    assert parse_sweep(no_eval.encode()).metric == "episode/return"


def test_each_trial_run_is_a_valid_run_config_with_its_params_seed_and_sweep():
    sweep = parse_sweep(GOOD.encode())
    params = {"hyperparams.learning_rate": 3e-4, "hyperparams.n_steps": 128}
    docs = [trial_doc(sweep, params, sweep_id="s-1", trial=7, seed_index=k) for k in (0, 1)]
    configs = [resolve(doc) for doc in docs]
    assert [c.seed for c in configs] == [0, 1]
    assert all(c.hyperparams.learning_rate == 3e-4 for c in configs)
    assert all(c.hyperparams.n_steps == 128 for c in configs)
    assert [c.sweep.seed_index for c in configs] == [0, 1]
    assert {c.sweep.id for c in configs} == {"s-1"} and {c.sweep.trial for c in configs} == {7}
    assert [c.name for c in configs] == ["cartpole-lr-t7-s0", "cartpole-lr-t7-s1"]
    assert "sweep" not in sweep.base_doc and "hyperparams" not in sweep.base_doc


def test_a_trials_own_config_is_not_a_sweep_file():
    sweep = parse_sweep(GOOD.encode())
    doc = trial_doc(sweep, {}, sweep_id="s-1", trial=0, seed_index=0)
    assert not is_sweep_file(doc)
    assert is_sweep_file({"sweep": {"seeds": 3}})


def test_every_searchable_key_is_a_key_the_run_config_has():
    for algo in ("ppo", "dqn"):
        keys = searchable_keys(algo)
        assert "hyperparams.learning_rate" in keys and "atari.frame_stack" in keys
        assert "seed" not in keys and "sweep" not in keys and "hyperparams" not in keys
    assert "hyperparams.exploration_fraction" in searchable_keys("dqn")
    assert "hyperparams.exploration_fraction" not in searchable_keys("ppo")


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes"])
@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband", "none"])
def test_every_sampler_and_pruner_asks_trials_the_run_schema_accepts(sampler: str, pruner: str):
    import optuna

    from runner.sweeps import distribution, pruner_of, sampler_of

    text = sweep_of(
        """
hyperparams.learning_rate: {choice: [0.001, 0.0003]}
hyperparams.n_epochs: {int: [3, 9], step: 3}
hyperparams.ent_coef: {float: [0.0, 0.02], step: 0.01}
""",
        extra=f"n_trials: 6\n  sampler: {sampler}\n  pruner: {pruner}",
    )
    sweep = parse_sweep(text.encode())
    study = optuna.create_study(sampler=sampler_of(sweep), pruner=pruner_of(sweep))
    space = {k: distribution(v) for k, v in sweep.block.space.items()}
    for number in range(6):
        trial = study.ask(space)
        config = resolve(trial_doc(sweep, trial.params, sweep_id="s", trial=number, seed_index=0))
        assert config.hyperparams.n_epochs in (3, 6, 9)
        assert config.hyperparams.learning_rate in (0.001, 0.0003)
        study.tell(trial, float(number))
    assert len(study.trials) == 6


def test_the_example_sweep_file_is_valid():
    sweep = parse_sweep((ROOT / "examples" / "cartpole-sweep.yaml").read_bytes())
    assert sweep.n_trials == 30 and len(sweep.block.space) == 4


def test_intermediate_values_are_the_mean_at_steps_every_seed_reached_thinned_per_stretch():
    from runner.sweeps import _common_steps

    a, b = {100: 1.0, 200: 2.0, 300: 3.0}, {150: 10.0, 250: 20.0}
    # 100: b has no value yet; 300: b has not reached it.
    assert _common_steps([a, b], after=-1, every=1) == [(150, 5.5), (200, 6.0), (250, 11.0)]
    assert _common_steps([a, b], after=200, every=1) == [(250, 11.0)]  # only what is new
    per_episode = {step: float(step) for step in range(0, 10_000, 7)}
    thinned = _common_steps([per_episode], after=-1, every=1_000)
    assert len(thinned) == 10 and all(step % 1_000 >= 993 for step, _ in thinned[:-1])
    assert _common_steps([a, {}], after=-1, every=1) == []


def test_a_trial_runs_queue_file_names_its_sweep():
    from runstore.sweeps import sweep_of_queue_file, trial_file_name

    sweep_id = "20261202-071337-sweep-cp-7dee415a"
    assert sweep_of_queue_file(trial_file_name(sweep_id, 12, 3)) == sweep_id
    assert sweep_of_queue_file("run.yaml") is None
    assert sweep_of_queue_file("sweep-x-t1-s0.yaml") is None  # not the fixed widths
