"""Property-based fuzzing of config intake: every input is accepted or rejected with reasons.

Documents and raw byte strings go through ``parse_config`` and through the runner's intake
path (``read_queue_file`` then ``accept`` or ``reject``) in a temp folder. For each one: a
``RunConfig`` or a ``ConfigError`` with non-empty problems, nothing else raised; a marker file
that the payloads would create if anything were executed never appears; nothing is written
outside the runs folder. ``make test`` runs a few hundred examples per property; ``make faults``
sets RETRO_ML_FUZZ_EXAMPLES for thousands.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from runstore import RunStore
from runstore.config import (
    AtariEnvKwargs,
    AtariSettings,
    ConfigError,
    Resources,
    RunConfig,
    parse_config,
)
from runstore.hyperparams import (
    EXPLICITLY_CHECKED,
    DQNHyperparams,
    NumberSpec,
    OptimizerKwargs,
    PolicyKwargs,
    PPOHyperparams,
    number_spec,
    unwrap_annotation,
)
from runstore.settings import RunnerSettings, SettingsError, parse_settings

from .faults.harness import LEDGER

EXAMPLES = int(os.environ.get("RETRO_ML_FUZZ_EXAMPLES") or 300)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples every run: CI failures replay
)

pytestmark = pytest.mark.faults

MARKER = Path(tempfile.gettempdir()) / "retro-ml-fuzz-executed"
TOUCH = f"touch {MARKER}"

PAYLOADS = [
    f"!!python/object/apply:os.system ['{TOUCH}']",
    f'!!python/object/new:subprocess.Popen [["sh", "-c", "{TOUCH}"]]',
    f"!python/object/apply:os.system ['{TOUCH}']",
    f"\"__import__('os').system('{TOUCH}')\"",
    "!!python/name:os.system",
    "&a [*a, *a]",
    "*undefined",
    "!!binary aGVsbG8=",
    "!!timestamp 2001-12-14",
    "!!set {a: null}",
    "'lin_1e999'",
    ".nan",
    "-.inf",
    "9" * 5000,
    "[" * 200,
    "{" * 200,
    "0x1F",
    "1_000",
    "~",
    "''",
    "'../../etc/passwd'",
    "'a/b'",
    "cuda:99",
]
KEYS = [
    "algo", "env", "n_timesteps", "name", "seed", "device", "vec_env", "checkpoint_every",
    "keep_checkpoints", "save_replay_buffer", "time_budget", "atari", "hyperparams",
    "policy_kwargs", "learning_rate", "n_envs", "n_steps", "batch_size", "buffer_size",
    "frame_stack", "net_arch", "activation_fn", "<<", "?", "-",
]  # fmt: skip
VALUES = [
    "ppo", "dqn", "CartPole-v1", "ALE/Pong-v5", "1000", "-1", "0", "1e6", "true", "null",
    "auto", "cpu", "subproc", "relu", "[64, 64]", "{net_arch: [64]}", "lin_3e-4", "2h",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(VALUES),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
documents = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), values, max_size=8)
# Near-valid documents: the required keys present, so validation runs deep, not only at the top.
near_valid = st.fixed_dictionaries(
    {
        "algo": st.sampled_from(["ppo", "dqn"]) | values,
        "env": st.sampled_from(["CartPole-v1", "ALE/Pong-v5"]) | values,
        "n_timesteps": st.integers(min_value=-5, max_value=10**12) | values,
    },
    optional={k: values for k in KEYS if k not in ("algo", "env", "n_timesteps")},
)
lines = st.lists(
    st.tuples(st.sampled_from(KEYS) | st.text(max_size=8), st.sampled_from(PAYLOADS + VALUES)),
    min_size=1,
    max_size=6,
).map(lambda pairs: "\n".join(f"{k}: {v}" for k, v in pairs))
texts = st.one_of(
    lines,
    st.text(max_size=400),
    st.lists(st.sampled_from(PAYLOADS + VALUES + KEYS + [":", "\n", "  ", "- ", "#"])).map("".join),
)


def _check(data: bytes) -> RunConfig | None:
    """Accepted (a RunConfig) or rejected with reasons; nothing else, nothing executed."""
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p.strip() for p in exc.problems)
        config = None
    else:
        assert isinstance(config, RunConfig)
    assert not MARKER.exists(), "a config executed code"
    LEDGER.fault("fuzzed config")
    return config


@pytest.fixture(autouse=True)
def _no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists()


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_accepted_or_rejected_with_reasons(data: bytes):
    _check(data)


@FUZZ
@given(text=texts)
def test_yaml_like_text_is_accepted_or_rejected_with_reasons(text: str):
    _check(text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(doc=documents | near_valid)
def test_generated_documents_are_accepted_or_rejected_with_reasons(doc: dict):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return
    _check(text.encode("utf-8", errors="surrogatepass"))


def test_inputs_found_by_fuzzing_are_rejected_quickly():
    """Found by fuzzing: deep nesting raised RecursionError (and ``[`` x 30,000 kept PyYAML's
    scanner busy for minutes), a 5,000-digit integer raised a plain ValueError and ``algo: []``
    a TypeError; either ended the runner's intake pass on every poll, so no later queue file
    was ever read."""
    for data in (
        b"algo: []\nenv: CartPole-v1\nn_timesteps: 5",
        b"algo: {a: 1}\nenv: ALE/Pong-v5\nn_timesteps: 5\nhyperparams: {n_envs: 1}",
        b"[" * 30_000,
        b"algo: ppo\nhyperparams: " + b"[" * 2000 + b"]" * 2000,
        b"algo: ppo\nenv: CartPole-v1\nn_timesteps: " + b"9" * 60_000,
        b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 400)),
    ):
        started = time.monotonic()
        with pytest.raises(ConfigError) as caught:
            parse_config(data)
        assert caught.value.problems
        assert time.monotonic() - started < 5, "intake must not stall on one file"


@pytest.fixture(scope="module")
def intake(tmp_path_factory) -> RunStore:
    store = RunStore(tmp_path_factory.mktemp("intake") / "runs")
    store.ensure_layout()
    return store


name_chars = st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"])


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=512), texts.map(lambda t: t.encode("utf-8", "replace"))),
    stem=st.text(name_chars, min_size=1, max_size=80),
    suffix=st.sampled_from([".yaml", ".yml", ".txt", ""]),
)
def test_runner_intake_accepts_or_rejects_every_file_inside_the_runs_folder(
    intake: RunStore, data: bytes, stem: str, suffix: str
):
    """The runner's own path: read_queue_file, then accept or reject. The file ends up as a
    run's source.yaml or in rejected/ with its reasons; nothing appears outside the folder."""
    store = intake
    name = (stem + suffix).encode("utf-8", "surrogateescape")
    if len(name) > 255 or stem in (".", "..") or stem.startswith("."):
        return
    path = store.queue_dir / os.fsdecode(name)
    path.write_bytes(data)
    before_outside = sorted(p.name for p in store.root.parent.iterdir())
    try:
        config = store.read_queue_file(path)
    except ConfigError as exc:
        assert exc.problems
        target = store.reject(path, exc.problems)
        assert target.parent == store.rejected_dir
        assert target.read_bytes() == data
        assert target.with_name(target.name + ".error.txt").read_text().strip()
    else:
        record = store.accept(path, config)
        assert record is not None
        assert store.paths(record.id).source.read_bytes() == data
    assert not path.exists()
    assert sorted(p.name for p in store.root.parent.iterdir()) == before_outside == ["runs"]
    assert not MARKER.exists()
    LEDGER.fault("fuzzed queue file")


# --- Every numeric field: non-finite and out-of-range numbers ---------------------------------
# The field list is derived from the pydantic models, so a field added to the schema is fuzzed
# (and held to a stated range by test_every_numeric_field_has_a_stated_range) without an edit.

BASE = {"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 10_000}
# Settings a field needs beside it so that only the field itself decides (the optimizer that
# takes the setting, an Atari env for the Atari sections, a rollout big enough for batch_size).
OPTIMIZER_FOR = {"alpha": "rmsprop", "centered": "rmsprop", "dampening": "sgd", "nesterov": "sgd"}


def _numeric_fields(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], NumberSpec]]:
    """(path, spec) for every plain numeric field of ``model`` and the models inside it."""
    found = []
    for name, field in model.model_fields.items():
        spec = number_spec(field)
        if spec is not None:
            found.append(((*prefix, name), spec))
            continue
        base = unwrap_annotation(field.annotation)[0]
        if isinstance(base, type) and issubclass(base, BaseModel):
            found += _numeric_fields(base, (*prefix, name))
    return found


