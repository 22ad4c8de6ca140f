"""The words of a run's config.yaml that the Runs page's text search looks in: every value,
with the path of keys that leads to it (``hyperparams.learning_rate=0.00025``), in lower case.

Read only when someone searches, once per version of the file (the dashboard caches it by the
file's stamp), with the bounds and refusals of every config read; nothing is validated, so a
run whose config this version cannot build is still found by its values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runstore import safeio
from runstore.yamlsafe import MAX_CONFIG_BYTES, ConfigSyntaxError, load_yaml_mapping


def config_words(path: Path) -> str:
    """One ``key.path=value`` line per value of the config at ``path``, lower case; "" when
    the file is missing, refused (a link, a FIFO, too big) or not a YAML mapping."""
    try:
        doc = load_yaml_mapping(safeio.read_bytes(path, limit=MAX_CONFIG_BYTES))
    except (OSError, ConfigSyntaxError):
        return ""
    return "\n".join(_leaves(doc, "")).lower()


def _leaves(value: Any, prefix: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner, prefix)
    else:
        yield f"{prefix}={value}"
