"""Property-based fuzzing of config intake: every input is accepted or rejected with reasons.

Documents and raw byte strings go through ``parse_config`` and through the runner's intake
path (``read_queue_file`` then ``accept`` or ``reject``) in a temp folder. For each one: a
``RunConfig`` or a ``ConfigError`` with non-empty problems, nothing else raised; a marker file
that the payloads would create if anything were executed never appears; nothing is written
outside the runs folder. ``make test`` runs a few hundred examples per property; ``make faults``
sets RETRO_ML_FUZZ_EXAMPLES for thousands.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runstore import RunStore
from runstore.config import ConfigError, RunConfig, parse_config

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