FIELD_CASES = sorted(
    {
        (algo, path, spec)
        for algo, model in (("ppo", PPOHyperparams), ("dqn", DQNHyperparams))
        for path, spec in _numeric_fields(model, ("hyperparams",))
    }
    | {
        (algo, path, spec)
        for algo in ("ppo", "dqn")
        for path, spec in _numeric_fields(RunConfig)
        + _numeric_fields(AtariEnvKwargs, ("hyperparams", "env_kwargs"))
        if path[0] != "hyperparams" or path[1] == "env_kwargs"
    },
    key=lambda case: (case[0], case[1]),
)


def _near(bound: float | None) -> list[float]:
    if bound is None:
        return []
    return [bound, bound - 1, bound + 1, bound - 1e-9, bound + 1e-9, bound * 10, -bound]


def _numbers(spec: NumberSpec) -> st.SearchStrategy[Any]:
    """Numbers a user could write: anything, non-finite, the bounds and just past them, text."""
    edges = _near(spec.range.lo) + _near(spec.range.hi) + [0, -1, 1, 0.5, 2**31, 2**63, 1e308]
    plain = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.sampled_from(edges + [math.nan, math.inf, -math.inf]),
        st.booleans(),
    )
    as_text = plain.map(lambda x: repr(x) if not isinstance(x, bool) else "yes")
    texts = st.sampled_from(["1e999", "-1e999", "nan", ".inf", "1e23", "0x10", "1_0", "", "x"])
    out = st.one_of(plain, as_text, texts)
    if spec.kind == "schedule":
        out = out | plain.map(lambda x: f"lin_{x!r}") | st.sampled_from(["lin_1e999", "lin_"])
    return out


