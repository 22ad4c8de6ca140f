"""Load a user's YAML without ever executing or expanding anything.

``yaml.safe_load`` refuses Python object tags but still expands aliases, so a few hundred bytes
can become billions of nodes (the "billion laughs" bomb). Configs need neither anchors nor custom
tags, so both are refused before anything is constructed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

MAX_CONFIG_BYTES = 64 * 1024
# libyaml's safe loader when PyYAML was built with it (PyPI wheels are): the same safe
# constructors, ten times faster, which a dashboard listing a thousand runs notices.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 32  # a config nests 3-4 levels; more is a mistake or an attack

# The YAML core scalar tags are harmless and appear in pasted RL Zoo entries (`!!float 1e7`).
_ALLOWED_TAGS = {
    f"tag:yaml.org,2002:{name}" for name in ("float", "int", "str", "bool", "null", "map", "seq")
}


_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()  # how the safe loaders type a plain scalar


class ConfigSyntaxError(ValueError):
    """The document is not a plain YAML mapping we are willing to read."""


def load_yaml_mapping(data: bytes) -> dict[str, Any]:
    """Parse ``data`` as one YAML mapping, refusing anything but plain data."""
    text = _text_of(data)
    try:
        for _event in _checked_events(text):
            pass
        doc = yaml.load(text, Loader=_LOADER)  # a safe loader (C or Python), never yaml.Loader
    except ConfigSyntaxError:
        raise
    except yaml.YAMLError as exc:
        raise ConfigSyntaxError(f"the file is not valid YAML: {_one_line(exc)}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ConfigSyntaxError(f"a value cannot be read: {_one_line(exc)}") from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else type(doc).__name__
        raise ConfigSyntaxError(
            f"the file holds a {kind}, not a mapping: a run config looks like "
            "'algo: ppo\\nenv: ALE/Pong-v5\\nn_timesteps: 1000000'"
        )
    bad_keys = [k for k in doc if not isinstance(k, str)]
    if bad_keys:
        raise ConfigSyntaxError(f"keys must be text, got {bad_keys[0]!r}")
    return doc


def top_level_text(data: bytes, keys: frozenset[str]) -> dict[str, str | None]:
    """The values of ``keys`` at the top level of the YAML mapping in ``data``, read from the
    parser's events without building the document, stopping once every key was seen: a key
    whose value is not text (a number, a list) maps to None, a missing key is absent.

    The same refusals as ``load_yaml_mapping`` for what is read before it stops (size, NUL,
    UTF-8, nesting, anchors, tags); nothing after that is constructed, so nothing there can
    cost anything. Scalars are typed by the YAML resolver as the safe loader types them
    (``env: 1`` is a number, ``env: "1"`` text). A key written twice counts the first time
    (a full load keeps the last): for a listing only, never to run anything."""
    text = _text_of(data)
    found: dict[str, str | None] = {}
    level, key, want_key = 0, None, True
    try:
        for event in _checked_events(text):
            node: yaml.Event | None = None  # a complete node at the top level of the mapping
            if isinstance(event, yaml.CollectionStartEvent):
                if level == 0 and not isinstance(event, yaml.MappingStartEvent):
                    raise ConfigSyntaxError("the file holds a list, not a mapping")
                level += 1
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                level -= 1
                if level != 1:
                    if level == 0:
                        break  # the end of the top-level mapping
                    continue
                node = event  # a list or mapping as a key or a value: not text
            elif isinstance(event, yaml.ScalarEvent):
                if level == 0:
                    raise ConfigSyntaxError("the file holds a scalar, not a mapping")
                if level != 1:
                    continue
                node = event
            else:
                continue
            value = _scalar_text(node)
            if want_key:
                key, want_key = value, False
                continue
            want_key = True
            if key in keys and key not in found:
                found[key] = value
                if len(found) == len(keys):
                    break
    except yaml.YAMLError as exc:
        raise ConfigSyntaxError(f"the file is not valid YAML: {_one_line(exc)}") from None
    return found


def _scalar_text(event: yaml.Event) -> str | None:
    """The text of a scalar event that the safe loader would make a ``str``, else None."""
    if not isinstance(event, yaml.ScalarEvent):
        return None
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    return event.value if _expand_tag(tag) == _STR_TAG else None


def _text_of(data: bytes) -> str:
    if len(data) == 0 or not data.strip():
        raise ConfigSyntaxError("the file is empty: write a YAML mapping such as 'algo: ppo'")
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigSyntaxError(
            f"the file is {len(data):,} bytes; a run config is at most {MAX_CONFIG_BYTES:,} bytes"
        )
    if b"\x00" in data:
        raise ConfigSyntaxError("the file is binary (it contains NUL bytes), not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigSyntaxError(
            f"the file is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None


def _checked_events(text: str) -> Iterator[yaml.Event]:
    """The parser's events of ``text``, each checked before it is handed on: nesting depth,
    no anchors or aliases, only the core tags. Raises ConfigSyntaxError, or yaml.YAMLError
    for text that is not YAML."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        # Checked while scanning: PyYAML's scanner is quadratic in nesting depth and its
        # composer recursive, so '[' x 30,000 would stall intake, then overflow the stack.
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigSyntaxError(
                    f"the file nests lists or mappings more than {MAX_DEPTH} levels deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigSyntaxError(
                "YAML anchors and aliases (&name / *name) are not allowed in run configs: "
                "write the values out in full"
            )
        tag = getattr(event, "tag", None)
        if tag is not None and _expand_tag(tag) not in _ALLOWED_TAGS:
            raise ConfigSyntaxError(
                f"YAML tag {tag!r} is not allowed: configs are plain data; remove the tag"
            )
        yield event


def _expand_tag(tag: str) -> str:
    return "tag:yaml.org,2002:" + tag[2:] if tag.startswith("!!") else tag


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
