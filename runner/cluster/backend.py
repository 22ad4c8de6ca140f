"""The runner's connection to a Ray cluster: nodes, the runs-folder probe, placing and finding
agents. The only module of ours that starts Ray calls other than ``remote``.

Ray does the scheduling: a run's agent asks for its CPUs, GPUs and custom resources and Ray
puts it on a node with room, or keeps it waiting until one has. The runner only keeps runs off
nodes that failed the probe (a label selector on Ray's node id) and fails a run no node could
ever hold (``placement.unmet``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import time
from pathlib import Path

import ray
from ray.exceptions import RayError

from runner.cluster.agent import Agent
from runner.cluster.placement import Ask
from runner.cluster.remote import RemoteProcess, _why
from runstore.atomic import atomic_write_text
from runstore.models import ClusterInfo, ClusterNode

log = logging.getLogger("runner")

#: Every agent and probe of this tool lives in this Ray namespace, named by run id.
NAMESPACE = "retro-ml"
#: Ray's own label naming a node (set on every node).
NODE_LABEL = "ray.io/node-id"
#: The node list is read again this often (a node joining is probed on the next read).
NODES_SECONDS = 5.0
#: A node that has not answered its probe within this long is refused.
PROBE_SECONDS = 60.0
#: A run no node can hold is failed only once the cluster's nodes have not changed for this
#: long: while a node leaves, joins or is probed, the run waits in the queue instead.
SETTLE_SECONDS = 10.0
#: A connection is tried again this often while the cluster cannot be reached.
RECONNECT_SECONDS = 10.0
#: Where probe tokens go, inside the runs folder.
PROBE_FOLDER = ".cluster"
#: Agents never restart on their own: a dead agent's run is ``lost`` and resumed on request
#: (from its checkpoint), never started twice behind the runner's back.
AGENT_OPTIONS = {"lifetime": "detached", "max_restarts": 0, "max_concurrency": 8}


def _probe(path: str, token: str) -> str:
    """On one node: read the runner's token at ``path`` and write it back beside it."""
    host = socket.gethostname()
    try:
        seen = Path(path).read_text()
    except OSError as exc:
        return f"node {host} cannot read {path}: {exc.strerror or exc}"
    if seen != token:
        return f"node {host} sees another folder at {Path(path).parent.parent} (a token differs)"
    try:
        Path(path + ".seen").write_text(token)
    except OSError as exc:
        return f"node {host} cannot write in {Path(path).parent}: {exc.strerror or exc}"
    return ""


class ClusterError(RuntimeError):
    """The cluster cannot be reached or asked; the message says what to do."""


