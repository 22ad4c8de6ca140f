"""The run config: one typed model used by the runner (validation), the trainer
(construction) and the dashboard (the new-run form).

A user writes a short YAML file; ``resolve`` turns it into the complete config written to the
run folder as ``config.yaml``, with every default filled in, so a run can be reproduced from
its folder alone and the trainer never guesses.

The models are in ``runstore.config_schema``, the error messages in
``runstore.config_messages`` and the env keyword checks in ``runstore.env_kwargs``; the names
other code uses are imported from here.

Two readers, on purpose (docs/configuration.md, "The stored config and its version"): a queue
file is checked strictly (``parse_config``: an unknown key is an error naming the key meant),
while a run folder's ``config.yaml`` is read tolerantly (``read_stored_config``: a key this
version does not know, written by an older or a newer one, is dropped, named in a warning and
left in the file), so an old folder stays viewable and resumable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from runstore import safeio
from runstore.config_messages import (
    ConfigError,
    format_validation_errors,
    unknown_key_problems,
)
from runstore.config_schema import (
    INIT_FROM_PATTERN,
    MAX_CHECKPOINTS,
    MAX_CPU_ID,
    MAX_TIME_BUDGET,
    NAME_PATTERN,
    NICE_BY_PRIORITY,
    AtariSettings,
    Resources,
    RunConfig,
    algo_of,
    default_name,
)
from runstore.env_kwargs import (
    NON_ATARI_EXTRA_KWARGS,
    RESERVED_ENV_KWARGS,
    AtariEnvKwargs,
    env_kwargs_for,
)
from runstore.envs import is_atari, registered_env_ids
from runstore.hyperparams import (
    HYPERPARAMS_BY_ALGO,
    ZOO_ATARI,
    DQNHyperparams,
    PPOHyperparams,
    format_number,
    short_repr,
    unwrap_annotation,
)
from runstore.yamlsafe import (
    MAX_CONFIG_BYTES,
    ConfigSyntaxError,
    load_yaml_mapping,
    top_level_text,
)

__all__ = [
    "CONFIG_VERSION",
    "CONFIG_VERSION_KEY",
    "MIGRATIONS",
    "INIT_FROM_PATTERN",
    "LISTING_KEYS",
    "MAX_CHECKPOINTS",
    "MAX_CPU_ID",
    "MAX_TIME_BUDGET",
    "NAME_PATTERN",
    "NICE_BY_PRIORITY",
    "NON_ATARI_EXTRA_KWARGS",
    "RESERVED_ENV_KWARGS",
    "AtariEnvKwargs",
    "AtariSettings",
    "ConfigError",
    "ConfigListing",
    "Resources",
    "RunConfig",
    "StoredConfig",
    "default_name",
    "format_validation_errors",
    "load_resolved",
    "parse_config",
    "read_config_listing",
    "read_run_config",
    "read_stored_config",
    "resolve",
    "to_stored_yaml",
    "to_yaml",
]

#: The key of a run folder's config.yaml that says which format it is in. The runner writes it
#: at intake; a folder without it (made before the key existed) is version 1.
CONFIG_VERSION_KEY = "config_version"
#: The format this code writes and reads. Raise it when a change needs old folders rewritten
#: on reading (a renamed or moved key, a new meaning), and add the step to ``MIGRATIONS``.
CONFIG_VERSION = 1
#: version N -> a function turning a version-N document (a plain mapping, before validation)
#: into a version N+1 one. Applied in order to a stored config and to a queue file of an older
#: version. Empty while there is one version; a key that was only added needs no step (its
#: default fills it), a key that was renamed, moved or re-meant does.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True)
class StoredConfig:
    """A run folder's config as read: the config, the format version the file says it is in,
    and what was ignored (dotted key -> value) with the warnings to show."""

    config: RunConfig
    version: int = CONFIG_VERSION
    ignored: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def parse_config(data: bytes, defaults: dict[str, Any] | None = None) -> RunConfig:
    """Parse and validate a queue file, then fill every default (``resolve``).

    ``defaults`` (the runner's settings.yaml) go under the file's keys: the file wins.
    """
    try:
        doc = load_yaml_mapping(data)
    except ConfigSyntaxError as exc:
        raise ConfigError([str(exc)]) from None
    return resolve({**(defaults or {}), **doc})


def resolve(doc: dict[str, Any]) -> RunConfig:
    # A queue file may carry the version (a run folder's config.yaml copied into the queue
    # is a valid queue file); an older one is migrated, a newer one refused. Without it the
    # file is taken as written for this version: people write queue files from today's docs.
    doc, version = _version_of(doc, missing=CONFIG_VERSION)
    if version > CONFIG_VERSION:
        raise ConfigError(
            [
                f"{CONFIG_VERSION_KEY}: {version} is newer than this Retro ML reads (up to "
                f"{CONFIG_VERSION}); update Retro ML, or remove the key and check each setting"
            ]
        )
    doc = _migrate(doc, version)
    hp = doc.get("hyperparams")
    # A pasted Zoo entry carries its own n_timesteps; accept it when the top level has none.
    if isinstance(hp, dict) and "n_timesteps" in hp and "n_timesteps" not in doc:
        doc["n_timesteps"] = hp["n_timesteps"]
    unknown = unknown_key_problems(doc)
    doc = _known_keys_only(doc)
    hp = doc.get("hyperparams")
    atari = _env_is_atari(doc.get("env"))
    if isinstance(hp, dict) or hp is None:
        algo = algo_of(doc)
        # Atari runs start from the Zoo's Atari entry; the keys a user gives override it.
        base = dict(ZOO_ATARI.get(algo, {})) if atari else {}
        doc["hyperparams"] = {**base, **(hp or {})}
    try:
        config = _validate(doc)
    except ConfigError as exc:
        raise ConfigError(unknown + exc.problems) from None
    if unknown:
        raise ConfigError(unknown)
    return _fill_defaults(config)


def _known_keys_only(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown keys (already reported) so validation reports the remaining problems."""
    doc = {k: v for k, v in doc.items() if k in RunConfig.model_fields}
    hp_model = HYPERPARAMS_BY_ALGO.get(algo_of(doc))
    if isinstance(doc.get("hyperparams"), dict) and hp_model is not None:
        hp = doc["hyperparams"]
        doc["hyperparams"] = {k: v for k, v in hp.items() if k in hp_model.model_fields}
    if isinstance(doc.get("atari"), dict):
        atari = doc["atari"]
        doc["atari"] = {k: v for k, v in atari.items() if k in AtariSettings.model_fields}
    if isinstance(doc.get("resources"), dict):
        res = doc["resources"]
        doc["resources"] = {k: v for k, v in res.items() if k in Resources.model_fields}
    return doc


def _validate(doc: dict[str, Any]) -> RunConfig:
    """Validate the top level and the hyperparams of the chosen algorithm, reporting both.

    The hyperparams go through the one schema that applies, so errors name it instead of a
    union of every algorithm's schema.
    """
    problems: list[str] = []
    doc = dict(doc)
    hp = doc.pop("hyperparams", None)
    hp_model = HYPERPARAMS_BY_ALGO.get(algo_of(doc))
    if isinstance(hp, dict) and "env_kwargs" in hp and isinstance(doc.get("env"), str):
        env_problems, env_kwargs = env_kwargs_for(doc["env"], hp["env_kwargs"])
        problems += [f"hyperparams.env_kwargs{p}" for p in env_problems]
        hp = {**hp, "env_kwargs": env_kwargs}
    if hp_model is not None:
        try:
            hp = hp_model.model_validate({} if hp is None else hp)
        except ValidationError as exc:
            problems += [f"hyperparams.{p}" for p in format_validation_errors(exc, hp_model)]
            hp = None
    try:
        config = RunConfig.model_validate(doc)
    except ValidationError as exc:
        problems = format_validation_errors(exc, RunConfig) + problems
    if problems:
        raise ConfigError(problems)
    return config.model_copy(update={"hyperparams": hp})


def _fill_defaults(config: RunConfig) -> RunConfig:
    hp = config.hyperparams
    assert hp is not None
    problems = []
    # One number for the run's length: the top level (a Zoo entry's own is dropped).
    updates: dict[str, Any] = {"hyperparams": hp.model_copy(update={"n_timesteps": None})}
    if config.seed is None:
        updates["seed"] = random.SystemRandom().randrange(2**31 - 1)
    if config.name is None:
        updates["name"] = default_name(config.env, config.algo)
    if config.checkpoint_every is None:
        updates["checkpoint_every"] = min(250_000, max(1_000, config.n_timesteps // 10))
    if config.eval_every is None:  # evaluation costs real time: on for real Atari runs only
        updates["eval_every"] = 250_000 if config.is_atari and config.n_timesteps >= 500_000 else 0
    if config.video_every is None:
        updates["video_every"] = updates.get("eval_every", config.eval_every)
    if config.stop_at_score is not None and not updates.get("eval_every", config.eval_every):
        problems.append(
            f"stop_at_score: {config.stop_at_score:g} is judged by evaluations, and this run "
            "has none; set eval_every (e.g. 10000 for CartPole, 100000 for Atari)"
        )
    if config.is_atari:
        atari = config.atari or AtariSettings()
        if hp.frame_stack is not None:
            atari = atari.model_copy(update={"frame_stack": hp.frame_stack})
        updates["atari"] = atari
        updates["hyperparams"] = updates["hyperparams"].model_copy(update={"frame_stack": None})
    elif config.atari is not None:
        problems.append(f"atari: settings given but {config.env!r} is not an Atari game")
    if config.backend == "native" and not config.is_atari:
        problems.append(
            f"backend: native runs Atari games only, and {config.env!r} is not one; "
            "use backend: auto or sb3"
        )
    problems += _resource_problems(config)
    every = updates.get("checkpoint_every", config.checkpoint_every)
    if every and config.n_timesteps / every > MAX_CHECKPOINTS:
        least = -(-config.n_timesteps // MAX_CHECKPOINTS)
        problems.append(
            f"checkpoint_every: {format_number(every)} makes "
            f"{format_number(config.n_timesteps // every)} checkpoints in "
            f"{format_number(config.n_timesteps)} steps; at most {MAX_CHECKPOINTS:_} checkpoints "
            f"in a run, so checkpoint_every must be in [{format_number(least)}, "
            f"{format_number(config.n_timesteps)}]"
        )
    if isinstance(hp, PPOHyperparams) and hp.batch_size > hp.n_steps * hp.n_envs:
        problems.append(
            f"hyperparams.batch_size ({hp.batch_size}) is larger than n_steps x n_envs "
            f"({hp.n_steps * hp.n_envs}), the rollout size; lower batch_size or raise n_steps"
        )
    if isinstance(hp, DQNHyperparams) and hp.batch_size > hp.buffer_size:
        problems.append(
            f"hyperparams.batch_size ({hp.batch_size}) is larger than buffer_size "
            f"({hp.buffer_size}); raise buffer_size"
        )
    if problems:
        raise ConfigError(problems)
    return config.model_copy(update=updates)


def _resource_problems(config: RunConfig) -> list[str]:
    """Resources that contradict the device: the trainer would fail later, less clearly."""
    gpu, device = config.resources.gpu, config.device
    if gpu == "none" and device.startswith("cuda"):
        return [f"resources.gpu: none hides every GPU, but device is {device}; use device: cpu"]
    if isinstance(gpu, int) and device.startswith("cuda:") and device != "cuda:0":
        return [
            f"resources.gpu: {gpu} makes that GPU the only one the run sees (as cuda:0), so "
            f"device: {device} does not exist; use device: cuda"
        ]
    return []


def _env_is_atari(env: Any) -> bool:
    return isinstance(env, str) and env in registered_env_ids() and is_atari(env)


def to_yaml(config: RunConfig) -> str:
    """The resolved config as YAML, in the field order of the schema."""
    return yaml.safe_dump(
        config.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
    )


def to_stored_yaml(config: RunConfig) -> str:
    """The run folder's ``config.yaml``: the format version first, then ``to_yaml``."""
    return f"{CONFIG_VERSION_KEY}: {CONFIG_VERSION}\n" + to_yaml(config)


def read_run_config(path: Path) -> StoredConfig:
    """Read a run folder's ``config.yaml`` (bounded, never through a link) tolerantly: see
    ``read_stored_config``. ``safeio.UnsafeFileError`` (an OSError) for a link, a FIFO or a
    file over 64 KiB; ConfigError for a config that cannot run."""
    return read_stored_config(safeio.read_bytes(path, limit=MAX_CONFIG_BYTES))


#: The keys of config.yaml a listing of runs shows (``read_config_listing``).
LISTING_KEYS = frozenset({"algo", "env", "init_from"})
_ALGOS = frozenset(get_args(RunConfig.model_fields["algo"].annotation))


@dataclass(frozen=True)
class ConfigListing:
    """What a listing of runs shows of a run's config.yaml: its game and algorithm, each None
    when missing or not a value a config may hold."""

    env: str | None
    algo: str | None
    parent: str | None = None  # the run its init_from names (lineage), None without one


def read_config_listing(path: Path) -> ConfigListing:
    """The game, algorithm and parent run (``init_from``) of a run folder's ``config.yaml``,
    for a listing of thousands of runs: only those top-level keys are read
    (``yamlsafe.top_level_text``, with the same bounds and refusals as ``read_run_config``),
    each checked as the schema checks it (a registered environment, a known algorithm, a run
    id); the rest of the file is neither built nor
    validated, so a run whose config is wrong elsewhere still lists its game (its own page
    reads the whole file and names the problem). ``safeio.UnsafeFileError`` (an OSError) for a
    link, a FIFO or a file over 64 KiB; ConfigError for a file that is not a YAML mapping.

    A migration (``MIGRATIONS``) that renames or re-means ``env`` or ``algo`` must be
    reflected here."""
    data = safeio.read_bytes(path, limit=MAX_CONFIG_BYTES)
    try:
        found = top_level_text(data, LISTING_KEYS)
    except ConfigSyntaxError as exc:
        raise ConfigError([str(exc)]) from None
    env, algo, init_from = found.get("env"), found.get("algo"), found.get("init_from")
    parent = init_from if init_from and INIT_FROM_PATTERN.match(init_from) else None
    return ConfigListing(
        env=env if env is not None and env in registered_env_ids() else None,
        algo=algo if algo in _ALGOS else None,
        parent=parent.split("/")[0] if parent else None,
    )


def read_stored_config(data: bytes) -> StoredConfig:
    """Read a run folder's ``config.yaml``: the one reader of a stored config.

    Tolerant where a queue file is strict: a key this version does not know (at the top level
    or in any section the schema types: hyperparams, policy_kwargs, optimizer_kwargs, atari,
    resources) was written by an older or a newer version; it is dropped from the config and
    returned in ``ignored`` with a warning, and the file keeps it. A version newer than this
    code is read as the current one, with a warning; an older one is migrated first. A value
    that is wrong for a key this version does know is still a ConfigError: the run could not
    be trained as it says.
    """
    try:
        doc = load_yaml_mapping(data)
    except ConfigSyntaxError as exc:
        raise ConfigError([str(exc)]) from None
    doc, version = _version_of(doc)
    warnings = []
    if version > CONFIG_VERSION:
        warnings.append(
            f"config.yaml is format version {version}, newer than this Retro ML knows "
            f"({CONFIG_VERSION}): it is read as version {CONFIG_VERSION}, and settings this "
            "version does not know are ignored"
        )
    doc = _migrate(doc, version)
    doc, ignored = _split_unknown(doc, RunConfig)
    if ignored:
        shown = ", ".join(f"{key}: {short_repr(value)}" for key, value in ignored.items())
        warnings.append(
            f"config.yaml has settings this version of Retro ML does not know (written by an "
            f"older or a newer version); they are ignored and left in the file: {shown}"
        )
    return StoredConfig(_validate(doc), version, ignored, tuple(warnings))


def load_resolved(text: str) -> RunConfig:
    """The config of a run folder's ``config.yaml`` text (``read_stored_config``, tolerant)."""
    return read_stored_config(text.encode("utf-8")).config


def _version_of(doc: dict[str, Any], missing: int = 1) -> tuple[dict[str, Any], int]:
    """The document without its version key, and the version (``missing`` when it has none:
    1 for a run folder, which was made before the key existed)."""
    doc = dict(doc)
    if CONFIG_VERSION_KEY not in doc:
        return doc, missing
    version = doc.pop(CONFIG_VERSION_KEY)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(
            [
                f"{CONFIG_VERSION_KEY}: must be a whole number from 1 (got "
                f"{short_repr(version)}); leave it out for version 1"
            ]
        )
    return doc, version


def _migrate(doc: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring a version-``version`` document up to ``CONFIG_VERSION`` through ``MIGRATIONS``."""
    for step in range(version, CONFIG_VERSION):
        migrate = MIGRATIONS.get(step)
        if migrate is not None:
            doc = migrate(dict(doc))
    return doc


def _split_unknown(doc: Any, model: type[BaseModel], prefix: str = "") -> tuple[Any, dict]:
    """``doc`` without the keys ``model`` does not know, at every level the schema types, and
    those keys (dotted path -> value). Anything that is not a mapping is left to validation."""
    if not isinstance(doc, dict):
        return doc, {}
    kept: dict[str, Any] = {}
    ignored: dict[str, Any] = {}
    for key, value in doc.items():
        field_info = model.model_fields.get(key) if isinstance(key, str) else None
        if field_info is None:
            ignored[f"{prefix}{key}"] = value
            continue
        sub = unwrap_annotation(field_info.annotation)[0]
        if model is RunConfig and key == "hyperparams":  # the chosen algorithm's schema
            sub = HYPERPARAMS_BY_ALGO.get(algo_of(doc))
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            value, below = _split_unknown(value, sub, f"{prefix}{key}.")
            ignored.update(below)
        kept[key] = value
    return kept, ignored
