"""A sweep file: a queue file with a ``sweep:`` block beside the ordinary run keys.

The run keys are the base config of every trial; the block says how many trials, what to
search, and how a trial is judged. It is checked here, in the run store, so that the runner
(which owns the study), the command line and the dashboard's New sweep form refuse the same
files with the same words, before anything runs. Nothing here imports Optuna: the runner maps
a ``Space`` onto Optuna's distributions when it creates the study.

Every bound and every choice of the space is put into the base config and validated with the
run schema, so a trial can never be asked for a value its run would refuse.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from runstore.config import ConfigError, resolve
from runstore.config_messages import format_validation_errors
from runstore.config_schema import AtariSettings, Resources, RunConfig, algo_of, parse_duration
from runstore.hyperparams import HYPERPARAMS_BY_ALGO, Float, Int, StrictModel, number_spec
from runstore.tags import EPISODE_RETURN, EVAL_MEAN_RETURN
from runstore.yamlsafe import ConfigSyntaxError, load_yaml_mapping

SWEEP_KEY = "sweep"
MAX_TRIALS = 10_000
MAX_SEEDS = 100
MAX_CHOICES = 1_000
MAX_CONCURRENT = 256
#: The tag families an objective can come from: what training and evaluation write.
#: ``system/`` and ``time/`` describe the machine, not the agent.
METRIC_PREFIXES = ("eval/", "episode/", "rollout/", "train/")
_METRIC = re.compile(r"^[A-Za-z0-9_]+(/[A-Za-z0-9_.-]+)+$")
#: psycopg2 is the driver in the dependencies; ``postgresql://`` means it to SQLAlchemy.
_STORAGE = re.compile(r"^postgresql(\+psycopg2)?://\S+$")
#: Keys a trial may not take from the space: the sweep sets them itself.
_NOT_SEARCHABLE = {
    "seed": "each trial's seeds come from sweep.seeds",
    "name": "trials are named after the sweep",
    "sweep": "it is the sweep itself",
}
#: Sections of the run config whose keys are searched as ``section.key``.
_SECTIONS: dict[str, type[BaseModel]] = {"atari": AtariSettings, "resources": Resources}

Scalar = str | int | float | bool | None


class FloatSpace(StrictModel):
    """``{float: [low, high], log: true}``: a real number, uniform or log-uniform."""

    bounds: tuple[Float, Float] = Field(alias="float")
    log: bool = False
    step: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _sane(self) -> FloatSpace:
        _check_bounds(self.bounds, self.log, self.step)
        return self


class IntSpace(StrictModel):
    """``{int: [low, high]}``: a whole number, both ends included."""

    bounds: tuple[Int, Int] = Field(alias="int")
    log: bool = False
    step: Int = Field(1, ge=1)

    @model_validator(mode="after")
    def _sane(self) -> IntSpace:
        _check_bounds(self.bounds, self.log, self.step if self.step != 1 else None)
        return self

    @property
    def values(self) -> list[int]:
        low, high = self.bounds
        return list(range(low, high + 1, self.step))


class ChoiceSpace(StrictModel):
    """``{choice: [a, b, c]}``: one of the listed values."""

    choice: list[Scalar] = Field(min_length=1, max_length=MAX_CHOICES)

    @field_validator("choice", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("the choice is empty: list at least one value")
        if isinstance(value, list):
            for item in value:
                if isinstance(item, list | dict):
                    raise ValueError(
                        f"{item!r} is not a plain value: a choice holds numbers, text, "
                        "true/false or null"
                    )
            if len({repr(v) for v in value}) != len(value):
                raise ValueError("the choice lists a value twice: list each value once")
        return value


Space = FloatSpace | IntSpace | ChoiceSpace
_SPACE_KINDS: dict[str, type[StrictModel]] = {
    "float": FloatSpace,
    "int": IntSpace,
    "choice": ChoiceSpace,
}


def _check_bounds(bounds: tuple[float, float], log: bool, step: float | None) -> None:
    low, high = bounds
    if low > high:
        raise ValueError(f"low {low} is above high {high}: write [{high}, {low}]")
    if log and low <= 0:
        raise ValueError(f"log: true needs a low bound above 0 (got {low}): raise it, or drop log")
    if log and step is not None:
        raise ValueError("step and log: true cannot be used together: drop one")
    if step is not None and step > high - low and low != high:
        raise ValueError(f"step {step} is wider than the range [{low}, {high}]: shrink it")


class SweepBlock(StrictModel):
    """The ``sweep:`` block as written; ``parse_sweep`` checks it against the base config."""

    n_trials: Int | None = Field(None, ge=1, le=MAX_TRIALS)
    timeout: Float | None = Field(
        None, gt=0, le=366 * 86400, description="seconds, or text like '2h': ask no new trial after"
    )
    max_concurrent: Int = Field(1, ge=1, le=MAX_CONCURRENT)
    metric: str | None = Field(
        None, description=f"a scalar tag; default {EVAL_MEAN_RETURN}, else {EPISODE_RETURN}"
    )
    direction: Literal["maximize", "minimize"] = "maximize"
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    seed: Int = Field(0, ge=0, le=2**31 - 1, description="the sampler's seed")
    seeds: Int = Field(1, ge=1, le=MAX_SEEDS, description="runs per trial; objective = mean")
    storage: str | None = Field(
        None, description="postgresql://... for a study shared by several machines"
    )
    space: dict[str, Space] = Field(default_factory=dict)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _METRIC.match(value) or not value.startswith(METRIC_PREFIXES):
            raise ValueError(
                f"{value!r} is not a training or evaluation tag: use a name such as "
                f"{EVAL_MEAN_RETURN} or {EPISODE_RETURN} (one of {', '.join(METRIC_PREFIXES)}...)"
            )
        return value

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        if value is not None and not _STORAGE.match(value):
            raise ValueError(
                "only postgresql://USER:PASSWORD@HOST/DB is taken; leave storage out for the "
                "journal file in runs/sweeps/<id>/"
            )
        return value

    @field_validator("space", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        typed, problems = parse_space(value)
        if problems:
            raise ValueError("; ".join(problems))
        return typed


def rdb_url(url: str) -> str:
    """The SQLAlchemy URL of a ``storage``, with the driver named: a bare ``postgresql://``
    means psycopg2 (the dependency) to SQLAlchemy 2.0 but psycopg 3 to 2.1, which is not
    installed. One definition: the runner opens the study with it, the dashboard reads it."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def storage_password(url: str | None) -> str | None:
    """The password in a storage URL, to keep out of logs, sweep.json and pages (the URL
    itself is shown with ``make_url(url).render_as_string(hide_password=True)``)."""
    if not url:
        return None
    from sqlalchemy.engine import make_url  # only with a storage: the runner starts lighter

    try:
        return make_url(url).password or None
    except Exception:  # noqa: BLE001 - not a URL: nothing to hide
        return None


