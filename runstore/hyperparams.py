"""Hyperparameter schemas for PPO and DQN, with SB3's own keyword names.

The runner and the dashboard validate configs without importing Stable-Baselines3 (they must
stay light), so the names and bounds live here; ``tests/test_hyperparams.py`` holds this list
against SB3's signatures so it cannot drift. Bounds reject values that are certainly mistakes
(a zero replay buffer, millions of environments), not values that are merely unusual.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_NUMBER = re.compile(r"^[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_LINEAR = re.compile(r"^lin_(?P<value>[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$")


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


Int = Annotated[int, BeforeValidator(_parse_number)]
Float = Annotated[float, BeforeValidator(_parse_number)]
Schedule = Annotated[float | str, BeforeValidator(_parse_schedule)]

ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu", "sigmoid")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PolicyKwargs(StrictModel):
    """``policy_kwargs`` as data. Class names map through a fixed list, never an import."""

    net_arch: list[Annotated[int, Field(ge=1, le=65536)]] | dict[str, list[int]] | None = None
    activation_fn: str | None = None
    ortho_init: bool | None = None
    normalize_images: bool | None = None
    share_features_extractor: bool | None = None
    log_std_init: Float | None = None
    optimizer_class: str | None = None
    optimizer_kwargs: dict[str, float | int | bool] | None = None

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
        # The Zoo and older SB3 wrote [dict(pi=[64], vf=[64])]; SB3 2.x wants the dict itself.
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
            return value[0]
        return value


def _policy_kwargs(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "policy_kwargs must be a mapping such as {net_arch: [64, 64], activation_fn: relu}; "
            "strings like 'dict(...)' are never evaluated"
        )
    return value


class CommonHyperparams(StrictModel):
    """Keys the RL Zoo accepts for every algorithm (not passed to the SB3 constructor)."""

    policy: Literal["CnnPolicy", "MlpPolicy", "MultiInputPolicy"] = "MlpPolicy"
    n_envs: Int = Field(1, ge=1, le=256)
    frame_stack: Int | None = Field(None, ge=1, le=32)
    normalize: bool = False
    env_wrapper: str | list[str] | None = None
    env_kwargs: dict[str, int | float | bool | str] = Field(default_factory=dict)
    n_timesteps: Float | None = Field(None, gt=0, le=1e11)
    learning_rate: Schedule = 3e-4
    gamma: Float = Field(0.99, gt=0, le=1)
    max_grad_norm: Float = Field(10.0, gt=0)
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

    @field_validator("learning_rate")
    @classmethod
    def _positive_lr(cls, value: float | str) -> float | str:
        if linear_schedule_start(value) <= 0:
            raise ValueError("must be greater than 0")
        return value


class PPOHyperparams(CommonHyperparams):
    n_steps: Int = Field(2048, ge=1, le=1_000_000)
    batch_size: Int = Field(64, ge=1, le=1_000_000)
    n_epochs: Int = Field(10, ge=1, le=1000)
    gae_lambda: Float = Field(0.95, ge=0, le=1)
    clip_range: Schedule = 0.2
    clip_range_vf: Schedule | None = None
    normalize_advantage: bool = True
    ent_coef: Float = Field(0.0, ge=0, le=10)
    vf_coef: Float = Field(0.5, ge=0, le=100)
    max_grad_norm: Float = Field(0.5, gt=0)
    use_sde: bool = False
    sde_sample_freq: Int = Field(-1, ge=-1)
    target_kl: Float | None = Field(None, gt=0)


class DQNHyperparams(CommonHyperparams):
    learning_rate: Schedule = 1e-4
    buffer_size: Int = Field(1_000_000, ge=1, le=10_000_000)
    learning_starts: Int = Field(100, ge=0)
    batch_size: Int = Field(32, ge=1, le=100_000)
    tau: Float = Field(1.0, gt=0, le=1)
    train_freq: Int | tuple[Int, Literal["step", "episode"]] = 4
    gradient_steps: Int = Field(1, ge=-1, le=10_000)
    target_update_interval: Int = Field(10_000, ge=1)
    exploration_fraction: Float = Field(0.1, ge=0, le=1)
    exploration_initial_eps: Float = Field(1.0, ge=0, le=1)
    exploration_final_eps: Float = Field(0.05, ge=0, le=1)
    optimize_memory_usage: bool = False

    @field_validator("gradient_steps")
    @classmethod
    def _nonzero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (as many as env steps) or at least 1")
        return value


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
