"""The runner's side of one agent: what ``runner.process.Handle`` asks of a process on
another node, answered without ever blocking the supervisor's loop for long.

Two calls are in flight for the agent's whole life: ``where`` (answers once the process is
started on a node) and ``wait`` (answers when it exits). Each step only asks Ray whether they
have answered (``ray.wait`` with no timeout, a local check). A dead agent (its node lost, its
worker killed) answers both with an error: the run is then ``lost``, with the node named.
Signals are the one blocking call, bounded by ``SIGNAL_SECONDS``.

While the cluster does not answer (``Cluster`` left it), nothing is asked and nothing is
judged: the run stays as it was. Once the runner is connected again, the agent is found again
by its name; not found, it went with the cluster, and the run is ``lost``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import ray
from ray.exceptions import GetTimeoutError, RayError

from runner.cluster.placement import Ask
from runner.process import Sent
from runstore.models import NodeRef

if TYPE_CHECKING:
    from runner.cluster.backend import Cluster

log = logging.getLogger("runner")

#: How long a signal may take to reach a node and come back.
SIGNAL_SECONDS = 15.0


class RemoteProcess:
    def __init__(
        self, actor: ray.actor.ActorHandle, name: str, cluster: Cluster, ask: Ask | None = None
    ):
        self.name = name
        self.cluster = cluster
        self.generation = cluster.generation
        self.ask = ask
        self.where: dict | None = None
        self.error = ""  # why the agent cannot be followed any more
        self.done = False
        self.code: int | None = None
        self.peak = 0
        self._follow(actor)

    def _follow(self, actor: ray.actor.ActorHandle | None) -> None:
        self.actor = actor
        if actor is not None:
            self._where_ref = actor.where.remote()
            self._wait_ref = actor.wait.remote()

    def _answers(self) -> bool:
        """Whether Ray may be asked about the agent now: the runner is connected, and the
        handle belongs to this connection (after a reconnection the agent is found again by
        name; not found, it went with the cluster and ``error`` says so)."""
        cluster = self.cluster
        if not cluster.connected:
            return False
        if self.generation != cluster.generation:
            self.generation = cluster.generation
            self._follow(cluster.actor(self.name))
            if self.actor is None:
                self.error = "the Ray cluster stopped answering, and it came back without it"
        return True

    # -- where it runs ----------------------------------------------------------------------

    def placed(self) -> dict | None:
        """The agent's ``where`` once it has answered (None until then)."""
        if self.where is None and self._answers() and not self.error:
            ready, _ = ray.wait([self._where_ref], timeout=0)
            if ready:
                try:
                    self.where = ray.get(ready[0])
                except RayError as exc:
                    self.error = _why(exc)
        return self.where

    def wait_placed(self, timeout: float) -> dict | None:
        """``placed``, waiting up to ``timeout`` seconds for the answer (adoption only)."""
        if self.where is None and self._answers() and not self.error:
            ray.wait([self._where_ref], timeout=timeout)
        return self.placed()

    @property
    def node(self) -> NodeRef | None:
        where = self.where
        if not where:
            return None
        return NodeRef(id=where["node"], hostname=where["hostname"], ip=where["ip"])

    @property
    def refused(self) -> str:
        return (self.where or {}).get("refused", "")

    # -- runner.process.Remote -----------------------------------------------------------------

    def alive(self) -> bool:
        if self.done:
            return False
        if not self._answers():
            return True  # the cluster does not answer: nothing known, nothing judged yet
        if self.actor is None:  # gone with the cluster
            self.end()
            return False
        if self.placed() is None:
            if not self.error:
                return True  # waiting for a node with room
            self.end()
            return False
        if self.refused:
            self.end()
            return False
        ready, _ = ray.wait([self._wait_ref], timeout=0)
        if not ready:
            return True
        try:
            self.code, self.peak = ray.get(ready[0])
        except RayError as exc:
            self.error = _why(exc)
        self.end()
        return False

    def exit_code(self) -> int | None:
        return self.code

    def peak_rss(self) -> int:
        return self.peak

    def vanished(self) -> str:
        """Why the process could not be followed to its end ("" when it was)."""
        if self.refused:
            return self.refused
        if not self.error:
            return ""
        node = self.node
        where = f"node {node.describe()}" if node else "the cluster"
        if self.actor is None:
            return f"its agent on {where} is gone: {self.error}"
        return f"its agent on {where} died ({self.error}); the node was probably lost"

    def signal(self, what: str) -> Sent:
        """suspend, resume, stop or kill through the agent, on its node."""
        if not self.done and not self._answers():
            return Sent(0, "the Ray cluster does not answer (System page)", refused=True)
        if self.placed() is None and not self.error:
            if what in ("stop", "kill"):  # not started: nothing to end but the waiting agent
                self.end()
                return Sent(1, "taken off the cluster's queue before it started")
            return Sent(0, "it is waiting for room on the cluster; nothing runs yet")
        if self.done or self.error:
            return Sent(0, "its agent is gone")
        try:
            return ray.get(self.actor.signal.remote(what), timeout=SIGNAL_SECONDS)
        except GetTimeoutError:
            return Sent(0, f"its node did not answer within {SIGNAL_SECONDS:.0f} s", refused=True)
        except RayError as exc:
            self.error = _why(exc)
            return Sent(0, f"its agent is gone ({self.error})", refused=True)

    def end(self) -> None:
        """The agent has nothing more to do: end it, so its CPUs and GPUs are free again."""
        self.done = True
        if self.actor is not None and self._answers():
            with contextlib.suppress(RayError, ValueError):
                ray.kill(self.actor, no_restart=True)


def _why(exc: BaseException) -> str:
    """The first line of a Ray error, which says what happened (the rest is a traceback)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
