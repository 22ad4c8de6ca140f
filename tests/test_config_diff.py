"""The Compare page's config diff on fixed resolved configs (pure logic; the page's use of it
is in tests/test_compare.py against real runs)."""

from __future__ import annotations

from analysis.config_diff import ABSENT, config_diff, flatten
from runstore.config import resolve


def test_flatten_dots_nested_keys_and_keeps_lists_and_empty_mappings_whole():
    doc = {"a": 1, "h": {"lr": 0.1, "net": {"pi": [64, 64]}}, "kw": {}, "tags": ["x"]}
    assert flatten(doc) == {"a": 1, "h.lr": 0.1, "h.net.pi": [64, 64], "kw": {}, "tags": ["x"]}


def test_only_the_keys_that_differ_are_shown_with_each_runs_value():
    base = {"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 1000}
    a = resolve({**base, "seed": 1, "hyperparams": {"learning_rate": 0.001}})
    b = resolve({**base, "seed": 2, "hyperparams": {"learning_rate": 0.01}})
    c = resolve({**base, "seed": 1, "hyperparams": {"learning_rate": 0.001}})
    diff = config_diff({"A": a.model_dump(mode="json"), "B": b.model_dump(mode="json")})
    assert diff.columns == ["key", "A", "B"]
    rows = {row[0]: row[1:] for row in diff.iter_rows()}
    assert rows == {"hyperparams.learning_rate": ("0.001", "0.01"), "seed": ("1", "2")}
    same = config_diff({"A": a.model_dump(mode="json"), "C": c.model_dump(mode="json")})
    assert same.height == 0 and same.columns == ["key", "A", "C"]


def test_a_key_only_one_config_has_is_shown_absent_in_the_others():
    ppo = resolve({"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 1000})
    dqn = resolve({"algo": "dqn", "env": "CartPole-v1", "n_timesteps": 1000})
    diff = config_diff({"ppo": ppo.model_dump(mode="json"), "dqn": dqn.model_dump(mode="json")})
    rows = {row[0]: row[1:] for row in diff.iter_rows()}
    assert rows["algo"] == ("ppo", "dqn")
    only_ppo = [k for k, (p, d) in rows.items() if d == ABSENT]
    only_dqn = [k for k, (p, d) in rows.items() if p == ABSENT]
    assert "hyperparams.n_steps" in only_ppo and "hyperparams.buffer_size" in only_dqn
    assert not any(p == d for p, d in rows.values())


def test_a_value_that_looks_like_a_missing_one_is_not_taken_for_it():
    diff = config_diff({"A": {"k": None}, "B": {}, "C": {"k": None}})
    assert [tuple(r) for r in diff.iter_rows()] == [("k", "null", ABSENT, "null")]
    assert config_diff({}).height == 0 and config_diff({"A": {"k": 1}}).height == 0
