"""Form widgets generated from the config schema (pydantic fields), so a field added to
``RunConfig`` or a hyperparameter model appears in the New run form without a page edit.

Each widget starts at the value the preset (or the schema default) gives; only values the
user changed, or that the preset set, go into the YAML. That keeps the Zoo's Atari defaults,
which ``resolve`` merges under the user's keys, in force for every key left alone.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import streamlit as st
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

_NONE = type(None)


def _plain(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None``, and whether ``None`` is allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not _NONE]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            inner, _ = _plain(args[0])
            return inner, optional
        return annotation, optional
    if origin is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    return annotation, False


def kind(field: FieldInfo) -> tuple[str, tuple[Any, ...]]:
    """How to draw a field: bool, int, float, choice (with options) or yaml (anything else)."""
    inner, optional = _plain(field.annotation)
    if typing.get_origin(inner) is typing.Literal:
        return "choice", tuple(typing.get_args(inner))
    if optional:
        return "yaml", ()
    if inner is bool:
        return "bool", ()
    if inner is int:
        return "int", ()
    if inner is float:
        return "float", ()
    return "yaml", ()


def default_of(field: FieldInfo) -> Any:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()


def field_input(name: str, field: FieldInfo, initial: Any, key: str) -> tuple[Any, str | None]:
    """Draw one field; returns (value, problem). ``initial`` is the preset's or the default."""
    how, options = kind(field)
    help_text = field.description or None
    if how == "bool":
        return st.checkbox(name, value=bool(initial), key=key, help=help_text), None
    if how == "choice":
        opts = list(options)
        index = opts.index(initial) if initial in opts else 0
        return st.selectbox(name, opts, index=index, key=key, help=help_text), None
    if how == "int" and isinstance(initial, int) and not isinstance(initial, bool):
        return st.number_input(name, value=initial, step=1, key=key, help=help_text), None
    if how == "float" and isinstance(initial, int | float) and not isinstance(initial, bool):
        value = st.number_input(name, value=float(initial), format="%g", key=key, help=help_text)
        return value, None
    text = st.text_input(
        name, value=as_text(initial), key=key, help=help_text, placeholder="not set"
    )
    if text.strip() == "":
        return None, None
    if text == as_text(initial):
        return initial, None
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError:
        return text, f"{name}: {text!r} is not valid YAML"


def model_inputs(
    model: type[BaseModel],
    base: dict[str, Any],
    key_prefix: str,
    skip: tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Widgets for every field of ``model``; returns the keys to write and input problems.

    ``base`` holds what the preset wrote (always kept); ``overrides`` holds values shown but
    not written unless changed (the Zoo's Atari defaults, which ``resolve`` adds itself).
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    shown = {**(overrides or {}), **base}
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        initial = shown.get(name, default_of(field))
        value, problem = field_input(name, field, initial, f"{key_prefix}_{name}")
        if problem:
            problems.append(problem)
        if value is not None and (name in base or not _same(value, initial)):
            out[name] = value
    return out, problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, int | float) and not isinstance(b, bool):
        return abs(a - float(b)) <= 1e-12 * max(1.0, abs(a))
    return a == b
