"""How much memory a run will need, from its config alone (no torch, no environment built).

The runner checks the estimate against free RAM before it starts a trainer and records a
``preflight-warning`` in run.json when it does not fit; the new-run form shows it. It is an
estimate, not a promise: the buffers are exact (the same array shapes and dtypes SB3 allocates,
held against a real SB3 buffer in tests/test_estimate.py), the rest is rounded up.

Where the bytes go (SB3 2.x, ``stable_baselines3/common/buffers.py``):

- DQN ``ReplayBuffer``: ``observations`` of shape ``(buffer_size // n_envs, n_envs, *obs)`` in
  the observation dtype (uint8 for Atari: 84x84x4 = 28,224 bytes a transition), the same again
  as ``next_observations`` unless ``optimize_memory_usage``, plus actions, rewards, dones and
  timeouts. numpy allocates it lazily, so the RAM fills up as the buffer does: the estimate is
  what a full buffer holds.
- PPO ``RolloutBuffer``: ``n_steps x n_envs`` observations in their own dtype, actions, and six
  float32 columns; ``get()`` flattens every column into a copy, so the peak is about twice that.
- The network: weights, gradients and Adam's two moments (16 bytes a parameter; DQN also keeps a
  target network), plus the activations of one minibatch.
- Processes: a trainer with PyTorch loaded, and one more Python process per SubprocVecEnv worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from runstore.config import RunConfig
from runstore.hyperparams import DQNHyperparams, PPOHyperparams

MIB = 2**20
GIB = 2**30
# Resident memory of a trainer with torch, SB3 and gymnasium imported, before any buffer
# (measured: a CartPole PPO trainer on torch 2.13 CPU peaks at about 450 MB); rounded up.
TRAINER_BASE_BYTES = 600 * MIB
# A SubprocVecEnv worker: a fresh interpreter (forkserver) with gymnasium and ale-py.
WORKER_BYTES = 150 * MIB
ADAM_BYTES_PER_PARAM = 16  # float32 weight + gradient + two Adam moments
FLOAT32 = 4
INT64 = 8
ATARI_ACTIONS_MAX = 18  # the full action space; the minimal one of a game is smaller


@dataclass(frozen=True)
class SpaceSpec:
    """What the buffers need to know about an environment's spaces."""

    obs_shape: tuple[int, ...]
    obs_itemsize: int  # bytes per observation element (uint8: 1, float32: 4)
    action_dim: int  # SB3's get_action_dim: 1 for Discrete, the size of a Box
    action_itemsize: int  # Discrete actions are int64; float64 boxes are stored as float32
    n_actions: int  # outputs of the policy head (Discrete n, or the Box size)

    @property
    def obs_bytes(self) -> int:
        n = 1
        for d in self.obs_shape:
            n *= d
        return n * self.obs_itemsize


