"""Process control for training processes, in one small module.

Each trainer runs in its own process group so that pause, stop and kill reach its
SubprocVecEnv workers too. Identity is (pid, create_time), never a pid alone: a recycled pid
belongs to someone else. Every signal the runner sends goes through ``send``, which checks
the recorded (pid, pgid, create time) against the process table first; there is no other way
to signal from the runner (docs/architecture.md, "Trust"). This module is POSIX (Linux and macOS);
Windows would use a Job Object here and psutil's suspend/resume on each process of the tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from machine.processes import CLOCK_STEP as _CLOCK_STEP
from machine.processes import DEAD as _DEAD
from machine.processes import Sent, group_members, identify, same_start, send  # noqa: F401
from runner.resources import Plan
from runner.resources import apply as apply_resources
from runstore import safeio


class Remote(Protocol):
    """A process group on a cluster node, driven through its agent (``runner.cluster``):
    the runner never signals its pid on this machine, where it means nothing."""

    def alive(self) -> bool: ...
    def exit_code(self) -> int | None: ...
    def peak_rss(self) -> int: ...
    def vanished(self) -> str: ...
    def signal(self, what: str) -> Sent: ...


@dataclass
class Handle:
    """A training process we supervise; ``popen`` only when this runner spawned it,
    ``remote`` when it runs on a cluster node."""

    pid: int
    pgid: int
    create_time: float
    popen: subprocess.Popen | None = field(default=None, repr=False)
    peak_rss: int = 0
    notes: list[str] = field(default_factory=list)  # resources that could not be applied
    remote: Remote | None = field(default=None, repr=False)

    def sample_rss(self) -> None:
        """Track the trainer's peak memory, to tell an OOM kill from another SIGKILL."""
        if self.remote is not None:
            self.peak_rss = max(self.peak_rss, self.remote.peak_rss())
            return
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, psutil.Process(self.pid).memory_info().rss)

    def is_alive(self) -> bool:
        if self.remote is not None:
            return self.remote.alive()
        if self.popen is not None:
            return self.popen.poll() is None
        return identify(self.pid, self.create_time) is not None

    def exit_code(self) -> int | None:
        """The exit code when we are its parent or its agent told it (negative: killed by
        that signal)."""
        if self.remote is not None:
            return self.remote.exit_code()
        return self.popen.returncode if self.popen is not None else None

    def vanished(self) -> str:
        """Why its end could not be seen (a cluster node lost), "" when nothing is known."""
        return self.remote.vanished() if self.remote is not None else ""


#: How the runner starts a child it supervises: no stdin, stderr into the same log as
#: stdout, its own session and process group (no terminal signals; the pgid equals the pid),
#: and never the runner's lock file descriptor.
_DETACHED: dict[str, Any] = {
    "stdin": subprocess.DEVNULL,
    "stderr": subprocess.STDOUT,
    "start_new_session": True,
    "close_fds": True,
}


def _spawn(cmd: list[str], cwd: Path, log_path: Path, env: dict[str, str]) -> Handle:
    """Start ``cmd`` as the leader of a new process group, its output appended to
    ``log_path``."""
    with safeio.open_append(log_path) as log:
        popen = subprocess.Popen(cmd, stdout=log, cwd=cwd, env=env, **_DETACHED)
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:  # died at once; the caller sees it through poll()
        create_time = 0.0
    # The pgid equals the pid for a new session leader; stored because getpgid() fails once
    # the leader is reaped while its workers may live on.
    return Handle(pid=popen.pid, pgid=popen.pid, create_time=create_time, popen=popen)


def spawn_trainer(run_dir: Path, log_path: Path, resources: Plan | None = None) -> Handle:
    """Start ``python -m training RUN_DIR`` as the leader of a new process group, with the
    cores, nice level and GPU of its ``resources`` plan (runner/resources.py)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if resources is not None:
        env.update(resources.env)
    handle = _spawn([sys.executable, "-m", "training", str(run_dir)], run_dir, log_path, env)
    handle.notes = apply_resources(handle.pid, resources) if resources is not None else []
    return handle


def spawn_module(module: str, args: list[str], cwd: Path, log_path: Path) -> Handle:
    """Start ``python -m MODULE ARGS`` in a new process group (a clip or time-lapse job)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return _spawn([sys.executable, "-m", module, *args], cwd, log_path, env)


