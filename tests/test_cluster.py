"""Runs on a real Ray cluster (docs/cluster.md): nodes started by the test on this machine,
each with a custom resource of its own so placement is observable, a real runner placing
real CartPole runs through its Ray backend.

Everything the test starts ends through Ray's own ``Cluster.shutdown()`` (head and nodes it
added) or by the pids it recorded (a node started with ``ray start --block``, trainers from
run.json); the agents' trainers in their own sessions are ended by the watchdog when their
node goes, and by ``kill_run_groups`` at the end.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray", reason="Ray is a dev dependency: make install")

from ray.cluster_utils import Cluster  # noqa: E402

from dashboard.data import node_label  # noqa: E402
from machine.processes import group_members  # noqa: E402
from runstore import RunState  # noqa: E402
from runstore.checkpoints import latest_complete  # noqa: E402
from tests.conftest import Runs, cartpole, wait_for  # noqa: E402
from tests.test_sweeps import SWEEP, only_sweep, trial_runs, wait_complete  # noqa: E402

pytestmark = pytest.mark.timeout(600)

#: Each node's object store (Ray's minimum is 75 MiB): CartPole puts nothing in it.
STORE_BYTES = 80 * 2**20


def _node_args(resources: dict[str, float], cpus: int = 2) -> dict:
    return {
        "num_cpus": cpus,
        "resources": resources,
        "object_store_memory": STORE_BYTES,
        "include_dashboard": False,
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head (``head: 1, pool: 1``) and a second node (``second: 1``) joined to it."""
    made = Cluster(initialize_head=True, head_node_args=_node_args({"head": 1, "pool": 1}))
    try:
        made.second = made.add_node(**_node_args({"second": 1}))
        made.wait_for_nodes()
        yield made
    finally:
        made.shutdown()


def _runner(runs: Runs, cluster: Cluster, *extra: str):
    return runs.runner(
        "--ray-address", cluster.address, "--max-concurrent", "4", "--poll", "0.2", *extra
    )


def _on(resource: str, steps: int = 200_000, ckpt: int = 1_000) -> str:
    return cartpole(steps=steps, ckpt=ckpt, extra=f"resources:\n  ray:\n    {resource}: 1\n")


def _live(runs: Runs, run_id: str, steps: int = 300) -> None:
    runs.wait_state(run_id, RunState.RUNNING, timeout=120)
    runs.wait_steps(run_id, steps, timeout=120)


def test_a_run_asking_for_a_nodes_resource_is_placed_there_and_completes(runs, cluster):
    _runner(runs, cluster)
    runs.submit(_on("second", steps=2_000))
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.COMPLETED, timeout=240)
    assert record.node is not None and record.node.id == cluster.second.node_id
    assert record.node.ip and record.node.hostname
    assert node_label(record) == f"{record.node.hostname} ({record.node.ip})"  # Runs, Run pages
    kinds = [e.kind for e in record.events]
    assert kinds.index("placing") < kinds.index("placed") < kinds.index("completed")
    assert runs.status(run_id).timesteps >= 2_000
    assert (runs.store.paths(run_id).trainer_log).stat().st_size > 0  # logs in the run's logs/
    info = runs.store.read_runner_info()
    assert info is not None and info.cluster is not None and info.cluster.connected
    nodes = {n.id: n for n in info.cluster.nodes}
    assert {cluster.head_node.node_id, cluster.second.node_id} <= set(nodes)
    assert nodes[cluster.second.node_id].resources == {"second": 1.0}
    assert not any(n.refused for n in nodes.values())
    # a media job goes to the cluster too: a clip of the final model, recorded on a node
    runs.store.write_request(run_id, "record", params={"episodes": 1})
    wait_for(lambda: "record-done" in [e.kind for e in runs.record(run_id).events], 120, "a clip")
    placed = [e for e in runs.record(run_id).events if e.kind == "record-placed"]
    assert placed and placed[0].detail.startswith("on node ")
    assert any(runs.store.paths(run_id).videos.glob("*record*.mp4"))
    assert runs.record(run_id).media_job is None