@dataclass
class MemoryEstimate:
    total_bytes: int
    parts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for run.json and the new-run form: the total, then the biggest parts."""
        parts = sorted(self.parts.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{name} {format_bytes(n)}" for name, n in parts if n >= MIB)
        return f"about {format_bytes(self.total_bytes)}" + (f" ({shown})" if shown else "")

    def to_dict(self) -> dict[str, Any]:
        return {"total_bytes": self.total_bytes, "parts": dict(self.parts), "notes": self.notes}


#: An Atari observation with the default wrappers: 84x84 grey frames stacked 4 deep, one byte
#: each, and the full action space.
ATARI_SPEC = SpaceSpec((4, 84, 84), 1, 1, INT64, ATARI_ACTIONS_MAX)


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def atari_spec(config: RunConfig) -> SpaceSpec:
    """The observation the trainer builds for an Atari game: screen x screen grey frames,
    ``frame_stack`` deep, one byte each (VecTransposeImage makes it channel-first)."""
    atari = config.atari
    stack = atari.frame_stack if atari else 4
    size = atari.screen_size if atari else 84
    return SpaceSpec((stack, size, size), 1, 1, INT64, ATARI_ACTIONS_MAX)


@functools.cache
def gym_spec(env_id: str) -> SpaceSpec | None:
    """The spaces of a non-Atari Gymnasium env, by building it once (no torch); None when it
    cannot be built here (a missing optional dependency): the estimate then leaves it out."""
    try:
        import gymnasium
        import numpy as np

        env = gymnasium.make(env_id)
        try:
            obs, act = env.observation_space, env.action_space
        finally:
            env.close()
        if not isinstance(obs, gymnasium.spaces.Box):
            return None
        if isinstance(act, gymnasium.spaces.Discrete):
            action_dim, action_itemsize, n_actions = 1, INT64, int(act.n)
        elif isinstance(act, gymnasium.spaces.Box):
            action_dim = int(np.prod(act.shape))
            action_itemsize = 4 if act.dtype == np.float64 else act.dtype.itemsize
            n_actions = action_dim
        else:
            return None
        return SpaceSpec(
            tuple(obs.shape), obs.dtype.itemsize, action_dim, action_itemsize, n_actions
        )
    except Exception:  # noqa: BLE001 - an estimate must never stop a run
        return None


def space_spec(config: RunConfig) -> SpaceSpec | None:
    return atari_spec(config) if config.is_atari else gym_spec(config.env)


def replay_buffer_bytes(
    buffer_size: int, n_envs: int, spec: SpaceSpec, optimize_memory_usage: bool
) -> int:
    """Exactly what SB3's ReplayBuffer allocates (numpy arrays) once full."""
    rows = max(buffer_size // n_envs, 1) * n_envs
    obs = rows * spec.obs_bytes * (1 if optimize_memory_usage else 2)
    actions = rows * spec.action_dim * spec.action_itemsize
    columns = rows * FLOAT32 * 3  # rewards, dones, timeouts
    return obs + actions + columns


def replay_transition_bytes(spec: SpaceSpec, optimize_memory_usage: bool) -> int:
    """What one transition of a full ReplayBuffer costs (see :func:`replay_buffer_bytes`)."""
    return replay_buffer_bytes(1, 1, spec, optimize_memory_usage)


def rollout_buffer_bytes(n_steps: int, n_envs: int, spec: SpaceSpec) -> int:
    """What SB3's RolloutBuffer allocates: observations, actions and six float32 columns."""
    rows = n_steps * n_envs
    return rows * (spec.obs_bytes + spec.action_dim * spec.action_itemsize + 6 * FLOAT32)


def _cnn_params(spec: SpaceSpec, features: int = 512) -> tuple[int, int]:
    """(parameters, activations per sample) of SB3's NatureCNN on this observation."""
    channels, height = spec.obs_shape[0], spec.obs_shape[-1]
    s1 = (height - 8) // 4 + 1
    s2 = (s1 - 4) // 2 + 1
    s3 = max(s2 - 2, 1)
    params = (channels * 64 * 32 + 32) + (32 * 16 * 64 + 64) + (64 * 9 * 64 + 64)
    params += 64 * s3 * s3 * features + features
    activations = 32 * s1 * s1 + 64 * s2 * s2 + 64 * s3 * s3 + features
    return params, activations


def _mlp_params(inputs: int, arch: list[int]) -> int:
    params, width = 0, inputs
    for units in arch:
        params += width * units + units
        width = units
    return params


def network_bytes(config: RunConfig, spec: SpaceSpec) -> int:
    hp = config.hyperparams
    assert hp is not None
    cnn = hp.policy == "CnnPolicy" and len(spec.obs_shape) == 3
    arch = hp.policy_kwargs.net_arch
    if cnn:
        features, per_sample = _cnn_params(spec)
        head_in = 512
    else:
        obs_size = spec.obs_bytes // max(spec.obs_itemsize, 1)
        features, per_sample, head_in = 0, obs_size, obs_size
    batch = hp.batch_size
    if isinstance(hp, DQNHyperparams):
        layers = list(arch) if isinstance(arch, list) else ([] if cnn else [64, 64])
        q = (
            features
            + _mlp_params(head_in, layers)
            + (layers[-1] if layers else head_in) * (spec.n_actions + 1)
        )
        weights = q * ADAM_BYTES_PER_PARAM + q * FLOAT32  # plus the target network
    else:
        if isinstance(arch, dict):
            pi, vf = arch.get("pi", [64, 64]), arch.get("vf", [64, 64])
        else:
            pi = vf = list(arch) if isinstance(arch, list) else ([] if cnn else [64, 64])
        heads = _mlp_params(head_in, pi) + _mlp_params(head_in, vf)
        heads += (pi[-1] if pi else head_in) * (spec.n_actions + 1) + (vf[-1] if vf else head_in)
        weights = (features + heads) * ADAM_BYTES_PER_PARAM
    # One minibatch as float32 input plus forward and backward activations.
    activations = batch * (spec.obs_bytes // max(spec.obs_itemsize, 1) + per_sample * 3) * FLOAT32
    return weights + activations


def _worker_count(config: RunConfig, n_envs: int) -> int:
    """SubprocVecEnv workers. ale-py's native vector env (``backend``) uses threads instead,
    and ``auto`` picks it for Atari."""
    if getattr(config, "backend", "sb3") != "sb3" and config.is_atari:
        return 0
    subproc = config.vec_env == "subproc" or (
        config.vec_env == "auto" and config.is_atari and n_envs > 1
    )
    return n_envs if subproc else 0


def estimate_memory(config: RunConfig, spec: SpaceSpec | None = None) -> MemoryEstimate:
    """RAM a run needs at its peak, by part. ``spec`` defaults to the config's env spaces."""
    hp = config.hyperparams
    assert hp is not None, "estimate a resolved config"
    spec = spec or space_spec(config)
    est = MemoryEstimate(0)
    est.parts["trainer process"] = TRAINER_BASE_BYTES
    workers = _worker_count(config, hp.n_envs)
    if workers:
        est.parts["env workers"] = workers * WORKER_BYTES
    if spec is None:
        est.notes.append(f"buffer sizes unknown: {config.env} could not be inspected here")
    elif isinstance(hp, DQNHyperparams):
        est.parts["replay buffer"] = replay_buffer_bytes(
            hp.buffer_size, hp.n_envs, spec, hp.optimize_memory_usage
        )
        if not hp.optimize_memory_usage and spec.obs_bytes >= 1024:
            est.notes.append(
                "optimize_memory_usage: true would store each observation once (about half)"
            )
        est.parts["network"] = network_bytes(config, spec)
    elif isinstance(hp, PPOHyperparams):
        # get() flattens every column into a new array: two copies at the peak.
        est.parts["rollout buffer"] = 2 * rollout_buffer_bytes(hp.n_steps, hp.n_envs, spec)
        est.parts["network"] = network_bytes(config, spec)
    est.total_bytes = sum(est.parts.values())
    return est


def preflight_problem(estimate: MemoryEstimate, available_bytes: int) -> str | None:
    """The warning to record when the estimate exceeds the free RAM, or None when it fits."""
    if estimate.total_bytes <= available_bytes:
        return None
    return (
        f"this run needs {estimate.describe()} but only {format_bytes(available_bytes)} of RAM is "
        "free; it may be killed by the out-of-memory killer or swap heavily. Lower buffer_size "
        "(or set optimize_memory_usage: true), n_steps or n_envs, or stop other programs."
    )