def run_module(module: str, args: list[str]) -> int:
    """Run ``python -m MODULE ARGS`` in the foreground, for a command of ``python -m
    runner``: its output is the command's output and its exit code the command's, and the
    runner process never imports the module (``training.timelapse`` brings cv2 and imageio)."""
    return subprocess.run([sys.executable, "-m", module, *args], check=False).returncode


def find_trainers(run_dir: Path) -> list[psutil.Process]:
    """Training processes whose command line names this run folder (adoption fallback)."""
    target = str(run_dir)
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["status"] in _DEAD:
            continue
        if "training" in cmd and target in cmd and cmd.index("training") > 0:
            found.append(proc)
    return found


# -- signals: every one goes through ``send`` ---------------------------------------------

#: How long ``suspend`` waits for every process of a group to show stopped. SIGSTOP acts when
#: the process next runs, which under load is well after ``killpg`` returns.
SUSPEND_WAIT_SECONDS = 5.0
_STOPPED = (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


def _signal(handle: Handle, sig: int, *, leader_only: bool = False) -> Sent:
    return send(handle.pid, handle.pgid, handle.create_time, sig, leader_only=leader_only)


def suspend(handle: Handle, wait: float = SUSPEND_WAIT_SECONDS) -> Sent:
    """SIGSTOP the group, then wait (up to ``wait`` seconds) until every process of it shows
    stopped, so that "paused" in run.json is the truth and not a signal still on its way:
    a runnable process that has not been scheduled yet shows running until it runs.
    ``pending`` lists those still not stopped when the wait ran out."""
    if handle.remote is not None:  # its agent waits on its node
        return handle.remote.signal("suspend")
    sent = _signal(handle, signal.SIGSTOP)
    if not sent:
        return sent
    deadline = time.monotonic() + wait
    while True:
        pending = []
        group = group_members(handle.pgid) if handle.pid == handle.pgid else []
        if handle.pid != handle.pgid and (proc := identify(handle.pid, handle.create_time)):
            group = [proc]  # signalled alone (see ``send``)
        for proc in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.create_time() >= handle.create_time - _CLOCK_STEP and (
                    proc.status() not in _STOPPED
                ):
                    pending.append(proc.pid)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if pending:
        return Sent(
            sent.count,
            f"pid(s) {', '.join(map(str, pending))} not yet stopped after {wait:.0f} s "
            "(the stop takes effect when they next run)",
            pending=tuple(pending),
        )
    return sent


def resume(handle: Handle) -> Sent:
    """SIGCONT the group; unlike SIGSTOP it takes effect when sent, so there is no wait."""
    if handle.remote is not None:
        return handle.remote.signal("resume")
    return _signal(handle, signal.SIGCONT)


def request_stop(handle: Handle) -> Sent:
    """Graceful stop: SIGTERM to the trainer (it saves a checkpoint and exits), then SIGCONT
    to the group, because a stopped process does not act on SIGTERM until continued.

    Only the leader gets SIGTERM: its env workers must stay up while it saves.
    """
    if handle.remote is not None:
        return handle.remote.signal("stop")
    term = _signal(handle, signal.SIGTERM, leader_only=True)
    cont = _signal(handle, signal.SIGCONT)
    return cont if cont.refused and not term.refused else term


def kill(handle: Handle) -> Sent:
    """SIGKILL the whole group (workers included); the stored pgid works after reaping."""
    if handle.remote is not None:
        return handle.remote.signal("kill")
    sent = _signal(handle, signal.SIGKILL)
    if handle.popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            handle.popen.wait(timeout=5)
    return sent


def adopted(proc: psutil.Process, recorded_pgid: int | None) -> tuple[Handle, str]:
    """A handle for a process identified by (pid, create time), in the group it really
    leads; the second value says when that is not the group run.json recorded (a record
    naming a foreign group must not steer signals there)."""
    try:
        actual = os.getpgid(proc.pid)
    except ProcessLookupError:  # ended just now: ``send`` checks whatever is recorded
        actual = recorded_pgid or proc.pid
    handle = Handle(pid=proc.pid, pgid=actual, create_time=proc.create_time())
    if recorded_pgid and recorded_pgid != actual:
        return handle, f"recorded process group {recorded_pgid} is not its group ({actual})"
    return handle, ""


def signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
