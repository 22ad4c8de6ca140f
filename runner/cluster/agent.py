"""The agent: one run's process group on a Ray cluster node, for a runner elsewhere.

A Ray actor with this class as its body is created per run (detached, named by the run id:
``backend.Cluster.place``); it lives on the node Ray chose and does there what
``runner.process`` does on the runner's machine: start ``python -m training RUN_DIR`` (or a
media job) in a new process group, signal it through the same identity-checked ``send``,
and report its exit code and peak memory. The process's output goes to the run's own
``logs/`` in the shared runs folder, so the runner and the dashboard read it as for a local
run.

A node that does not see the run's folder (no run.json at that path) starts nothing and says
so in ``where``. A watchdog process (``runner.cluster.watchdog``) SIGKILLs the group if the
agent dies without reaping it (its raylet killed, say): the runner then calls the run
``lost`` and may resume it elsewhere, so a trainer left behind would be a second writer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from runner import process
from runner.process import Handle, Sent

#: How often ``wait`` looks at the process (and samples its memory).
POLL_SECONDS = 0.5
_SIGNALS = {
    "suspend": process.suspend,
    "resume": process.resume,
    "stop": process.request_stop,
    "kill": process.kill,
}


class Agent:
    def __init__(self, module: str, args: list[str], run_dir: str, log_name: str):
        self.hostname = socket.gethostname()
        self.refused = ""
        self.handle: Handle | None = None
        self.watchdog: subprocess.Popen | None = None
        folder = Path(run_dir)
        if not (folder / "run.json").is_file():
            self.refused = (
                f"node {self.hostname} does not see the runs folder: no {folder / 'run.json'} "
                "there; mount the runs folder at the same path on every node"
            )
            return
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", module, *args]
        self.handle = process._spawn(cmd, folder, folder / "logs" / log_name, env)
        me = psutil.Process()
        self.watchdog = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner.cluster.watchdog",
                *map(str, (me.pid, me.create_time(), self.handle.pid, self.handle.pgid)),
                repr(self.handle.create_time),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a pause (SIGSTOP to the run's group) must not stop it
            close_fds=True,
        )

    def where(self) -> dict:
        """The node and the process: what run.json records for this attempt."""
        import ray  # only ever called inside a Ray worker

        context = ray.get_runtime_context()
        out = {
            "node": context.get_node_id(),
            "hostname": self.hostname,
            "ip": ray.util.get_node_ip_address(),
            "refused": self.refused,
        }
        if self.handle is not None:
            out |= {
                "pid": self.handle.pid,
                "pgid": self.handle.pgid,
                "create_time": self.handle.create_time,
            }
        return out

    def wait(self) -> tuple[int | None, int]:
        """Block until the process exits: (its exit code, its peak RSS in bytes)."""
        handle = self.handle
        if handle is None or handle.popen is None:
            return None, 0
        while handle.popen.poll() is None:
            handle.sample_rss()
            time.sleep(POLL_SECONDS)
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.kill()  # its job is done; it is this process's own child
            self.watchdog.wait()
        return handle.popen.returncode, handle.peak_rss

    def signal(self, what: str) -> Sent:
        """suspend, resume, stop or kill, as ``runner.process`` does them locally."""
        if self.handle is None:
            return Sent(0, f"nothing was started on {self.hostname}")
        return _SIGNALS[what](self.handle)
