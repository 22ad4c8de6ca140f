"""A Ray cluster whose head goes while the runner follows it (docs/cluster.md).

The head is a real ``ray start --head --block`` process in a session of its own, killed with
everything it started (its process group, and the workers its raylet started in sessions of
their own, found as its descendants). Ray itself ends a process whose head has not answered
for ``gcs_rpc_server_reconnect_timeout_s`` (60 s by default); the runner gets 5 s here, so a
runner that kept asking a dead head would be gone long before this test looks at it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray", reason="Ray is a dev dependency: make install")

from ray.util import get_node_ip_address  # noqa: E402

from machine.processes import group_members  # noqa: E402
from runstore import RunState  # noqa: E402
from runstore.checkpoints import latest_complete  # noqa: E402
from tests.conftest import Runs, cartpole, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(600)

STORE_BYTES = 80 * 2**20  # the object store's size (Ray's minimum is 75 MiB)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def head(port: int, log: Path) -> Iterator[subprocess.Popen]:
    """A one-node cluster: ``ray start --head --block``, ended with all it started."""
    ray = Path(sys.executable).parent / "ray"
    args = [
        str(ray), "start", "--head", f"--port={port}", "--num-cpus=2",
        f"--object-store-memory={STORE_BYTES}", "--include-dashboard=false",
        f"--ray-client-server-port={_free_port()}", "--block",
    ]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _answers(get_node_ip_address(), port), 60, "the head to listen")
        yield proc
    finally:
        kill_head(proc)


def kill_head(proc: subprocess.Popen) -> None:
    """SIGKILL the head's process group and every process it started (Ray's workers start
    sessions of their own, so the group alone would leave them behind)."""
    if proc.poll() is not None:
        return
    family: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        family = psutil.Process(proc.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for member in family:
        with contextlib.suppress(psutil.Error):
            member.kill()
    proc.wait(timeout=30)


def test_a_lost_head_leaves_the_runner_up_and_its_run_lost_to_be_resumed(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "5")  # the runner's, too
    port = _free_port()
    address = f"{get_node_ip_address()}:{port}"
    with head(port, tmp_path / "head-1.log") as first:
        runner = runs.runner("--ray-address", address, "--poll", "0.2")
        runs.submit(cartpole(steps=200_000, ckpt=500))
        run_id = runs.only_run()
        runs.wait_state(run_id, RunState.RUNNING, timeout=120)
        runs.wait_steps(run_id, 1_200, timeout=120)
        checkpoints = runs.store.paths(run_id).checkpoints
        ckpt = wait_for(lambda: latest_complete(checkpoints)[0], 60, "a checkpoint")
        pgid = runs.record(run_id).pgid
        kill_head(first)

    info = wait_for(
        lambda: (i := runs.store.read_runner_info()) and i.cluster and i.cluster.error and i,
        30,
        "runner.json to say the cluster was lost",
    )
    assert "lost the Ray cluster" in info.cluster.error and address in info.cluster.error
    wait_for(lambda: not group_members(pgid), 60, "the trainer to end with its agent")
    time.sleep(10)  # twice Ray's own deadline for a process whose head is gone
    assert runner.proc.poll() is None, "the runner went with the head"
    info = runs.store.read_runner_info()
    assert info is not None and time.time() - info.heartbeat_at < 5, "a stale heartbeat"
    assert runs.record(run_id).state == RunState.RUNNING  # nothing judged while unknown

    with head(port, tmp_path / "head-2.log"):  # the head is back, without the run's agent
        record = runs.wait_state(run_id, RunState.LOST, timeout=90)
        assert "came back without it" in record.reason, record.reason
        runs.store.write_request(run_id, "resume")
        runs.wait_state(run_id, RunState.RUNNING, timeout=120)
        record = runs.record(run_id)
        assert record.attempts == 2 and record.node is not None and record.node.id
        status = wait_for(lambda: (s := runs.status(run_id)) and s.pid == record.pid and s, 60)
        assert status.start_timesteps >= ckpt.step > 0  # continued from its checkpoint
        runs.store.write_request(run_id, "stop")
        runs.wait_state(run_id, RunState.STOPPED, timeout=120)
