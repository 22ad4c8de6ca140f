"""Which keys of several runs' resolved configs differ: the Compare page's config diff.

Resolved configs (config.yaml, every default filled in) are compared, not the files users
wrote, so a key one run set and another left at its default shows only when the values
differ. Nested mappings become dotted keys (``hyperparams.learning_rate``), as in sweep
spaces; lists are compared whole.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

#: Shown for a key one run's config does not have (e.g. ``hyperparams.n_steps`` of a DQN run).
ABSENT = "—"


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; an empty mapping stays a value of its own."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def config_diff(configs: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """One row per dotted key whose value is not the same in every config: ``key``, then one
    text column per config (named by the mapping's keys, e.g. run labels), ``ABSENT`` where a
    config lacks the key. No rows when the configs agree (or fewer than two are given)."""
    flat = {label: flatten(doc) for label, doc in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    missing = object()
    differing = [
        k
        for k in keys
        if len({json.dumps(f.get(k, missing), sort_keys=True, default=repr) for f in flat.values()})
        > 1
    ]
    columns: dict[str, list[str]] = {"key": differing}
    for label, f in flat.items():
        columns[label] = [_shown(f[k]) if k in f else ABSENT for k in differing]
    return pl.DataFrame(columns, schema={name: pl.Utf8 for name in columns})
