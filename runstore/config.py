"""The run config: one typed model used by the runner (validation), the trainer
(construction) and the dashboard (the new-run form).

A user writes a short YAML file; ``resolve`` turns it into the complete config written to the
run folder as ``config.yaml``, with every default filled in, so a run can be reproduced from
its folder alone and the trainer never guesses.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import random
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from runstore.envs import atari_env_ids, is_atari, registered_env_ids, unknown_env_message
from runstore.hyperparams import (
    HYPERPARAMS_BY_ALGO,
    MAX_STEPS,
    ZOO_ATARI,
    DQNHyperparams,
    Float,
    Int,
    PPOHyperparams,
    StrictModel,
    check_env_kwarg_value,
    env_kwargs_problems,
    format_number,
    short_repr,
    unwrap_annotation,
)
from runstore.paths import RUN_ID_REGEX
from runstore.yamlsafe import ConfigSyntaxError, load_yaml_mapping

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")
INIT_FROM_PATTERN = re.compile(f"^{RUN_ID_REGEX}(/(best|step-[0-9]{{12}}))?$")
_DURATION = re.compile(r"^\s*(?P<n>\d+(\.\d+)?)\s*(?P<unit>s|sec|m|min|h|hr|hours?|d|days?)?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
MAX_TIME_BUDGET = 366 * 86400  # a year: longer is a typo (or .inf), not a plan
MAX_CHECKPOINTS = 1_000_000  # n_timesteps / checkpoint_every: each one stops training to save
# Linux's usual NR_CPUS; not this machine's count: a config may be checked on one machine and
# trained on another (the runner checks the cores it really has when the run starts).
MAX_CPU_ID = 4095


class ConfigError(ValueError):
    """A config that cannot run, with every problem in plain words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))

    def __str__(self) -> str:
        return "\n".join(f"- {p}" for p in self.problems)


class AtariSettings(StrictModel):
    """The DeepMind preprocessing, written out so the resolved config says exactly what ran.

    Defaults follow SB3's AtariWrapper and Machado et al. (2018): sticky actions with p=0.25
    (ALE v5's default), frame skip 4 with max-pooling over the last two frames, 30 no-op
    resets, fire on reset, 84x84 grayscale, 4 stacked frames. Episodic life and reward clipping
    apply to the training env only; episode returns are reported in real game points.
    Max-pooling and grayscale are always on (SB3's MaxAndSkipEnv and WarpFrame).
    """

    frame_skip: Int = Field(4, ge=1, le=16)
    noop_max: Int = Field(30, ge=0, le=1000)
    fire_reset: bool = True
    terminal_on_life_loss: bool = True
    clip_reward: bool = True
    screen_size: Int = Field(84, ge=16, le=512)
    frame_stack: Int = Field(4, ge=1, le=32)
    repeat_action_probability: Float = Field(0.25, ge=0, le=1)
    full_action_space: bool = False


class AtariEnvKwargs(StrictModel):
    """``hyperparams.env_kwargs`` for an Atari env: the allow-list of ale-py's AtariEnv keywords
    (plus gymnasium.make's ``max_episode_steps``) that make sense beside the ``atari`` block.

    Left out: ``obs_type`` (the preprocessing needs pixels), ``render_mode`` (the trainer sets
    it), ``continuous`` and ``sound_obs`` (the policies take neither). ``game`` may only repeat
    the env's own game: the env id chooses the ROM, and run names and the dashboard follow it.
    """

    game: str | None = Field(None, description="the env's own ROM name (ALE/Pong-v5: pong)")
    mode: Int | None = Field(None, ge=0, le=255, description="game mode (ALE lists them per game)")
    difficulty: Int | None = Field(None, ge=0, le=255)
    frameskip: Int | None = Field(None, ge=1, le=16)
    repeat_action_probability: Float | None = Field(None, ge=0, le=1)
    full_action_space: bool | None = None
    max_num_frames_per_episode: Int | None = Field(None, ge=1, le=10_000_000)
    max_episode_steps: Int | None = Field(None, ge=1, le=10_000_000)

    @field_validator("game", mode="before")
    @classmethod
    def _known_rom(cls, value: Any) -> Any:
        """A ROM name reaches ale-py's file lookup: only names ale-py ships get there."""
        if value is None or (isinstance(value, str) and value in _atari_games()):
            return value
        close = difflib.get_close_matches(str(value), list(_atari_games()), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"{short_repr(value)} is not an ALE ROM name{hint}; the env chooses the ROM, so "
            "leave env_kwargs.game out"
        )


