"""What is wrong with a config, in plain words: pydantic's errors as one line each, and
unknown keys named with the closest valid one."""

from __future__ import annotations

import difflib
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from runstore.config_schema import AtariSettings, Resources, RunConfig, algo_of
from runstore.hyperparams import HYPERPARAMS_BY_ALGO, short_repr, unwrap_annotation


class ConfigError(ValueError):
    """A config that cannot run, with every problem in plain words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))

    def __str__(self) -> str:
        return "\n".join(f"- {p}" for p in self.problems)


def unknown_key_problems(doc: dict[str, Any]) -> list[str]:
    """Name unknown keys with the closest valid one, which pydantic alone does not do."""
    problems = []
    algo = algo_of(doc)
    problems += _unknown_top_level(doc, algo)
    hp = doc.get("hyperparams")
    if isinstance(hp, dict) and algo in HYPERPARAMS_BY_ALGO:
        fields = HYPERPARAMS_BY_ALGO[algo].model_fields
        other = {k for a, m in HYPERPARAMS_BY_ALGO.items() if a != algo for k in m.model_fields}
        for key in hp:
            if key not in fields and key in other:
                problems.append(f"hyperparams.{key}: not a {algo.upper()} hyperparameter")
            elif key not in fields and key in RunConfig.model_fields:
                problems.append(
                    f"hyperparams.{key}: a top-level key, not a hyperparameter; "
                    "write it beside algo and env"
                )
            elif key not in fields:
                problems += _unknown({key: None}, fields, "hyperparams.")
    if isinstance(doc.get("atari"), dict):
        problems += _unknown(doc["atari"], AtariSettings.model_fields, "atari.")
    if isinstance(doc.get("resources"), dict):
        problems += _unknown(doc["resources"], Resources.model_fields, "resources.")
    return problems


def _unknown_top_level(doc: dict[str, Any], algo: str | None) -> list[str]:
    """Unknown top-level keys; a hyperparameter there (or a typo of one) is sent under
    ``hyperparams:``, where it belongs, rather than called unknown."""
    top = list(RunConfig.model_fields)
    models = HYPERPARAMS_BY_ALGO.values()
    own = HYPERPARAMS_BY_ALGO[algo].model_fields if algo in HYPERPARAMS_BY_ALGO else None
    hyper = list(own or {k: 0 for m in models for k in m.model_fields})
    problems = []
    for key, value in doc.items():
        if key in RunConfig.model_fields:
            continue
        name = str(key)
        if name in hyper:
            flow = yaml.safe_dump({name: value}, default_flow_style=True, width=10_000).strip()
            flow = flow if len(flow) <= 60 else f"{{{name}: ...}}"
            problems.append(f"{name}: belongs under hyperparams: (hyperparams: {flow})")
            continue
        if own is not None and any(name in m.model_fields for m in models):
            problems.append(
                f"{name}: not a {algo.upper()} hyperparameter (and not a top-level key)"
            )
            continue
        scored = [(difflib.SequenceMatcher(None, name, k).ratio(), k) for k in top] + [
            (difflib.SequenceMatcher(None, name, k).ratio(), f"hyperparams.{k}") for k in hyper
        ]
        score, best = max(scored)
        hint = f"; did you mean '{best}'?" if score >= 0.6 else ""
        problems.append(f"{name}: unknown key{hint}")
    return problems


def _unknown(doc: dict[str, Any], known: Any, prefix: str) -> list[str]:
    problems = []
    for key in doc:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"{prefix}{key}: unknown key{hint}")
    return problems


def format_validation_errors(
    exc: ValidationError, model: type[BaseModel] | None = None
) -> list[str]:
    """One line per error: ``dotted.path: what is wrong (got value)``.

    With ``model``, an unknown key anywhere below it (``policy_kwargs.optimizer_kwargs``) is
    named with the closest valid key and the keys its section takes.
    """
    problems = []
    for err in exc.errors():
        path = [p for p in err["loc"] if not _is_union_branch(p)]
        loc = ".".join(str(p) for p in path)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required but missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key" + _section_hint(model, path)
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg} (got {short_repr(err['input'])})"
        problems.append(f"{loc or 'config'}: {msg}")
    return problems


def _section_hint(model: type[BaseModel] | None, path: list[Any]) -> str:
    """'; did you mean X? use one of ...' for an unknown key at ``path`` below ``model``."""
    for part in path[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        base = unwrap_annotation(field.annotation)[0] if field is not None else None
        model = base if isinstance(base, type) and issubclass(base, BaseModel) else None
    if model is None or not path:
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    section = ".".join(map(str, path[:-1]))
    return f"{hint} ({section + ' takes' if section else 'use one of'} {', '.join(known)})"


def _is_union_branch(part: Any) -> bool:
    return isinstance(part, str) and (
        part.endswith("Hyperparams") or part in ("int", "float", "str", "tuple[int,str]")
    )