def test_a_sweep_spreads_its_trials_over_the_nodes_with_no_change(runs, cluster):
    """An ordinary sweep file (tests/test_sweeps.py's), each trial asking for 2 CPUs
    (``n_envs: 2``): each node has 2, so its two concurrent trials can only train on two
    different nodes, and the study is told both results as on one machine."""
    _runner(runs, cluster)
    text = SWEEP.format(trials=2, seeds=1).replace(
        "  n_steps: 64\n", "  n_steps: 64\n  n_envs: 2\n"
    )
    runs.submit(text, "spread.yaml")
    paths = only_sweep(runs)
    state = wait_complete(paths, timeout=300)
    assert state.asked == 2 and state.complete + state.pruned == 2 and state.failed == 0
    found = trial_runs(runs, paths.id)
    records = [runs.record(run_id) for (run_id,) in found.values()]
    assert all(r.node is not None for r in records), records
    nodes = {r.node.id for r in records if r.node is not None}
    assert nodes == {cluster.head_node.node_id, cluster.second.node_id}, nodes
    spans = sorted((r.started_at, r.ended_at) for r in records)
    assert spans[1][0] < spans[0][1], f"the trials did not train at once: {spans}"


def test_a_run_no_node_can_hold_fails_with_the_reason(runs, cluster):
    _runner(runs, cluster)
    runs.submit(_on("tpu_pod"))
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.FAILED, timeout=60)
    assert "no node of the cluster has 1 CPU, tpu_pod: 1" in record.reason
    assert "second: 1" in record.reason and "head: 1, pool: 1" in record.reason  # what they have
    assert record.node is None and record.pid is None


def test_pause_resume_and_stop_reach_the_trainer_on_its_node(runs, cluster):
    _runner(runs, cluster)
    runs.submit(_on("second"))
    run_id = runs.only_run()
    _live(runs, run_id)
    pgid = runs.record(run_id).pgid
    runs.store.write_request(run_id, "pause")
    runs.wait_state(run_id, RunState.PAUSED, timeout=60)
    members = group_members(pgid)
    assert members and all(p.status() == "stopped" for p in members)
    held = runs.status(run_id).timesteps
    time.sleep(2)
    assert runs.status(run_id).timesteps == held
    runs.store.write_request(run_id, "resume")
    runs.wait_state(run_id, RunState.RUNNING, timeout=60)
    runs.wait_steps(run_id, held + 200, timeout=120)
    runs.store.write_request(run_id, "stop")
    record = runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    ckpt, _ = latest_complete(runs.store.paths(run_id).checkpoints)
    assert ckpt is not None and ckpt.step >= held  # the stop saved one
    assert record.reason and not group_members(pgid)


def test_delete_kills_the_trainer_on_its_node_and_removes_the_run(runs, cluster):
    _runner(runs, cluster)
    runs.submit(_on("second"))
    run_id = runs.only_run()
    _live(runs, run_id)
    pgid = runs.record(run_id).pgid
    runs.store.write_request(run_id, "delete")
    wait_for(lambda: not runs.store.paths(run_id).dir.exists(), 60, "the run folder to go")
    wait_for(lambda: not group_members(pgid), 30, "the trainer's group to end")


def test_a_runner_killed_mid_run_leaves_the_trainer_and_a_new_runner_adopts_it(runs, cluster):
    first = _runner(runs, cluster)
    runs.submit(_on("second"))
    run_id = runs.only_run()
    _live(runs, run_id)
    first.kill(signal.SIGKILL)
    before = runs.status(run_id).timesteps
    runs.wait_steps(run_id, before + 300, timeout=120)  # trains on with no runner
    _runner(runs, cluster)
    wait_for(lambda: any(e.kind == "adopted" for e in runs.record(run_id).events), 60, "adoption")
    runs.store.write_request(run_id, "stop")
    record = runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    assert record.node is not None and record.node.id == cluster.second.node_id
    assert record.attempts == 1  # adopted, never started twice