NON_ATARI_EXTRA_KWARGS = frozenset({"max_episode_steps"})  # gymnasium.make's own keyword
RESERVED_ENV_KWARGS = frozenset({"render_mode", "disable_env_checker", "id", "self"})


NICE_BY_PRIORITY = {"low": 10, "normal": 0, "high": -5}


class Resources(StrictModel):
    """What a run may use, applied by the runner when it starts the trainer.

    ``cpus``: a list of core numbers (affinity) or a count (the runner picks that many of its
    own cores); torch/OpenMP threads follow. ``priority``: low/normal/high = nice 10/0/-5.
    ``gpu``: ``auto`` (the GPU with the most free memory), an index (pinned through
    CUDA_VISIBLE_DEVICES) or ``none`` (no GPU is visible: the run trains on the CPU).
    """

    cpus: list[int] | int | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    gpu: Literal["auto", "none"] | int = "auto"

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus(cls, value: Any) -> Any:
        """Checked here in full so an error reads as one sentence, not a union's two."""
        usage = "write a list of core numbers such as [0, 1], or a count such as 2"
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"{value} cores leaves nothing to run on; {usage}")
            if value > MAX_CPU_ID + 1:
                raise ValueError(
                    f"a count must be a whole number in [1, {format_number(MAX_CPU_ID + 1)}] "
                    f"(got {value}); {usage}"
                )
            return value
        if not isinstance(value, list):
            raise ValueError(f"{value!r} is not cores; {usage}")
        if not value:
            raise ValueError("an empty list leaves no core to run on; leave cpus out for all")
        if len(value) > MAX_CPU_ID + 1 or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_CPU_ID for c in value
        ):
            raise ValueError(
                f"{short_repr(value)} is not a list of core numbers in "
                f"[0, {format_number(MAX_CPU_ID)}]; {usage}"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"{value} names a core twice")
        return value

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if value in ("auto", "none") or (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 63
        ):
            return value
        raise ValueError(f"{value!r} is not a GPU choice: use auto, none or an index like 0")

    @property
    def nice(self) -> int:
        return NICE_BY_PRIORITY[self.priority]


