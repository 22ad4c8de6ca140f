"""What a run asks a Ray cluster for, and whether any node can ever give it.

Pure logic (no Ray): the runner asks Ray for these amounts when it places a run's agent, and
fails a run no node could ever hold rather than leave it waiting in Ray's queue for ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runstore.config import RunConfig
from runstore.models import ClusterNode


@dataclass(frozen=True)
class Ask:
    """CPUs, GPUs and custom resources one run holds for as long as its agent lives."""

    cpus: float
    gpus: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)

    def options(self) -> dict:
        """Keyword arguments of Ray's ``.options()`` for the agent."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, "resources": dict(self.custom)}

    def describe(self) -> str:
        parts = [_amount(self.cpus, "CPU")]
        if self.gpus:
            parts.append(_amount(self.gpus, "GPU"))
        parts += [f"{name}: {amount:g}" for name, amount in sorted(self.custom.items())]
        return ", ".join(parts)


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def ask_for(config: RunConfig) -> Ask:
    """CPUs from ``resources.cpus`` (a count, or the length of a core list) or else the run's
    ``n_envs`` (one environment process per core is what SubprocVecEnv wants); one GPU when
    its device is CUDA (``auto`` asks for none: name ``cuda`` to get one on a cluster); the
    custom resources of ``resources.ray``."""
    cpus = config.resources.cpus
    if isinstance(cpus, list):
        count = float(len(cpus))
    elif isinstance(cpus, int):
        count = float(cpus)
    else:
        count = float(getattr(config.hyperparams, "n_envs", 1) or 1)
    gpus = 1.0 if config.device.startswith("cuda") else 0.0
    return Ask(cpus=count, gpus=gpus, custom=dict(config.resources.ray))


def fits(ask: Ask, node: ClusterNode) -> bool:
    """Whether the node could hold the run when nothing else runs there."""
    if node.cpus < ask.cpus or node.gpus < ask.gpus:
        return False
    return all(node.resources.get(name, 0.0) >= amount for name, amount in ask.custom.items())


def unmet(ask: Ask, nodes: list[ClusterNode]) -> str:
    """Why no live node that may take runs could ever hold this one; "" when one could."""
    usable = [n for n in nodes if n.alive and not n.refused]
    if any(fits(ask, n) for n in usable):
        return ""
    refused = "; ".join(n.refused for n in nodes if n.alive and n.refused)
    if not usable:
        return "no node of the cluster may take runs" + (f" ({refused})" if refused else "")
    have = "; ".join(_offer(n) for n in usable)
    also = f"; refused: {refused}" if refused else ""
    return f"no node of the cluster has {ask.describe()} (the nodes have: {have}{also})"


def _offer(node: ClusterNode) -> str:
    parts = [_amount(node.cpus, "CPU")]
    if node.gpus:
        parts.append(_amount(node.gpus, "GPU"))
    parts += [f"{k}: {v:g}" for k, v in sorted(node.resources.items())]
    return f"{node.hostname or node.id[:8]} {', '.join(parts)}"
