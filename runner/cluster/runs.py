"""The cluster half of ``runner.trainers``: place a run's agent, record the node it landed
on, take a placed run over again after a runner restart, follow the cluster each step.

run.json's ``node`` marks an attempt on the cluster (an empty id until the agent has started
on a node); pid, pgid and create time are then the node's, and every signal goes through the
agent (``runner.process.Handle.remote``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ray.exceptions import RayError

from runner import process
from runner.cluster.backend import Cluster
from runner.cluster.placement import Ask, ask_for, unmet
from runner.cluster.remote import RemoteProcess, _why
from runner.process import Handle, Sent
from runstore.models import ClusterInfo, MediaJob, NodeRef, RunRecord, RunState

if TYPE_CHECKING:
    from runner.trainers import Trainers

log = logging.getLogger("runner")

#: What a clip, time-lapse or journey job asks the cluster for.
MEDIA_ASK = Ask(cpus=1)
#: How long a restarted runner waits for an adopted agent to say where it runs.
ADOPT_SECONDS = 15.0


def agent_name(record: RunRecord) -> str:
    """One agent per attempt: a new attempt never collides with the name of the last one,
    which Ray frees only once that agent is gone."""
    return f"{record.id}.{record.attempts}"


class Gone:
    """The remote side of an agent that is no longer on the cluster (``Remote``)."""

    def __init__(self, why: str):
        self.why = why

    def alive(self) -> bool:
        return False

    def exit_code(self) -> int | None:
        return None

    def peak_rss(self) -> int:
        return 0

    def vanished(self) -> str:
        return self.why

    def signal(self, what: str) -> Sent:
        return Sent(0, "its agent is gone")


class ClusterRuns:
    def __init__(self, cluster: Cluster, trainers: Trainers):
        self.cluster = cluster
        self.trainers = trainers
        self._was_connected = False

    # -- each step ----------------------------------------------------------------------------

    def step(self) -> None:
        """Follow the cluster: connect, read its nodes, probe new ones. A first connection
        (the cluster was down when the runner started) adopts the runs placed before."""
        self.cluster.refresh()
        if self.cluster.connected and not self._was_connected:
            self._was_connected = True
            self.trainers.records.adopt_again = True

    def ready(self) -> bool:
        """Whether queued runs may be placed now: connected, every node's probe answered and
        at least one node takes runs. Until then they wait in the queue, nothing lost."""
        c = self.cluster
        return c.connected and not c.error and not c.probing() and bool(c.usable())

    def may_wait(self, record: RunRecord) -> bool:
        """Whether a queued run no node can hold should wait rather than fail: the nodes are
        changing (one left, one joined or is being probed), so the answer may change too."""
        if self.cluster.settled():
            return False
        ask = self._ask(record)
        return ask is not None and bool(unmet(ask, list(self.cluster.nodes.values())))

    def info(self) -> ClusterInfo:
        """runner.json's cluster: the nodes, and the runs this runner placed on each."""
        placed: dict[str, list[tuple[str, Ask | None]]] = {}
        for run_id, handle in self.trainers.handles.items():
            remote = handle.remote
            if isinstance(remote, RemoteProcess) and remote.node is not None:
                placed.setdefault(remote.node.id, []).append((run_id, remote.ask))
        return self.cluster.info(placed)

    # -- a run's life -------------------------------------------------------------------------

    def launch(self, record: RunRecord) -> None:
        """Place the run's agent; it starts the trainer on whichever node Ray picks."""
        trainers = self.trainers
        paths = trainers.store.paths(record.id)
        try:
            config = trainers.store.read_config(record.id)
        except (ValueError, OSError) as exc:
            return self._fail(record, f"cannot start: {exc}")
        ask = ask_for(config)
        if why := unmet(ask, list(self.cluster.nodes.values())):
            return self._fail(record, f"cannot start: {why}")
        try:
            remote = self.cluster.place(
                agent_name(record), ask, "training", [str(paths.dir)], paths.dir, "trainer.log"
            )
        except (RayError, ValueError) as exc:
            return self._fail(record, f"could not place it on the Ray cluster: {_why(exc)}")
        record.node = NodeRef(id="")  # on the cluster; which node, once the agent says
        record.record("placing", f"asked the Ray cluster for {ask.describe()}")
        trainers.records.write(record)
        trainers.handles[record.id] = Handle(pid=0, pgid=0, create_time=0.0, remote=remote)
        log.info("placing %s on the cluster (%s)", record.id, ask.describe())

    def placed(self, record: RunRecord, handle: Handle) -> bool:
        """Record the node and process once the agent has started it (once per attempt);
        True when the node could not take the run, which is then failed with the reason."""
        remote = handle.remote
        if not isinstance(remote, RemoteProcess) or handle.pid or remote.placed() is None:
            return False
        where = remote.where or {}
        record.node = remote.node
        if remote.refused:
            remote.end()  # the agent started nothing
            self.trainers.handles.pop(record.id, None)
            record.reason = remote.refused
            record.ended_at = time.time()
            self.trainers.records.set_state(record, RunState.FAILED, remote.refused)
            return True
        handle.pid, handle.pgid = where["pid"], where["pgid"]
        handle.create_time = where["create_time"]
        record.pid, record.pgid, record.create_time = handle.pid, handle.pgid, handle.create_time
        node = record.node.describe() if record.node else "?"
        record.record("placed", f"on node {node}: pid {handle.pid}")
        record.record("spawned", f"pid {handle.pid} on {node}")
        self.trainers.records.write(record)
        log.info("%s runs on node %s (pid %d)", record.id, node, handle.pid)
        return False

    def adopt(self, record: RunRecord) -> None:
        """A live run an earlier runner placed: found again by its agent's name, or ended
        with the truth (its status's outcome, else ``lost`` with the node named)."""
        if not self.cluster.connected:
            return  # adopted when the cluster answers (``step``)
        remote = self.cluster.find(agent_name(record))
        where = record.node.describe() if record.node and record.node.id else "the cluster"
        if remote is None:
            why = f"its agent on {where} is gone (the node was lost, or the cluster restarted)"
            gone = Handle(record.pid or 0, record.pgid or 0, record.create_time or 0.0)
            gone.remote = Gone(why)
            self.trainers.finish(record, gone)
            return
        handle = Handle(record.pid or 0, record.pgid or 0, record.create_time or 0.0)
        handle.remote = remote
        if record.node and record.node.id and remote.wait_placed(ADOPT_SECONDS):
            remote.ask = self._ask(record)
        self.trainers.handles[record.id] = handle
        if record.state == RunState.PAUSED:
            process.suspend(handle)
        elif record.state == RunState.STOPPING:
            process.request_stop(handle)
        record.record("adopted", f"on {where}, through its agent")
        self.trainers.store.write_run(record)
        log.info("adopted %s on %s (%s)", record.id, where, record.state.value)

    # -- media jobs (clips, time-lapses, journeys) ------------------------------------------

    def start_media(self, record: RunRecord, module: str, args: list[str]) -> tuple[str, Handle]:
        """Place a media job's agent (one CPU) on a node: (its name, its handle)."""
        if not self.ready():
            raise OSError("the Ray cluster is not ready (see the System page); try again")
        name = f"{record.id}.media.{time.time_ns()}"
        paths = self.trainers.store.paths(record.id)
        try:
            remote = self.cluster.place(name, MEDIA_ASK, module, args, paths.dir, "media.log")
        except (RayError, ValueError) as exc:
            raise OSError(f"could not place it on the Ray cluster: {_why(exc)}") from None
        return name, Handle(pid=0, pgid=0, create_time=0.0, remote=remote)

    def media_placed(self, run_id: str, handle: Handle) -> None:
        """Record the node a media job runs on, once its agent has started it."""
        remote = handle.remote
        if not isinstance(remote, RemoteProcess) or remote.placed() is None:
            return
        where = remote.where or {}
        handle.pid, handle.pgid = where.get("pid", 0), where.get("pgid", 0)
        handle.create_time = where.get("create_time", 0.0)
        record = self.trainers.store.read_run(run_id)
        if record is None or record.media_job is None:
            return
        job = record.media_job
        job.node, job.pid, job.pgid = remote.node, handle.pid, handle.pgid
        job.create_time = handle.create_time
        node = remote.node.describe() if remote.node else "?"
        record.record(f"{job.action}-placed", remote.refused or f"on node {node}")
        self.trainers.store.write_run(record)

    def find_media(self, job: MediaJob) -> Handle | None:
        remote = self.cluster.find(job.agent) if self.cluster.connected else None
        if remote is None:
            return None
        return Handle(job.pid, job.pgid, job.create_time, remote=remote)

    def _ask(self, record: RunRecord) -> Ask | None:
        try:
            return ask_for(self.trainers.store.read_config(record.id))
        except (ValueError, OSError):
            return None

    def _fail(self, record: RunRecord, reason: str) -> None:
        record.reason = reason
        record.node = None
        self.trainers.records.set_state(record, RunState.FAILED, reason)
