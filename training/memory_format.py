"""Convolutions in channels-last (NHWC) memory layout.

PyTorch keeps images as NCHW by default, and on the CPU oneDNN reorders them for every
convolution. Kept channels-last, NatureCNN's forward and backward pass on a PPO minibatch of
256 Atari frames takes 102 ms instead of 133 ms on this project's 2-core CPU
(``python bench/bench_train.py --only layout --reps 4``), and PPO on Atari spends most of its
time there; whole PPO Pong runs gain 1.12x (docs/performance.md).
Only the layout changes: the same weights, the same arithmetic up to float rounding, and
checkpoints load into a plain SB3 model (a state dict's tensors carry their values, not the
layout).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def wants_channels_last(setting: bool | str, policy: nn.Module, device: torch.device) -> bool:
    """``auto``: on the CPU, for a policy with 2-d convolutions. On CUDA the gain depends on
    cuDNN and precision and was not measured here, so ``auto`` leaves it off there."""
    has_conv = any(isinstance(m, nn.Conv2d) for m in policy.modules())
    if setting == "auto":
        return has_conv and device.type == "cpu"
    return bool(setting) and has_conv


def _to_channels_last(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def use_channels_last(policy: nn.Module) -> int:
    """Convert the policy's conv weights in place and feed every conv channels-last input.

    The parameters stay the same objects (``Module.to`` swaps their data), so an optimizer
    already built on them keeps working. Returns the number of convolutions changed.
    """
    convs = [m for m in policy.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        conv.to(memory_format=torch.channels_last)
        conv.register_forward_pre_hook(_to_channels_last)
    return len(convs)
