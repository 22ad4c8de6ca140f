"""Hyperparameter schemas for PPO and DQN, with SB3's own keyword names.

The runner and the dashboard validate configs without importing Stable-Baselines3 (they must
stay light), so the names and bounds live here; ``tests/test_hyperparams.py`` holds this list
against SB3's signatures so it cannot drift. Bounds reject values that are certainly mistakes
(a zero replay buffer, millions of environments), not values that are merely unusual.
"""

from __future__ import annotations

import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

_NUMBER = re.compile(r"^[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_LINEAR = re.compile(r"^lin_(?P<value>[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$")

MAX_STEPS = 100_000_000_000
"""The most environment steps a run may ask for; also the bound of every step count (checkpoint,
evaluation and target-update intervals, warm-up, gSDE resampling): one longer than the longest
run can never happen, so a larger number is a typo."""

#: The largest float32: above it a learning rate or a gradient norm overflows torch's float32
#: parameters before the first step. Below it a rate that diverges is a run-time failure with
#: a diagnosis (the NaN check), which is what a user who tries lr=10 should see.
FLOAT32_MAX = 3.4028234663852886e38


def _parse_number(value: Any) -> Any:
    """Accept ``1e6`` written unquoted: YAML 1.1 reads it as text, the Zoo writes it anyway."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value.replace("_", ""))
        return int(number) if number.is_integer() and "." not in value else number
    return value


def _parse_schedule(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if _LINEAR.match(text):
            return text
        parsed = _parse_number(text)
        if parsed is not text:
            return float(parsed)
        raise ValueError(
            f"{value!r} is neither a number nor a linear schedule; write e.g. 2.5e-4 or lin_2.5e-4"
        )
    return value


def linear_schedule_start(value: float | str) -> float:
    """The starting value of a ``lin_<x>`` schedule or of a constant."""
    if isinstance(value, str):
        match = _LINEAR.match(value)
        if match is None:
            raise ValueError(f"not a schedule: {value!r}")
        return float(match["value"])
    return float(value)


def format_number(value: float) -> str:
    """A bound as the user would write it in YAML: ``100_000`` (YAML 1.1 reads the underscores
    as an int, and ``1,000`` would be text), small floats as ``%g``."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):_}"
    return f"{value:g}"


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Range:
    """An interval a number must lie in, written in errors as ``[lo, hi]`` or ``(lo, hi]``.

    Built from a field's ``Field(ge=..., le=...)`` (so the bounds are stated once, where the
    field is declared, and the form and JSON schema see them too), or given directly as
    ``Annotated`` metadata where pydantic cannot apply ``ge``/``le`` (a schedule: number | text).
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    @classmethod
    def of(cls, metadata: list[Any]) -> Range | None:
        found: dict[str, Any] = {}
        for item in metadata:
            if isinstance(item, Range):
                return item
            if isinstance(item, annotated_types.Ge):
                found.update(lo=item.ge, lo_open=False)
            elif isinstance(item, annotated_types.Gt):
                found.update(lo=item.gt, lo_open=True)
            elif isinstance(item, annotated_types.Le):
                found.update(hi=item.le, hi_open=False)
            elif isinstance(item, annotated_types.Lt):
                found.update(hi=item.lt, hi_open=True)
        return cls(**found) if found else None

    @property
    def bounded(self) -> bool:
        return self.lo is not None and self.hi is not None

    def __contains__(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else format_number(self.lo)
        hi = "inf" if self.hi is None else format_number(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


@dataclass(frozen=True)
class NumberSpec:
    """What a numeric field accepts: its kind, its range, whether it may be left null."""

    kind: Literal["int", "float", "schedule"]
    range: Range
    optional: bool

    def expected(self) -> str:
        if self.kind == "schedule":
            return f"a number in {self.range} or lin_<start> with the start in {self.range}"
        return f"{'a whole number' if self.kind == 'int' else 'a number'} in {self.range}"

    def problem(self, value: Any) -> str:
        return f"must be {self.expected()} (got {short_repr(value)})"

    def check(self, value: Any) -> Any:
        """The value parsed (``1e6`` text to a number), or ValueError naming the range."""
        if value is None and self.optional:
            return None
        if self.kind == "schedule":
            try:
                parsed = _parse_schedule(value)
            except ValueError:
                raise ValueError(self.problem(value)) from None
            if isinstance(parsed, str):
                if not _finite_in(linear_schedule_start(parsed), self.range):
                    raise ValueError(self.problem(value))
                return parsed
        else:
            parsed = _parse_number(value)
        if isinstance(parsed, bool) or not isinstance(parsed, int | float):
            raise ValueError(self.problem(value))
        if not _finite_in(parsed, self.range):
            raise ValueError(self.problem(value))
        if self.kind == "int" and isinstance(parsed, float):
            if not parsed.is_integer():
                raise ValueError(self.problem(value))
            parsed = int(parsed)
        if self.kind == "schedule":
            parsed = float(parsed)
        return parsed


def _finite_in(x: float, bounds: Range) -> bool:
    return not (isinstance(x, float) and not math.isfinite(x)) and x in bounds


def unwrap_annotation(annotation: Any) -> tuple[Any, list[Any], bool]:
    """The annotation without ``None`` and ``Annotated``: (type, its metadata, optional)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata += extra
        elif origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(
            annotation
        ):
            optional = True
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return typing.Union[tuple(rest)], metadata, optional  # noqa: UP007
            annotation = rest[0]
        else:
            return annotation, metadata, optional


def number_spec(field: FieldInfo) -> NumberSpec | None:
    """The NumberSpec of a plain int, float or schedule field; None for any other field."""
    base, metadata, optional = unwrap_annotation(field.annotation)
    bounds = Range.of(list(field.metadata) + metadata)
    if base is int or base is float:
        kind: Literal["int", "float", "schedule"] = "int" if base is int else "float"
    elif set(typing.get_args(base)) == {float, str} and bounds is not None:
        kind = "schedule"
    else:
        return None
    return NumberSpec(kind, bounds or Range(), optional)


@functools.cache
def _spec_of(model: type[BaseModel], name: str) -> NumberSpec | None:
    return number_spec(model.model_fields[name])


Int = Annotated[int, BeforeValidator(_parse_number)]
Float = Annotated[float, BeforeValidator(_parse_number)]
Schedule = Annotated[float | str, BeforeValidator(_parse_schedule)]
LAYER_UNITS = Range(1, 65_536)
MAX_LAYERS = 64

ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu", "sigmoid")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never silently fall back to a default.

    Every int, float and schedule field is checked here, in one place, before pydantic's own
    validation: finite, of the right kind, inside the range its ``Field`` declares, with an
    error that states the range (pydantic's own says "finite number" or one bound only).
    ``allow_inf_nan=False`` also covers floats inside containers.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _number_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        spec = _spec_of(cls, info.field_name) if info.field_name else None
        return value if spec is None else spec.check(value)


OPTIMIZER_SETTINGS: dict[str, frozenset[str]] = {
    "adam": frozenset({"betas", "eps", "weight_decay", "amsgrad"}),
    "adamw": frozenset({"betas", "eps", "weight_decay", "amsgrad"}),
    "rmsprop": frozenset({"alpha", "eps", "weight_decay", "momentum", "centered"}),
    "sgd": frozenset({"momentum", "dampening", "weight_decay", "nesterov"}),
}
"""What each torch optimizer takes besides ``lr`` (SB3 passes the learning rate itself, so
``lr`` here would be a duplicate argument). Implementation switches (foreach, fused,
capturable, differentiable) and ``maximize`` are left out: none changes what is learned
except ``maximize``, which makes training climb the loss."""


class OptimizerKwargs(StrictModel):
    """``policy_kwargs.optimizer_kwargs``: an allow-list, each value typed and bounded."""

    eps: Float | None = Field(None, gt=0, le=1, description="Adam/RMSprop denominator term")
    weight_decay: Float | None = Field(None, ge=0, le=1)
    betas: list[float] | None = Field(None, description="Adam's two decay rates, each in [0, 1)")
    alpha: Float | None = Field(None, ge=0, le=1, description="RMSprop smoothing constant")
    momentum: Float | None = Field(None, ge=0, le=1)
    dampening: Float | None = Field(None, ge=0, le=1)
    centered: bool | None = None
    amsgrad: bool | None = None
    nesterov: bool | None = None

    @field_validator("betas", mode="before")
    @classmethod
    def _betas(cls, value: Any) -> Any:
        beta = NumberSpec("float", Range(0, 1, hi_open=True), optional=False)
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError(f"must be two numbers in [0, 1) such as [0.9, 0.999] (got {value!r})")
        try:
            return [beta.check(b) for b in value]
        except ValueError:
            raise ValueError(
                f"must be two numbers in [0, 1) such as [0.9, 0.999] (got {short_repr(value)})"
            ) from None


def _layers(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_LAYERS:
        raise ValueError(
            f"{where}must be a list of at most {MAX_LAYERS} layer sizes such as [64, 64] "
            f"(got {short_repr(value)})"
        )
    for units in value:
        if isinstance(units, bool) or not isinstance(units, int) or units not in LAYER_UNITS:
            raise ValueError(
                f"{where}layer sizes must be whole numbers in {LAYER_UNITS} "
                f"(got {short_repr(units)})"
            )
    return value


NET_ARCH_KEYS = ("pi", "vf", "qf")


class PolicyKwargs(StrictModel):
    """``policy_kwargs`` as data. Class names map through a fixed list, never an import."""

    net_arch: list[int] | dict[str, list[int]] | None = Field(
        None, description="hidden layer sizes, [64, 64] or {pi: [64], vf: [64]}; 1-65,536 units"
    )
    activation_fn: str | None = None
    ortho_init: bool | None = None
    normalize_images: bool | None = None
    share_features_extractor: bool | None = None
    log_std_init: Float | None = Field(None, ge=-20, le=20)
    optimizer_class: str | None = None
    optimizer_kwargs: OptimizerKwargs | None = None

    @field_validator("activation_fn", "optimizer_class", mode="before")
    @classmethod
    def _short_name(cls, value: Any, info: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a name such as 'relu'")
        short = value.rsplit(".", 1)[-1].lower()
        if short == "leakyrelu":
            short = "leaky_relu"
        allowed = ACTIVATIONS if info.field_name == "activation_fn" else OPTIMIZERS
        if short not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return short

    @field_validator("net_arch", mode="before")
    @classmethod
    def _net_arch(cls, value: Any) -> Any:
        """Both forms are checked the same way (a dict once took any size, even -3)."""
        # The Zoo and older SB3 wrote [dict(pi=[64], vf=[64])]; SB3 2.x wants the dict itself.
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
            value = value[0]
        if value is None:
            return None
        if isinstance(value, dict):
            for key, layers in value.items():
                if key not in NET_ARCH_KEYS:
                    raise ValueError(
                        f"{key!r} is not a network: use pi (policy), vf (value) or qf (Q)"
                    )
                _layers(layers, f"{key}: ")
            return value
        return _layers(value, "")

    @model_validator(mode="after")
    def _optimizer_takes_its_kwargs(self) -> PolicyKwargs:
        """torch raises TypeError at construction for a setting its optimizer lacks."""
        if self.optimizer_kwargs is None:
            return self
        name = self.optimizer_class or "adam"  # SB3's default for PPO and DQN policies
        given = set(self.optimizer_kwargs.model_dump(exclude_none=True))
        extra = sorted(given - OPTIMIZER_SETTINGS[name])
        if extra:
            raise ValueError(
                f"optimizer_kwargs.{extra[0]} is not a setting of the {name} optimizer "
                f"(optimizer_class); it takes {', '.join(sorted(OPTIMIZER_SETTINGS[name]))}"
            )
        return self


def _policy_kwargs(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "policy_kwargs must be a mapping such as {net_arch: [64, 64], activation_fn: relu}; "
            "strings like 'dict(...)' are never evaluated"
        )
    return value


ENV_KWARG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ENV_KWARG_TEXT = re.compile(r"^[A-Za-z0-9_.:-]{0,64}$")
ENV_KWARG_NUMBER = Range(-1e9, 1e9)
MAX_ENV_KWARGS = 32


def check_env_kwarg_value(value: Any) -> str | None:
    """The problem with one ``env_kwargs`` value whatever the env, or None.

    Scalars only; numbers finite and within +-1e9; text short, without '/' or '..', since no
    env setting we pass is a path (``game: ../../etc/passwd`` once reached ale-py).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if _finite_in(value, ENV_KWARG_NUMBER):
            return None
        return f"must be a number in {ENV_KWARG_NUMBER} (got {short_repr(value)})"
    if isinstance(value, str):
        if ENV_KWARG_TEXT.match(value) and ".." not in value:
            return None
        return (
            "text must be at most 64 letters, digits, '_', '.', ':' or '-', no '/' or '..' "
            f"(got {short_repr(value)})"
        )
    return f"must be a number, true/false or a short name (got {short_repr(value)})"


def env_kwargs_problems(value: Any) -> list[tuple[str, str]]:
    """(key, problem) pairs for the env-independent rules of ``env_kwargs``."""
    if not isinstance(value, dict):
        return [("", f"must be a mapping such as {{max_episode_steps: 500}} (got {value!r})")]
    if len(value) > MAX_ENV_KWARGS:
        return [("", f"at most {MAX_ENV_KWARGS} settings (got {len(value)})")]
    problems = []
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_KWARG_KEY.match(key):
            problems.append(("", f"{short_repr(key)} is not a setting name"))
        elif (problem := check_env_kwarg_value(item)) is not None:
            problems.append((key, problem))
    return problems


class CommonHyperparams(StrictModel):
    """Keys the RL Zoo accepts for every algorithm (not passed to the SB3 constructor).

    Ranges: what an experienced SB3 user could mean, not what is usual; anything outside is a
    typo or a value that cannot train (nan/inf, a negative clip range, a zero learning rate).
    """

    policy: Literal["CnnPolicy", "MlpPolicy", "MultiInputPolicy"] = "MlpPolicy"
    n_envs: Int = Field(1, ge=1, le=256)
    frame_stack: Int | None = Field(None, ge=1, le=32)
    normalize: bool = False
    env_wrapper: str | list[str] | None = None
    env_kwargs: dict[str, int | float | bool | str] = Field(
        default_factory=dict,
        description="keyword arguments for gymnasium.make; an allow-list per env family",
    )
    n_timesteps: Float | None = Field(None, gt=0, le=MAX_STEPS)
    learning_rate: Annotated[Schedule, Range(0, FLOAT32_MAX, lo_open=True)] = 3e-4
    gamma: Float = Field(0.99, ge=0, le=1)
    max_grad_norm: Float = Field(10.0, gt=0, le=FLOAT32_MAX, description="1e6 already never clips")
    stats_window_size: Int = Field(100, ge=1, le=100_000)
    policy_kwargs: Annotated[PolicyKwargs, BeforeValidator(_policy_kwargs)] = Field(
        default_factory=PolicyKwargs
    )

    @field_validator("env_wrapper")
    @classmethod
    def _only_atari_wrapper(cls, value: str | list[str] | None) -> str | None:
        # The Zoo writes it as a string or as a one-item list.
        names = [value] if isinstance(value, str) else list(value or [])
        if all(name.rsplit(".", 1)[-1] == "AtariWrapper" for name in names):
            return ATARI_WRAPPER if names else None
        raise ValueError(
            f"{value!r} cannot be used: wrappers are not imported by name from a config; "
            "Atari envs get the AtariWrapper preprocessing automatically (see the 'atari' block)"
        )

    @field_validator("env_kwargs", mode="before")
    @classmethod
    def _env_kwargs(cls, value: Any) -> Any:
        """The env-independent rules; runstore.config adds each env family's allow-list."""
        if value is None:
            return {}
        problems = env_kwargs_problems(value)
        if problems:
            raise ValueError("; ".join(f"{k}: {p}" if k else p for k, p in problems))
        return value


class PPOHyperparams(CommonHyperparams):
    n_steps: Int = Field(2048, ge=1, le=1_000_000)
    batch_size: Int = Field(64, ge=1, le=1_000_000)
    n_epochs: Int = Field(10, ge=1, le=1000)
    gae_lambda: Float = Field(0.95, ge=0, le=1)
    clip_range: Annotated[Schedule, Range(0, 1, lo_open=True)] = 0.2
    clip_range_vf: Annotated[Schedule, Range(0, 1000, lo_open=True)] | None = Field(
        None, description="value clipping, in the units of the value (returns)"
    )
    normalize_advantage: bool = True
    ent_coef: Float = Field(0.0, ge=0, le=10)
    vf_coef: Float = Field(0.5, ge=0, le=100)
    max_grad_norm: Float = Field(0.5, gt=0, le=FLOAT32_MAX, description="1e6 already never clips")
    use_sde: bool = False
    sde_sample_freq: Int = Field(-1, ge=-1, le=MAX_STEPS)
    target_kl: Float | None = Field(None, gt=0, le=10)


class DQNHyperparams(CommonHyperparams):
    learning_rate: Annotated[Schedule, Range(0, FLOAT32_MAX, lo_open=True)] = 1e-4
    buffer_size: Int = Field(1_000_000, ge=1, le=10_000_000)
    learning_starts: Int = Field(100, ge=0, le=MAX_STEPS)
    batch_size: Int = Field(32, ge=1, le=100_000)
    tau: Float = Field(1.0, gt=0, le=1)
    train_freq: Int | tuple[Int, Literal["step", "episode"]] = 4
    gradient_steps: Int = Field(1, ge=-1, le=10_000)
    target_update_interval: Int = Field(10_000, ge=1, le=MAX_STEPS)
    exploration_fraction: Float = Field(0.1, ge=0, le=1)
    exploration_initial_eps: Float = Field(1.0, ge=0, le=1)
    exploration_final_eps: Float = Field(0.05, ge=0, le=1)
    optimize_memory_usage: bool = False

    @field_validator("gradient_steps")
    @classmethod
    def _nonzero(cls, value: int) -> int:
        if value == 0:
            raise ValueError(
                "must be a whole number in [-1, 10_000] other than 0: -1 (as many as env "
                "steps) or at least 1 (got 0)"
            )
        return value

    @field_validator("train_freq", mode="before")
    @classmethod
    def _train_freq(cls, value: Any) -> Any:
        """A count, or [count, step|episode] as the Zoo writes it; one sentence, not a union's."""
        count = NumberSpec("int", TRAIN_FREQ, optional=False)
        usage = f"write a whole number in {TRAIN_FREQ} or [4, step] / [1, episode]"
        if isinstance(value, list | tuple):
            if len(value) != 2 or value[1] not in ("step", "episode"):
                raise ValueError(f"{usage} (got {short_repr(value)})")
            try:
                return (count.check(value[0]), value[1])
            except ValueError:
                raise ValueError(f"{usage} (got {short_repr(value)})") from None
        try:
            return count.check(value)
        except ValueError:
            raise ValueError(f"{usage} (got {short_repr(value)})") from None


TRAIN_FREQ = Range(1, 1_000_000)
EXPLICITLY_CHECKED = {
    "env_kwargs": "env_kwargs_problems here, and each env family's allow-list in runstore.config",
    "train_freq": "DQNHyperparams._train_freq",
    "net_arch": "PolicyKwargs._net_arch",
    "betas": "OptimizerKwargs._betas",
    "cpus": "runstore.config_schema.Resources._cpus",
    "gpu": "runstore.config_schema.Resources._gpu",
    "ray": "runstore.config_schema.Resources._ray",
}
"""Fields holding numbers that are not a plain int/float/schedule, with where they are checked
(a test holds every other numeric field to a bounded Range)."""


HYPERPARAMS_BY_ALGO: dict[str, type[CommonHyperparams]] = {
    "ppo": PPOHyperparams,
    "dqn": DQNHyperparams,
}

# Keys of CommonHyperparams that configure the environment or the run, not the SB3 constructor.
ZOO_ONLY_KEYS = frozenset(
    {"n_envs", "frame_stack", "normalize", "env_wrapper", "env_kwargs", "n_timesteps"}
)


def sb3_kwarg_names(algo: str) -> frozenset[str]:
    """The hyperparameters handed to the SB3 constructor as keyword arguments."""
    return frozenset(HYPERPARAMS_BY_ALGO[algo].model_fields) - ZOO_ONLY_KEYS


# RL Baselines3 Zoo, hyperparams/ppo.yml and dqn.yml, the `atari:` entries.
ZOO_ATARI: dict[str, dict[str, Any]] = {
    "ppo": {
        "policy": "CnnPolicy",
        "n_envs": 8,
        "frame_stack": 4,
        "n_steps": 128,
        "n_epochs": 4,
        "batch_size": 256,
        "learning_rate": "lin_2.5e-4",
        "clip_range": "lin_0.1",
        "vf_coef": 0.5,
        "ent_coef": 0.01,
    },
    "dqn": {
        "policy": "CnnPolicy",
        "n_envs": 1,
        "frame_stack": 4,
        "buffer_size": 100_000,
        "learning_rate": 1e-4,
        "batch_size": 32,
        "learning_starts": 100_000,
        "target_update_interval": 1000,
        "train_freq": 4,
        "gradient_steps": 1,
        "exploration_fraction": 0.1,
        "exploration_final_eps": 0.01,
        "optimize_memory_usage": False,
    },
}
