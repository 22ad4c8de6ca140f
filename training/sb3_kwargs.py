"""Translate a resolved RunConfig into Stable-Baselines3 constructor arguments.

Names in the config are SB3's own; the only translations are the Zoo's ``lin_<x>`` schedules
and the class names in ``policy_kwargs``, which map through fixed tables (never an import).
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule

from runstore.config import RunConfig
from runstore.hyperparams import linear_schedule_start, sb3_kwarg_names

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN}

ACTIVATION_CLASSES = {
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
    "sigmoid": torch.nn.Sigmoid,
}
OPTIMIZER_CLASSES = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}
_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")


def schedule(value: float | str) -> float | LinearSchedule:
    """``lin_x`` decays linearly from x to 0 over the run, as in the RL Zoo."""
    if isinstance(value, str):
        return LinearSchedule(linear_schedule_start(value), 0.0, 1.0)
    return float(value)


def model_kwargs(config: RunConfig) -> dict[str, Any]:
    hp = config.hyperparams
    assert hp is not None
    kwargs: dict[str, Any] = {}
    for name in sb3_kwarg_names(config.algo) - {"policy", "policy_kwargs"}:
        value = getattr(hp, name)
        if name in _SCHEDULED and value is not None:
            value = schedule(value)
        elif name == "train_freq" and isinstance(value, tuple):
            value = (int(value[0]), value[1])
        kwargs[name] = value
    kwargs["policy_kwargs"] = policy_kwargs(config)
    if getattr(hp, "optimize_memory_usage", False):
        # SB3 refuses the memory-saving buffer together with timeout handling.
        kwargs["replay_buffer_kwargs"] = {"handle_timeout_termination": False}
    return kwargs


def schedule_overrides(config: RunConfig) -> dict[str, Any]:
    """Schedules to hand ``Algorithm.load`` so a resumed run uses the config's, not a pickle's."""
    kwargs = model_kwargs(config)
    return {k: kwargs[k] for k in _SCHEDULED if k in kwargs and kwargs[k] is not None}


def policy_kwargs(config: RunConfig) -> dict[str, Any]:
    assert config.hyperparams is not None
    raw = config.hyperparams.policy_kwargs.model_dump(exclude_none=True)
    if "activation_fn" in raw:
        raw["activation_fn"] = ACTIVATION_CLASSES[raw["activation_fn"]]
    if "optimizer_class" in raw:
        raw["optimizer_class"] = OPTIMIZER_CLASSES[raw["optimizer_class"]]
    return raw