def _plain_numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.sampled_from([0, -1, 1, 65_536, 65_537, 4095, 4096, 2**31, math.nan, math.inf]),
        st.booleans(),
    )


def _number(value: Any) -> float | None:
    """The number a value means (YAML text included), independent of the code under test."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if isinstance(value, float) else value
    if isinstance(value, str):
        text = value.removeprefix("lin_")
        if text != value and "_" in text:  # lin_<x> takes a plain number
            return None
        try:
            return float(text.replace("_", "")) if text.strip() else None
        except ValueError:
            return None
    return None


def _in_range(value: Any, spec: NumberSpec, name: str = "") -> bool:
    """Whether ``value`` is one the field should take (an independent oracle of the rule)."""
    if isinstance(value, str) and value.startswith("lin_") and spec.kind != "schedule":
        return False
    x = _number(value)
    if x is None or not math.isfinite(x):
        return False
    if spec.kind == "int" and not float(x).is_integer():
        return False
    if name == "gradient_steps" and x == 0:
        return False  # the one value inside a range that is excluded (-1 or at least 1)
    r = spec.range
    lo_ok = r.lo is None or (x > r.lo if r.lo_open else x >= r.lo)
    hi_ok = r.hi is None or (x < r.hi if r.hi_open else x <= r.hi)
    return lo_ok and hi_ok


def _document(algo: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {**BASE, "algo": algo}
    if path[0] in ("atari",) or path[:2] == ("hyperparams", "env_kwargs"):
        doc["env"] = "ALE/Pong-v5"
    if path[:3] == ("hyperparams", "policy_kwargs", "optimizer_kwargs"):
        doc["hyperparams"] = {
            "policy_kwargs": {"optimizer_class": OPTIMIZER_FOR.get(path[3], "adam")}
        }
    if path[-1] == "batch_size" or path[-1] == "n_steps":
        doc.setdefault("hyperparams", {})["buffer_size" if algo == "dqn" else "n_steps"] = 10**6
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("algo", "path", "spec"), FIELD_CASES, ids=[f"{a}-{'.'.join(p)}" for a, p, _ in FIELD_CASES]
)
@settings(FUZZ, max_examples=max(20, EXAMPLES // 10))
@given(data=st.data())
def test_every_numeric_field_rejects_non_finite_and_out_of_range_numbers(
    algo: str, path: tuple[str, ...], spec: NumberSpec, data: st.DataObject
):
    """Each value is accepted only when finite and in the field's range; otherwise rejected
    with the field's dotted path named. Nothing but ConfigError ever leaves the validator."""
    value = data.draw(_numbers(spec))
    dotted = ".".join(path)
    text = yaml.safe_dump(_document(algo, path, value), sort_keys=False)
    try:
        parse_config(text.encode())
    except ConfigError as exc:
        on_field = [p for p in exc.problems if p.startswith(f"{dotted}:")]
        if _in_range(value, spec, path[-1]):
            assert not [p for p in on_field if "must be" in p], (value, exc.problems)
        else:
            assert on_field, (value, exc.problems)
            assert str(spec.range) in " ".join(on_field), (value, on_field)
    else:
        assert _in_range(value, spec, path[-1]), f"{dotted}: {value!r} outside {spec.range}"
    LEDGER.fault("fuzzed numeric field")