class RunConfig(StrictModel):
    algo: Literal["ppo", "dqn"]
    env: str
    n_timesteps: Int = Field(gt=0, le=MAX_STEPS)
    name: str | None = None
    seed: Int | None = Field(None, ge=0, le=2**31 - 1)
    device: str = "auto"
    vec_env: Literal["auto", "dummy", "subproc"] = "auto"
    backend: Literal["auto", "native", "sb3"] = Field(
        "auto",
        description="Atari env implementation: native (ale-py's C++ vector env), sb3 (SB3's "
        "wrappers in a VecEnv) or auto (native for Atari when it can run the config)",
    )
    channels_last: Literal["auto", True, False] = Field(
        "auto",
        description="keep convolutions in channels-last memory layout (faster on the CPU); "
        "auto = on for image policies on the CPU, off on CUDA",
    )
    checkpoint_every: Int | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description=f"steps between checkpoints; at most {MAX_CHECKPOINTS:_} in a run",
    )
    keep_checkpoints: Int = Field(3, ge=1, le=1000)
    save_replay_buffer: bool = False
    time_budget: Float | None = Field(
        None,
        gt=0,
        le=MAX_TIME_BUDGET,
        description="seconds, or text like '2h' / '90m': stop gracefully when spent",
    )
    eval_every: Int | None = Field(
        None,
        ge=0,
        le=MAX_STEPS,
        description="steps between evaluations; 0 = off (default: 250,000 for "
        "Atari runs of at least 500,000 steps, else off)",
    )
    eval_episodes: Int = Field(5, ge=1, le=100, description="full episodes per evaluation")
    eval_deterministic: bool = True
    video_every: Int | None = Field(
        None,
        ge=0,
        le=MAX_STEPS,
        description="steps between recorded evaluations; 0 = no clips (default: every evaluation)",
    )
    video_length: Int = Field(3000, ge=10, le=100_000, description="most frames in one clip")
    video_overlay: bool = True
    init_from: str | None = Field(
        None, description="RUN_ID or RUN_ID/CHECKPOINT (step-NNN or best): start from its weights"
    )
    resources: Resources = Field(default_factory=Resources)
    atari: AtariSettings | None = None
    hyperparams: PPOHyperparams | DQNHyperparams | None = None

    @field_validator("init_from")
    @classmethod
    def _init_from(cls, value: str | None) -> str | None:
        if value is not None and not INIT_FROM_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a run to start from: write RUN_ID or RUN_ID/CHECKPOINT, e.g. "
                "20261124-031205-pong-ppo-3f9a/best or .../step-000000500000"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a valid run name: use 1-64 letters, digits, spaces, '_', '.' "
                "or '-', starting with a letter or digit (no '/' or '\\')"
            )
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("time_budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and (match := _DURATION.match(value.lower())):
            unit = (match["unit"] or "s").rstrip("s") or "s"
            unit = {"hour": "h", "day": "d"}.get(unit, unit)
            return float(match["n"]) * _UNIT_SECONDS.get(unit, 1)
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: str) -> str:
        if value not in registered_env_ids():
            raise ValueError(unknown_env_message(value))
        return value

    @property
    def is_atari(self) -> bool:
        return is_atari(self.env)

    @property
    def display_name(self) -> str:
        return self.name or default_name(self.env, self.algo)


def default_name(env_id: str, algo: str) -> str:
    game = env_id.split("/")[-1].split("-v")[0].split("NoFrameskip")[0]
    return f"{game}-{algo}".lower()


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
    doc = dict(doc)
    hp = doc.get("hyperparams")
    # A pasted Zoo entry carries its own n_timesteps; accept it when the top level has none.
    if isinstance(hp, dict) and "n_timesteps" in hp and "n_timesteps" not in doc:
        doc["n_timesteps"] = hp["n_timesteps"]
    unknown = _unknown_key_problems(doc)
    doc = _known_keys_only(doc)
    hp = doc.get("hyperparams")
    atari = _env_is_atari(doc.get("env"))
    if isinstance(hp, dict) or hp is None:
        algo = _algo(doc)
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
    hp_model = HYPERPARAMS_BY_ALGO.get(_algo(doc))
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
    hp_model = HYPERPARAMS_BY_ALGO.get(_algo(doc))
    if isinstance(hp, dict) and "env_kwargs" in hp and isinstance(doc.get("env"), str):
        env_problems, env_kwargs = _env_kwargs_for(doc["env"], hp["env_kwargs"])
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


def _env_kwargs_for(env: str, value: Any) -> tuple[list[str], Any]:
    """Problems (each starting ``.key: `` or ``: ``) and the checked env_kwargs for ``env``.

    Atari envs: the AtariEnvKwargs allow-list with its ranges. Other envs: the keywords their
    constructor takes (read from its signature; any name when it takes ``**kwargs`` or cannot
    be imported here), each value scalar, finite and within +-1e9.
    """
    if env not in registered_env_ids():
        return [], value  # the env itself is reported
    generic = [] if is_atari(env) and isinstance(value, dict) else env_kwargs_problems(value)
    if generic:
        return [f".{k}: {p}" if k else f": {p}" for k, p in generic], {}
    if is_atari(env):
        try:
            checked = AtariEnvKwargs.model_validate(value)
        except ValidationError as exc:
            return [_unknown_or(p, AtariEnvKwargs.model_fields) for p in _loc_errors(exc)], {}
        game = _atari_game(env)
        if checked.game is not None and checked.game != game:
            return [f".game: {_game_problem(checked.game, env, game)}"], {}
        return [], checked.model_dump(exclude_none=True)
    accepted = _env_keywords(env)
    problems = []
    for key, item in value.items():
        if key in RESERVED_ENV_KWARGS or (accepted is not None and key not in accepted):
            allowed = sorted(accepted or ()) or ["(none)"]
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(f".{key}: not a setting of {env}; {hint}it takes {', '.join(allowed)}")
        elif (problem := check_env_kwarg_value(item)) is not None:
            problems.append(f".{key}: {problem}")
    return problems, value if not problems else {}