def parse_space(raw: dict[str, Any]) -> tuple[dict[str, Space], list[str]]:
    """Each entry's model picked by its one kind key, so a problem names that entry and kind
    only: ``(entries, problems)``, each problem starting with the entry's key."""
    typed: dict[str, Space] = {}
    problems: list[str] = []
    for key, entry in raw.items():
        if isinstance(entry, FloatSpace | IntSpace | ChoiceSpace):
            typed[key] = entry
            continue
        kinds = [k for k in _SPACE_KINDS if isinstance(entry, dict) and k in entry]
        if len(kinds) != 1:
            problems.append(
                f"{key}: say one of float: [low, high], int: [low, high] or choice: [...] "
                f"(got {entry!r})"
            )
            continue
        model = _SPACE_KINDS[kinds[0]]
        try:
            typed[key] = model.model_validate(entry)  # type: ignore[assignment]
        except ValidationError as exc:
            for problem in format_validation_errors(exc, model):
                problems.append(f"{key}: {problem.removeprefix('config: ')}")
    return typed, problems


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file: the block, the base config resolved, and the run keys as given
    (each trial's config is made from them, so a default stays a default)."""

    block: SweepBlock
    base: RunConfig
    base_doc: dict[str, Any]

    @property
    def metric(self) -> str:
        if self.block.metric:
            return self.block.metric
        return EVAL_MEAN_RETURN if self.base.eval_every else EPISODE_RETURN

    @property
    def n_trials(self) -> int | None:
        """Trials to ask: as written, or a grid's size, or 1 for a seeds-only launch."""
        if self.block.n_trials is not None:
            return self.block.n_trials
        if not self.block.space:
            return 1
        if self.block.sampler == "grid":
            return grid_size(self.block.space)
        return None


def is_sweep_file(doc: dict[str, Any]) -> bool:
    """A queue document with a ``sweep:`` block (not a trial's own ``sweep: {id, trial}``)."""
    block = doc.get(SWEEP_KEY)
    return block is not None and not (isinstance(block, dict) and _is_trial_ref(block))


def _is_trial_ref(block: dict[str, Any]) -> bool:
    return bool(block) and set(block) <= {"id", "trial", "seed_index"}


def parse_sweep(data: bytes, defaults: dict[str, Any] | None = None) -> Sweep:
    """Check a sweep file; ``ConfigError`` lists every problem, each with its fix."""
    try:
        doc = load_yaml_mapping(data)
    except ConfigSyntaxError as exc:
        raise ConfigError([str(exc)]) from None
    return check_sweep({**(defaults or {}), **doc})


def check_sweep(doc: dict[str, Any]) -> Sweep:
    """``parse_sweep`` for a document already loaded (the dashboard's form builds one)."""
    doc = copy.deepcopy(doc)
    raw = doc.pop(SWEEP_KEY, None)
    if not isinstance(raw, dict):
        raise ConfigError([f"{SWEEP_KEY}: must be a mapping (n_trials, space, ...)"])
    base = resolve(copy.deepcopy(doc))
    given = raw.get("space")
    space, space_problems = parse_space(given) if isinstance(given, dict) else ({}, [])
    space_problems = [f"{SWEEP_KEY}.space.{p}" for p in space_problems]
    try:
        block = SweepBlock.model_validate(
            {**raw, "space": space} if space_problems or space else raw
        )
    except ValidationError as exc:
        problems = [f"{SWEEP_KEY}.{p}" for p in format_validation_errors(exc, SweepBlock)]
        raise ConfigError(space_problems + problems) from None
    if space_problems:
        raise ConfigError(space_problems)
    problems = _plan_problems(block, base)
    for key, space in block.space.items():
        problems += [f"{SWEEP_KEY}.space.{key}: {p}" for p in _space_problems(doc, key, space)]
    if problems:
        raise ConfigError(problems)
    return Sweep(block=block, base=base, base_doc=doc)


def _plan_problems(block: SweepBlock, base: RunConfig) -> list[str]:
    problems = []
    if not block.space and block.seeds == 1:
        problems.append(
            f"{SWEEP_KEY}: nothing to sweep: add a space (hyperparams.learning_rate: "
            "{float: [1.0e-5, 1.0e-2], log: true}) or seeds: 2 or more"
        )
    if not block.space and block.n_trials not in (None, 1):
        problems.append(
            f"{SWEEP_KEY}.n_trials: {block.n_trials} trials of the same config: add a space, "
            "or use seeds for repeats"
        )
    if block.space and block.sampler != "grid" and block.n_trials is None and not block.timeout:
        problems.append(f"{SWEEP_KEY}: give n_trials (e.g. 30) or timeout (e.g. 2h)")
    if block.sampler == "grid":
        for key, space in block.space.items():
            if isinstance(space, FloatSpace) and space.step is None:
                problems.append(
                    f"{SWEEP_KEY}.space.{key}: the grid sampler needs finite values: "
                    "give the float a step, or use choice: [...]"
                )
        if block.space and grid_size(block.space) > MAX_TRIALS:
            problems.append(
                f"{SWEEP_KEY}.space: the grid has {grid_size(block.space):,} points, more than "
                f"{MAX_TRIALS:,}: use fewer values, or sampler: tpe with n_trials"
            )
    if block.metric is None and not base.eval_every and base.is_atari:
        problems.append(
            f"{SWEEP_KEY}.metric: evaluation is off, so trials would be judged on noisy "
            "training returns: set eval_every (e.g. 100_000), or metric: episode/return"
        )
    return problems


def grid_size(space: dict[str, Space]) -> int:
    size = 1
    for entry in space.values():
        size *= len(grid_values(entry))
    return size


def grid_values(entry: Space) -> list[Any]:
    """The finite values of one dimension (a float needs a step)."""
    if isinstance(entry, ChoiceSpace):
        return list(entry.choice)
    if isinstance(entry, IntSpace):
        return entry.values
    low, high = entry.bounds
    if entry.step is None:
        return []
    count = int((high - low) / entry.step + 1e-9) + 1
    return [low + i * entry.step for i in range(count)]


def searchable_keys(algo: str) -> list[str]:
    """Every dotted key a sweep of ``algo`` runs may search (the New sweep form lists them)."""
    keys = [k for k in RunConfig.model_fields if k not in _NOT_SEARCHABLE and k not in _nested()]
    keys += [f"{s}.{k}" for s, model in _SECTIONS.items() for k in model.model_fields]
    hp_model = HYPERPARAMS_BY_ALGO.get(algo)
    keys += [f"hyperparams.{k}" for k in hp_model.model_fields] if hp_model else []
    return keys


def _nested() -> set[str]:
    return {*_SECTIONS, "hyperparams"}


def _field_of(key: str, algo: str | None) -> Any:
    """The pydantic field a dotted key names, or None."""
    head, _, tail = key.partition(".")
    if not tail:
        return RunConfig.model_fields.get(head) if head not in _nested() else None
    model = HYPERPARAMS_BY_ALGO.get(algo) if head == "hyperparams" else _SECTIONS.get(head)
    return model.model_fields.get(tail) if model is not None and "." not in tail else None


def _space_problems(doc: dict[str, Any], key: str, space: Space) -> list[str]:
    algo = algo_of(doc) or ""
    if key.partition(".")[0] in _NOT_SEARCHABLE:
        return [f"cannot be searched: {_NOT_SEARCHABLE[key.partition('.')[0]]}"]
    field = _field_of(key, algo)
    if field is None:
        close = difflib.get_close_matches(key, searchable_keys(algo), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return [f"the config has no key {key!r} for {algo or 'this algo'}{hint}"]
    spec = number_spec(field)
    if isinstance(space, FloatSpace | IntSpace) and spec is None:
        return ["is not a number: search it with choice: [...]"]
    if isinstance(space, FloatSpace) and spec is not None and spec.kind == "int":
        low, high = (int(b) for b in space.bounds)
        return [f"is a whole number: write int: [{low}, {high}]"]
    problems = []
    for value in _probes(space):
        trial = set_dotted(copy.deepcopy(doc), key, value)
        try:
            resolve(trial)
        except ConfigError as exc:
            mine = [p for p in exc.problems if p.startswith(key)] or exc.problems
            problems.append(f"{value!r} is refused by the run config: {mine[0]}")
    return problems


def _probes(space: Space) -> list[Any]:
    """The values that stand for a whole dimension: its ends, or every choice."""
    if isinstance(space, ChoiceSpace):
        return list(space.choice)
    low, high = space.bounds
    return [low] if low == high else [low, high]


def set_dotted(doc: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``doc`` with ``key`` (``hyperparams.learning_rate``) set, sections made as needed."""
    *parents, leaf = key.split(".")
    node = doc
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value
    return doc


def trial_doc(
    sweep: Sweep, params: dict[str, Any], *, sweep_id: str, trial: int, seed_index: int
) -> dict[str, Any]:
    """The queue document of one run of a trial: the base, the params, its seed and its
    ``sweep: {id, trial, seed_index}``. Seeds count up from the base file's seed, else from the
    sampler's seed (never from a default drawn at random: a runner restarted after a crash must
    queue the same runs), so every trial trains on the same k seeds."""
    doc = copy.deepcopy(sweep.base_doc)
    for key, value in params.items():
        set_dotted(doc, key, value)
    first = sweep.base_doc.get("seed")
    doc["seed"] = (first if isinstance(first, int) else sweep.block.seed) + seed_index
    suffix = f"-t{trial}" + (f"-s{seed_index}" if sweep.block.seeds > 1 else "")
    doc["name"] = (sweep.base.display_name[: 63 - len(suffix)] + suffix).strip()
    doc[SWEEP_KEY] = {"id": sweep_id, "trial": trial, "seed_index": seed_index}
    return doc
