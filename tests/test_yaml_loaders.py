"""The safe YAML reader (``runstore/yamlsafe.py``): libyaml's safe loader, which it uses when
PyYAML has it, gives exactly what the pure-Python safe loader gives (documents and refusals) on
the example configs and on hostile YAML; it stays a safe loader; and the listing reader
(``top_level_text``, what the Runs index reads of config.yaml) agrees with a full read."""

from __future__ import annotations

import pytest
import yaml

from runstore import yamlsafe
from runstore.yamlsafe import ConfigSyntaxError, load_yaml_mapping, top_level_text

from .conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
KEYS = frozenset({"env", "algo"})

HOSTILE = [
    b"a: &x 1\nb: *x\n",  # an alias: refused before anything is built
    b"a: &a [1]\nb: &b [*a, *a]\n",
    b"!!python/object/apply:os.system ['true']\n",
    b"a: !!python/name:os.system\n",
    b"a: !!python/object/new:dict {}\n",
    b"a: !custom 1\n",
    b"[" * 100 + b"]" * 100,  # nested past the bound
    b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 40)),
    b"- 1\n- 2\n",  # a list, not a mapping
    b"just text\n",
    b"a: 1\n\x00",
    b"a: \xff\xfe\n",
    b"",
    b"   \n",
    b"a: [1, 2\n",  # not YAML
    b"a: b: c\n",
    b"{1: a}\n",  # a key that is not text
    b"a: " + b"9" * 5000 + b"\n",  # an integer past CPython's digit limit
    b"algo: ppo\nalgo: dqn\n",  # a key twice
    b"a: !!float 1e7\nb: !!str 5\nc: !!int '7'\n",
    b"a: 1.0e+3\nb: .inf\nc: 0o17\nd: yes\ne: ~\nf: 2026-12-02\ng: 0x1F\n",
    b"? [a, b]\n: c\n",  # a complex key
    b"a: 'quoted\n  over lines'\nb: |\n  block\n  text\n",
    b"x" * (64 * 1024 + 1),
    "name: pong \u00e9\u4e2d\U0001f600\nenv: CartPole-v1\n".encode(),
    b"%YAML 1.1\n---\na: 1\n",
    b"a: 1\n---\nb: 2\n",  # two documents
]


def _outcome(data: bytes, loader: type) -> str:
    """What ``load_yaml_mapping`` makes of ``data`` with ``loader``: the document's repr, or
    that it was refused (the exception's type; libyaml's messages differ in wording)."""
    saved = yamlsafe._LOADER
    yamlsafe._LOADER = loader
    try:
        return repr(load_yaml_mapping(data))
    except ConfigSyntaxError:
        return "refused"
    finally:
        yamlsafe._LOADER = saved


def test_the_c_loader_is_used_and_is_a_safe_loader():
    if yaml.__with_libyaml__:
        assert yamlsafe._LOADER is yaml.CSafeLoader
    loader = yamlsafe._LOADER
    assert issubclass(loader, yaml.constructor.SafeConstructor)
    assert not issubclass(loader, yaml.constructor.FullConstructor)  # nor UnsafeConstructor
    with pytest.raises(ConfigSyntaxError):
        load_yaml_mapping(b"a: !!python/object/apply:os.getpid []\n")


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
@pytest.mark.parametrize(
    "data",
    [p.read_bytes() for p in EXAMPLES] + HOSTILE,
    ids=[p.name for p in EXAMPLES] + [f"hostile-{i}" for i in range(len(HOSTILE))],
)
def test_c_and_pure_safe_loaders_agree(data: bytes):
    assert _outcome(data, yaml.CSafeLoader) == _outcome(data, yaml.SafeLoader)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_top_level_text_agrees_with_a_full_read_on_the_examples(path):
    data = path.read_bytes()
    doc = load_yaml_mapping(data)
    assert top_level_text(data, KEYS) == {k: doc[k] for k in KEYS if k in doc}
    assert set(top_level_text(data, KEYS)) == KEYS


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("algo: ppo\nenv: CartPole-v1\n", {"algo": "ppo", "env": "CartPole-v1"}),
        ("env: 1\nalgo: '1'\n", {"env": None, "algo": "1"}),  # typed as the loader types
        ("env: !!str 1\nalgo: yes\n", {"env": "1", "algo": None}),
        ("env: [a]\nalgo: {ppo: 1}\n", {"env": None, "algo": None}),
        ("atari: {env: x, algo: y}\nhyperparams:\n  env: z\nenv: Pong\n", {"env": "Pong"}),
        ("? [env]\n: x\n{algo: 1}: y\nalgo: dqn\n", {"algo": "dqn"}),  # complex keys skipped
        ("name: x\n", {}),
        ("env: a\nalgo: b\nlater: &x 1\nagain: *x\n", {"env": "a", "algo": "b"}),  # not reached
    ],
)
def test_top_level_text_reads_only_top_level_text(text: str, found: dict):
    assert top_level_text(text.encode(), KEYS) == found


@pytest.mark.parametrize(
    "data",
    [
        b"a: &x 1\nenv: *x\n",
        b"env: !!python/name:os.system\n",
        b"!!python/object/apply:os.system ['true']\n",
        b"[" * 100 + b"]" * 100,
        b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 40)) + b"env: x\n",
        b"- env\n- algo\n",
        b"env\n",
        b"env: x\n\x00",
        b"env: \xff\n",
        b"",
        b"env: [x\n",
        b"x" * (64 * 1024 + 1),
    ],
)
def test_top_level_text_refuses_what_a_full_read_refuses(data: bytes):
    with pytest.raises(ConfigSyntaxError):
        load_yaml_mapping(data)
    with pytest.raises(ConfigSyntaxError):
        top_level_text(data, KEYS)