class Cluster:
    def __init__(self, address: str, root: Path):
        self.address = address
        self.root = Path(root)
        self.connected = False
        self.error = ""
        self.checked_at: float | None = None
        self.nodes: dict[str, ClusterNode] = {}
        self._accepted: set[str] = set()
        self._refused: dict[str, str] = {}
        self._probes: dict[str, tuple[ray.ObjectRef, str, float]] = {}
        self._next_connect = 0.0
        self._next_nodes = 0.0
        self._changed_at = time.monotonic()  # the live node set or a probe last changed
        self._agent_class = None
        self._probe_task = None
        #: Counts connections: a handle from an earlier one is stale (``RemoteProcess``).
        self.generation = 0
        self._head = address  # the head's GCS as host:port, once connected

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> bool:
        """Connect when not yet connected (at most every RECONNECT_SECONDS); whether it is."""
        if self.connected:
            return True
        now = time.monotonic()
        if now < self._next_connect:
            return False
        self._next_connect = now + RECONNECT_SECONDS
        problem = _unreachable(self.address)
        if problem:
            self.error = problem
            return False
        try:
            ray.init(
                address=self.address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
            self.error = f"cannot connect to the Ray cluster at {self.address}: {_why(exc)}"
            return False
        self._agent_class = ray.remote(Agent)
        self._probe_task = ray.remote(num_cpus=0)(_probe)
        self._head = ray.get_runtime_context().gcs_address or self.address
        self.generation += 1
        self.connected = True
        self.error = ""
        log.info("connected to the Ray cluster at %s", self.address)
        return True

    def close(self) -> None:
        """Leave the cluster (agents are detached: they and their runs go on)."""
        if self.connected:
            with contextlib.suppress(Exception):
                ray.shutdown()
            self.connected = False

    def _head_lost(self) -> bool:
        """Whether the head stopped answering; if so, leave the cluster at once.

        Ray's calls to a head that is gone block, and after ``gcs_rpc_server_reconnect_
        timeout_s`` (60 s) Ray ends the whole process: the runner and every local duty with
        it. A TCP connect to the head answers within seconds, so each step checks it before
        any Ray call, and on a failure the runner disconnects (``ray.shutdown``) and tries
        again every RECONNECT_SECONDS; its cluster runs are judged when the cluster answers
        again (``RemoteProcess``)."""
        problem = _unreachable(self._head)
        if not problem:
            return False
        log.error("lost the Ray cluster: %s", problem)
        self.close()
        self.error = (
            f"lost the Ray cluster: {problem}. Its runs are followed again once it answers "
            "(a run whose agent went with it ends lost, to be resumed)"
        )
        self._probes.clear()
        self._next_connect = time.monotonic() + RECONNECT_SECONDS
        return True

    # -- nodes --------------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Check the head, read the node list when due, probe new nodes, collect answers."""
        if self.connected and self._head_lost():
            return
        if not self.connect():
            return
        now = time.monotonic()
        if force or now >= self._next_nodes:
            self._next_nodes = now + NODES_SECONDS
            try:
                table = ray.nodes()
            except Exception as exc:  # the head gone: say so, keep what was known
                self.error = f"the Ray cluster at {self.address} does not answer: {_why(exc)}"
                return
            self.error = ""
            self.checked_at = time.time()
            nodes = {n.id: n for n in map(_node, table)}
            if _alive(nodes) != _alive(self.nodes):
                self._changed_at = now
            self.nodes = nodes
            for node in self.nodes.values():
                if node.alive and node.id not in self._accepted | set(self._refused):
                    self._start_probe(node)
        self._collect_probes()
        for node in self.nodes.values():
            node.refused = self._refused.get(node.id, "")
            if node.alive and node.id not in self._accepted and not node.refused:
                node.refused = "being checked: can it see the runs folder?"

    def usable(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.alive and n.id in self._accepted]

    def probing(self) -> bool:
        """Whether a node is still being checked (runs wait for its answer)."""
        return bool(self._probes)

    def settled(self) -> bool:
        """Whether the nodes have stayed the same for SETTLE_SECONDS (``SETTLE_SECONDS``)."""
        return not self._probes and time.monotonic() - self._changed_at >= SETTLE_SECONDS

    def _start_probe(self, node: ClusterNode) -> None:
        token = secrets.token_hex(16)
        path = self.root / PROBE_FOLDER / f"probe-{node.id}"
        try:
            path.parent.mkdir(exist_ok=True)
            atomic_write_text(path, token)
            (path.parent / f"{path.name}.seen").unlink(missing_ok=True)
        except OSError as exc:
            self.error = f"cannot write the probe file {path}: {exc}"
            return
        task = self._probe_task.options(label_selector={NODE_LABEL: node.id})
        ref = task.remote(str(path), token)
        self._probes[node.id] = (ref, token, time.monotonic() + PROBE_SECONDS)

    def _collect_probes(self) -> None:
        for node_id, (ref, token, deadline) in list(self._probes.items()):
            ready, _ = ray.wait([ref], timeout=0)
            node = self.nodes.get(node_id)
            host = node.hostname if node else node_id[:8]
            if ready:
                try:
                    said = ray.get(ref)
                except RayError as exc:
                    said = f"node {host} failed the runs-folder probe: {_why(exc)}"
                path = self.root / PROBE_FOLDER / f"probe-{node_id}.seen"
                if not said and not _holds(path, token):
                    said = f"node {host} wrote into a folder the runner does not see ({path})"
            elif time.monotonic() > deadline:
                said = f"node {host} did not answer the runs-folder probe in {PROBE_SECONDS:.0f} s"
            else:
                continue
            del self._probes[node_id]
            self._changed_at = time.monotonic()
            if said and not (node and node.alive and _alive_now(node_id)):
                continue  # the node left while it was probed: nothing to refuse
            if said:
                self._refused[node_id] = said
                log.error("refused a cluster node: %s", said)
            else:
                self._accepted.add(node_id)
                log.info("cluster node %s (%s) sees the runs folder", host, node_id[:8])

    # -- agents -------------------------------------------------------------------------------

    def place(
        self, name: str, ask: Ask, module: str, args: list[str], run_dir: Path, log_name: str
    ) -> RemoteProcess:
        """Create the run's agent; Ray starts it on a node with room among those that
        passed the probe."""
        options = dict(AGENT_OPTIONS, name=name, namespace=NAMESPACE, **ask.options())
        options["label_selector"] = {NODE_LABEL: f"in({','.join(sorted(self._accepted))})"}
        actor = self._agent_class.options(**options).remote(module, args, str(run_dir), log_name)
        return RemoteProcess(actor, name, self, ask)

    def find(self, name: str) -> RemoteProcess | None:
        """The live agent of that name (a run placed by an earlier runner), or None."""
        actor = self.actor(name)
        return RemoteProcess(actor, name, self) if actor is not None else None

    def actor(self, name: str) -> ray.actor.ActorHandle | None:
        """The handle of the live agent of that name, in this connection, or None."""
        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return None

    def info(self, runs_by_node: dict[str, list[tuple[str, Ask | None]]]) -> ClusterInfo:
        """runner.json's view: each node with what the runs placed there hold."""
        nodes = []
        for node in self.nodes.values():
            placed = runs_by_node.get(node.id, [])
            held_cpus = sum(a.cpus for _, a in placed if a)
            held_gpus = sum(a.gpus for _, a in placed if a)
            nodes.append(
                node.model_copy(
                    update={
                        "runs": sorted(run for run, _ in placed),
                        "free_cpus": max(0.0, node.cpus - held_cpus),
                        "free_gpus": max(0.0, node.gpus - held_gpus),
                    }
                )
            )
        return ClusterInfo(
            address=self.address,
            connected=self.connected and not self.error,
            error=self.error,
            checked_at=self.checked_at,
            nodes=nodes,
        )


_BUILT_IN = {"CPU", "GPU", "memory", "object_store_memory"}


def _alive(nodes: dict[str, ClusterNode]) -> set[str]:
    return {node_id for node_id, node in nodes.items() if node.alive}


def _alive_now(node_id: str) -> bool:
    """Whether Ray still counts the node alive (asked again: a probe failing because its node
    just left must not refuse it, and a node refused must really be there)."""
    try:
        return any(n.get("NodeID") == node_id and n.get("Alive") for n in ray.nodes())
    except Exception:
        return True


def _node(entry: dict) -> ClusterNode:
    resources = entry.get("Resources") or {}
    custom = {
        k: float(v)
        for k, v in resources.items()
        if k not in _BUILT_IN and not k.startswith("node:") and not k.startswith("accelerator_type")
    }
    return ClusterNode(
        id=entry.get("NodeID", ""),
        hostname=entry.get("NodeManagerHostname", ""),
        ip=entry.get("NodeManagerAddress", ""),
        alive=bool(entry.get("Alive")),
        cpus=float(resources.get("CPU", 0)),
        gpus=float(resources.get("GPU", 0)),
        memory=float(resources.get("memory", 0)),
        resources=custom,
    )


def _holds(path: Path, token: str) -> bool:
    try:
        return path.read_text() == token
    except OSError:
        return False


def _unreachable(address: str) -> str:
    """Why the head at ``address`` cannot be reached, in a second or two ("" if it can); Ray
    itself would retry for a long while before it says so, with the runner's loop waiting."""
    if address == "auto":
        return ""  # Ray finds the cluster of this machine itself, at once or not at all
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return ""
    except OSError as exc:
        return (
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start its head "
            "with `ray start --head --port PORT`, or fix the address (--ray-address or "
            "ray_address in settings.yaml)"
        )