def test_a_lost_node_ends_its_run_lost_and_resume_continues_it_on_another_node(runs, cluster):
    """Two nodes offer ``pool: 1``: the head's is held by a paused run, so the victim lands
    on the doomed node; that node goes (its raylet and workers killed), the victim is lost
    with the node named and its trainer ended; with the head's slot free again, resume
    continues it there from its newest checkpoint."""
    doomed = cluster.add_node(**_node_args({"pool": 1, "doomed": 1}))
    cluster.wait_for_nodes()
    blocker_cfg = cartpole(steps=200_000, extra="resources:\n  ray:\n    pool: 1\n    head: 1\n")
    _runner(runs, cluster)
    runs.submit(blocker_cfg, "blocker.yaml")
    blocker = wait_for(lambda: runs.store.run_ids(), 30, "the blocker run")[0]
    _live(runs, blocker, steps=1)
    runs.store.write_request(blocker, "pause")
    runs.wait_state(blocker, RunState.PAUSED, timeout=60)
    runs.submit(_on("pool", ckpt=500), "victim.yaml")
    victim = wait_for(lambda: set(runs.store.run_ids()) - {blocker}, 30, "the victim").pop()
    _live(runs, victim, steps=1_200)
    wait_for(lambda: latest_complete(runs.store.paths(victim).checkpoints)[0], 60, "a checkpoint")
    record = runs.record(victim)
    assert record.node is not None and record.node.id == doomed.node_id
    pgid = record.pgid
    lost_at = time.monotonic()
    cluster.remove_node(doomed)
    record = runs.wait_state(victim, RunState.LOST, timeout=30)
    assert time.monotonic() - lost_at < 30
    assert doomed.node_id[:8] in record.reason and "lost" in record.reason
    wait_for(lambda: not group_members(pgid), 30, "the lost node's trainer to end")
    ckpt, _ = latest_complete(runs.store.paths(victim).checkpoints)
    runs.store.write_request(blocker, "delete")
    wait_for(lambda: not runs.store.paths(blocker).dir.exists(), 60, "the blocker to go")
    runs.store.write_request(victim, "resume")
    runs.wait_state(victim, RunState.RUNNING, timeout=120)
    record = runs.record(victim)
    assert record.node is not None and record.node.id == cluster.head_node.node_id
    assert record.attempts == 2
    status = wait_for(lambda: (s := runs.status(victim)) and s.pid == record.pid and s, 60)
    assert status.start_timesteps >= ckpt.step > 0  # continued, not started over
    runs.store.write_request(victim, "stop")
    runs.wait_state(victim, RunState.STOPPED, timeout=120)


def test_an_unreachable_cluster_is_said_and_queued_runs_wait(runs):
    runner = runs.runner("--ray-address", "127.0.0.1:9", "--poll", "0.2")
    runs.submit(cartpole(steps=2_000))
    run_id = runs.only_run()
    info = wait_for(
        lambda: (i := runs.store.read_runner_info()) and i.cluster and i.cluster.error and i,
        30,
        "runner.json to say the cluster is unreachable",
    )
    assert not info.cluster.connected and "127.0.0.1:9" in info.cluster.error
    assert "ray start --head" in info.cluster.error
    time.sleep(2)
    assert runs.record(run_id).state == RunState.QUEUED and runner.proc.poll() is None


def _mount_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


@contextlib.contextmanager
def blind_node(runs: Runs, cluster: Cluster) -> Iterator[None]:
    """A node joined with ``ray start --block`` in a mount namespace of its own, where an
    empty tmpfs hides the runs folder: it cannot see what the runner writes there. Ended by
    the pids of every process in that namespace (Ray's workers start sessions of their own)."""
    if os.geteuid() != 0:
        pytest.skip("a private mount namespace needs root (CI runs as root)")
    ray = Path(sys.executable).parent / "ray"
    start = (
        f"mount -t tmpfs tmpfs {shlex.quote(str(runs.store.root))} && exec {ray} start "
        f"--address={cluster.address} --num-cpus=1 --resources='{{\"blind\": 1}}' "
        f"--object-store-memory={STORE_BYTES} --block"
    )
    log = open(runs.store.root.parent / "blind-node.log", "wb")  # noqa: SIM115
    node = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", start],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        namespace = wait_for(
            lambda: (
                node.poll() is None
                and _mount_namespace(node.pid) != _mount_namespace(os.getpid())
                and _mount_namespace(node.pid)
            ),
            30,
            "the node's mount namespace",
        )
        yield
    finally:
        node.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=30)
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if _mount_namespace(proc.pid) == namespace:
                    proc.kill()
        node.wait(timeout=30)
        log.close()


def test_a_node_joining_that_cannot_see_the_runs_folder_is_refused(runs, cluster):
    _runner(runs, cluster)  # first: the node joins a cluster the runner already follows
    with blind_node(runs, cluster):
        _refused_and_failing(runs)


def _refused_and_failing(runs: Runs) -> None:

    def refused():
        info = runs.store.read_runner_info()
        nodes = info.cluster.nodes if info and info.cluster else []
        blind = [n for n in nodes if n.resources.get("blind")]
        return blind and "being checked" not in blind[0].refused and blind[0]

    blind = wait_for(refused, 90, "the blind node to be probed")
    assert blind.refused.startswith(f"node {blind.hostname} cannot read ")
    assert str(runs.store.root / ".cluster") in blind.refused
    runs.submit(_on("blind"))
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.FAILED, timeout=60)
    assert "no node of the cluster has 1 CPU, blind: 1" in record.reason
    assert blind.refused in record.reason and record.pid is None