def _loc_errors(exc: ValidationError) -> list[tuple[str, str, str]]:
    """(dotted loc, pydantic error type, formatted message) for each error."""
    return [
        (".".join(str(p) for p in err["loc"]), err["type"], text.split(": ", 1)[-1])
        for err, text in zip(exc.errors(), format_validation_errors(exc), strict=True)
    ]


def _unknown_or(error: tuple[str, str, str], known: Any) -> str:
    loc, kind, message = error
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc, list(known), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f".{loc}: unknown key; {hint}use one of {', '.join(known)}"
    return f".{loc}: {message}"


@functools.cache
def _atari_games() -> dict[str, str]:
    """ROM name -> its ALE/<Game>-v5 env id, for every game ale-py ships."""
    import gymnasium

    games = {}
    for env_id in sorted(atari_env_ids()):
        game = gymnasium.registry[env_id].kwargs.get("game")
        if isinstance(game, str) and (env_id.startswith("ALE/") and env_id.endswith("-v5")):
            games[game] = env_id
    return games


def _atari_game(env: str) -> str | None:
    import gymnasium

    game = gymnasium.registry[env].kwargs.get("game")
    return game if isinstance(game, str) else None


def _game_problem(given: str, env: str, own: str | None) -> str:
    games = _atari_games()
    if given in games:
        return (
            f"{given!r} is another game than {env}'s {own!r}; the env chooses the ROM: "
            f"write env: {games[given]} and leave env_kwargs.game out"
        )
    close = difflib.get_close_matches(given, list(games), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{short_repr(given)} is not an ALE ROM name{hint}; the env chooses the ROM, "
        f"so leave env_kwargs.game out (or write {own!r})"
    )


@functools.cache
def _env_keywords(env: str) -> frozenset[str] | None:
    """The keywords ``gymnasium.make(env, ...)`` passes on to the env's constructor, or None
    when any name may do (``**kwargs``) or the entry point cannot be imported here."""
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    entry = gymnasium.registry[env].entry_point
    try:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        params = inspect.signature(creator).parameters.values()
    except Exception:  # an optional dependency (box2d, mujoco) missing: the trainer reports it
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    names = {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    return frozenset(names - RESERVED_ENV_KWARGS) | NON_ATARI_EXTRA_KWARGS


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


def _algo(doc: dict[str, Any]) -> str | None:
    """The algo key when it is text: a list or mapping there is reported by validation, not
    used as a dictionary key (which raised TypeError)."""
    algo = doc.get("algo")
    return algo if isinstance(algo, str) else None


def _env_is_atari(env: Any) -> bool:
    return isinstance(env, str) and env in registered_env_ids() and is_atari(env)


def _unknown_key_problems(doc: dict[str, Any]) -> list[str]:
    """Name unknown keys with the closest valid one, which pydantic alone does not do."""
    problems = []
    algo = _algo(doc)
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


def to_yaml(config: RunConfig) -> str:
    """The resolved config as YAML, in the field order of the schema."""
    return yaml.safe_dump(
        config.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
    )


def load_resolved(text: str) -> RunConfig:
    """Read a run folder's ``config.yaml`` (already resolved; validated again all the same)."""
    return _validate(load_yaml_mapping(text.encode("utf-8")))