SETTINGS_CASES = _numeric_fields(RunnerSettings)


@pytest.mark.parametrize(
    ("path", "spec"), SETTINGS_CASES, ids=[".".join(p) for p, _ in SETTINGS_CASES]
)
@settings(FUZZ, max_examples=max(20, EXAMPLES // 10))
@given(data=st.data())
def test_every_numeric_setting_rejects_non_finite_and_out_of_range_numbers(
    path: tuple[str, ...], spec: NumberSpec, data: st.DataObject
):
    value = data.draw(_numbers(spec))
    text = yaml.safe_dump({path[-1]: value})
    try:
        parse_settings(text.encode())
    except SettingsError as exc:
        on_field = [p for p in exc.problems if p.startswith(f"{path[-1]}:")]
        assert bool(on_field) != _in_range(value, spec), (value, exc.problems)
        assert _in_range(value, spec) or str(spec.range) in on_field[0]
    else:
        assert _in_range(value, spec), f"{path[-1]}: {value!r} was accepted outside {spec.range}"


# Numbers held in lists, unions or mappings, with the dotted path an error must name.
SPECIAL = [
    ("dqn", "hyperparams.train_freq", lambda n: n),
    ("dqn", "hyperparams.train_freq", lambda n: [n, "step"]),
    ("ppo", "hyperparams.policy_kwargs.net_arch", lambda n: [64, n]),
    ("ppo", "hyperparams.policy_kwargs.net_arch", lambda n: {"pi": [n], "vf": [64]}),
    ("ppo", "hyperparams.policy_kwargs.optimizer_kwargs.betas", lambda n: [0.9, n]),
    ("ppo", "resources.cpus", lambda n: n),
    ("ppo", "resources.cpus", lambda n: [0, n]),
    ("ppo", "resources.gpu", lambda n: n),
    ("ppo", "resources.ray", lambda n: {"big_gpu": n}),
    ("ppo", "hyperparams.env_kwargs.sutton_barto_reward", lambda n: n),
]


@pytest.mark.parametrize(("algo", "dotted", "shape"), SPECIAL, ids=[d for _, d, _ in SPECIAL])
@settings(FUZZ, max_examples=max(20, EXAMPLES // 10))
@given(number=_plain_numbers())
def test_numbers_inside_lists_and_mappings_are_rejected_naming_the_field(
    algo: str, dotted: str, shape: Any, number: Any
):
    path = tuple(dotted.split("."))
    doc = _document(algo, path, shape(number))
    try:
        parse_config(yaml.safe_dump(doc).encode())
    except ConfigError as exc:
        assert exc.problems
        assert any(p.startswith(".".join(path[:3])) for p in exc.problems), exc.problems
    else:
        x = _number(number)
        assert x is not None and math.isfinite(x), f"{dotted}: {number!r} accepted"


def test_every_numeric_field_has_a_stated_range():
    """A field that holds a number is bounded at both ends, or named with its own check."""
    models = [
        RunConfig, Resources, AtariSettings, AtariEnvKwargs, PPOHyperparams, DQNHyperparams,
        PolicyKwargs, OptimizerKwargs, RunnerSettings,
    ]  # fmt: skip
    for model in models:
        for name, field in model.model_fields.items():
            spec = number_spec(field)
            if spec is not None:
                assert spec.range.bounded, f"{model.__name__}.{name} has no range"
            elif _holds_number(field.annotation):
                assert name in EXPLICITLY_CHECKED, f"{model.__name__}.{name}: numbers unchecked"


def _holds_number(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False
    return any(_holds_number(a) for a in typing.get_args(annotation))
