"""The run config's schema: the typed models a config file is validated into.

``runstore.config`` turns a file into a complete ``RunConfig``; the error messages live in
``runstore.config_messages`` and the env keyword checks in ``runstore.env_kwargs``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from runstore.checkpoints import CHECKPOINT_REF_REGEX
from runstore.envs import is_atari, registered_env_ids, unknown_env_message
from runstore.hyperparams import (
    MAX_STEPS,
    DQNHyperparams,
    Float,
    Int,
    PPOHyperparams,
    StrictModel,
    format_number,
    short_repr,
)
from runstore.paths import RUN_ID_REGEX

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")
INIT_FROM_PATTERN = re.compile(f"^{RUN_ID_REGEX}(/{CHECKPOINT_REF_REGEX})?$")
SWEEP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_DURATION = re.compile(r"^\s*(?P<n>\d+(\.\d+)?)\s*(?P<unit>s|sec|m|min|h|hr|hours?|d|days?)?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
MAX_TIME_BUDGET = 366 * 86400  # a year: longer is a typo (or .inf), not a plan
MAX_CHECKPOINTS = 1_000_000  # n_timesteps / checkpoint_every: each one stops training to save
# Linux's usual NR_CPUS; not this machine's count: a config may be checked on one machine and
# trained on another (the runner checks the cores it really has when the run starts).
MAX_CPU_ID = 4095
#: Custom Ray resources (``resources.ray``): names as ``ray start --resources`` takes them,
#: the ones Ray itself defines refused (they come from the run's own cpus and device).
RAY_RESOURCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
RAY_RESERVED = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
MAX_RAY_RESOURCES = 16
MAX_RAY_AMOUNT = 1e6
MAX_SCORE = 1e9  # beyond any Atari game's score; a larger target is a typo


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


NICE_BY_PRIORITY = {"low": 10, "normal": 0, "high": -5}
#: Torch intra-op threads of a trainer (default: one per core of its affinity). The runner
#: sets it when runs share the cores (runner/resources.py); a user may set it for a busy machine.
TORCH_THREADS_ENV = "RETRO_ML_TORCH_THREADS"


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
    #: Custom resources a Ray cluster node must offer for the run, e.g. ``{big_gpu: 1}``
    #: (``ray start --resources``); only with a Ray address (docs/cluster.md).
    ray: dict[str, float] = Field(default_factory=dict)

    @field_validator("ray", mode="before")
    @classmethod
    def _ray(cls, value: Any) -> Any:
        usage = "write a mapping of resource names to amounts, such as {big_gpu: 1}"
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"{short_repr(value)} is not a mapping; {usage}")
        if len(value) > MAX_RAY_RESOURCES:
            raise ValueError(f"{len(value)} resources; at most {MAX_RAY_RESOURCES}")
        for name, amount in value.items():
            if not isinstance(name, str) or not RAY_RESOURCE_NAME.fullmatch(name):
                raise ValueError(
                    f"{short_repr(name)} is not a resource name (letters, digits, _ . - and "
                    f"at most 64 characters); {usage}"
                )
            if name in RAY_RESERVED:
                raise ValueError(
                    f"{name} is set by the run itself (cpus from resources.cpus or n_envs, a GPU "
                    "from device: cuda); name only custom resources here"
                )
            ok = isinstance(amount, int | float) and not isinstance(amount, bool)
            if not ok or not 0 < amount <= MAX_RAY_AMOUNT:  # NaN fails too
                raise ValueError(
                    f"{name}: {short_repr(amount)} is not an amount in (0, {MAX_RAY_AMOUNT:g}]"
                )
        return {name: float(amount) for name, amount in value.items()}

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


#: Optional text fields that must match a pattern: field -> (pattern, the problem with
#: ``value``).
_PATTERNED: dict[str, tuple[re.Pattern[str], str]] = {
    "init_from": (
        INIT_FROM_PATTERN,
        "{value!r} is not a run to start from: write RUN_ID or RUN_ID/CHECKPOINT, e.g. "
        "20261124-031205-pong-ppo-3f9a/best or .../step-000000500000",
    ),
    "name": (
        NAME_PATTERN,
        "{value!r} is not a valid run name: use 1-64 letters, digits, spaces, '_', '.' "
        "or '-', starting with a letter or digit (no '/' or '\\')",
    ),
}


class SweepRef(StrictModel):
    """Which sweep trial a run belongs to (written by the runner when it queues the trial);
    ``seed_index`` tells a trial's runs apart when it trains on several seeds."""

    id: str = Field(pattern=SWEEP_ID_PATTERN.pattern)
    trial: Int = Field(ge=0, le=10_000_000)
    seed_index: Int = Field(0, ge=0, le=1000)


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
    stop_at_score: Float | None = Field(
        None,
        ge=-MAX_SCORE,
        le=MAX_SCORE,
        description="stop when an evaluation's mean return reaches this (SB3's "
        "StopTrainingOnRewardThreshold): the run completes, saying at which step and after how "
        "long; needs evaluations (eval_every)",
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
        description="steps between recorded evaluations, and the run's last one always; "
        "0 = no clips (default: every evaluation)",
    )
    video_length: Int = Field(3000, ge=10, le=100_000, description="most frames in one clip")
    video_overlay: bool = True
    init_from: str | None = Field(
        None, description="RUN_ID or RUN_ID/CHECKPOINT (step-NNN or best): start from its weights"
    )
    resources: Resources = Field(default_factory=Resources)
    atari: AtariSettings | None = None
    hyperparams: PPOHyperparams | DQNHyperparams | None = None
    sweep: SweepRef | None = None

    @field_validator("init_from", "name")
    @classmethod
    def _patterned(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, problem = _PATTERNED[info.field_name]
        if value is not None and not pattern.match(value):
            raise ValueError(problem.format(value=value))
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:  # also runstore.settings' rule for default_device
        if not _DEVICE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("time_budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

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


def parse_duration(value: Any) -> Any:
    """Text like '2h', '90m' or '45 s' as seconds; anything else as given, for the number
    check to judge (a time budget and a sweep's timeout are written the same way)."""
    if isinstance(value, str) and (match := _DURATION.match(value.lower())):
        unit = (match["unit"] or "s").rstrip("s") or "s"
        unit = {"hour": "h", "day": "d"}.get(unit, unit)
        return float(match["n"]) * _UNIT_SECONDS.get(unit, 1)
    return value


def default_name(env_id: str, algo: str) -> str:
    game = env_id.split("/")[-1].split("-v")[0].split("NoFrameskip")[0]
    return f"{game}-{algo}".lower()


def algo_of(doc: dict[str, Any]) -> str | None:
    """The algo key when it is text: a list or mapping there is reported by validation, not
    used as a dictionary key (which raised TypeError)."""
    algo = doc.get("algo")
    return algo if isinstance(algo, str) else None
