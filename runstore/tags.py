"""The TensorBoard tags of our own scalars: each name defined once, here.

The trainer writes them (``training/callbacks.py``: episodes, ``training/evaluation.py``:
evaluations, ``training/system_sampler.py``: the run's resource use); ``runstore.metrics`` and
the dashboard read them back from the event files. A renamed tag changes here and nowhere
else. The tags SB3 writes itself (``rollout/*``, ``train/*``, ``time/*``) are SB3's names and
are spelled where they are shown.
"""

from __future__ import annotations

# -- one point per finished episode, at the global step it ended (training/callbacks.py) ----
EPISODE_RETURN = "episode/return"
EPISODE_LENGTH = "episode/length"

# -- one point per evaluation, over its episodes (training/evaluation.py) --------------------
EVAL_PREFIX = "eval/"
EVAL_MEAN_RETURN = "eval/mean_return"
EVAL_STD_RETURN = "eval/std_return"
EVAL_MIN_RETURN = "eval/min_return"
EVAL_MAX_RETURN = "eval/max_return"
EVAL_MEAN_LENGTH = "eval/mean_length"
EVAL_STD_LENGTH = "eval/std_length"
EVAL_MIN_LENGTH = "eval/min_length"
EVAL_MAX_LENGTH = "eval/max_length"
#: wall seconds the evaluation took (its games and clip): what a long run's fps loses to it
EVAL_SECONDS = "eval/seconds"

# -- the run's own resource use, sampled in the background (training/system_sampler.py) -----
SYSTEM_PREFIX = "system/"
SYSTEM_CPU_PERCENT = "system/cpu_percent"  # summed over the run's processes (200 = two cores)
SYSTEM_RSS_MB = "system/rss_mb"
#: The GPU tags share this prefix; they are written only where there is a GPU.
SYSTEM_GPU_PREFIX = "system/gpu"
SYSTEM_GPU_UTIL = "system/gpu_util"
SYSTEM_GPU_MEM_MB = "system/gpu_mem_mb"
SYSTEM_GPU_POWER_W = "system/gpu_power_w"  # board power of the GPUs the run uses (NVML)
