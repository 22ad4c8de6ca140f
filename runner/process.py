"""Process control for training processes, in one small module.

Each trainer runs in its own process group so that pause, stop and kill reach its
SubprocVecEnv workers too. Identity is (pid, create_time), never a pid alone: a recycled pid
belongs to someone else. This module is POSIX (Linux and macOS); Windows would use a Job
Object here and psutil's suspend/resume on each process of the tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from runner.resources import Plan
from runner.resources import apply as apply_resources

_DEAD = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


@dataclass
class Handle:
    """A training process we supervise; ``popen`` only when this runner spawned it."""

    pid: int
    pgid: int
    create_time: float
    popen: subprocess.Popen | None = field(default=None, repr=False)
    peak_rss: int = 0
    notes: list[str] = field(default_factory=list)  # resources that could not be applied

    def sample_rss(self) -> None:
        """Track the trainer's peak memory, to tell an OOM kill from another SIGKILL."""
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, psutil.Process(self.pid).memory_info().rss)

    def is_alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return identify(self.pid, self.create_time) is not None

    def exit_code(self) -> int | None:
        """The exit code when we are its parent (negative: killed by that signal)."""
        return self.popen.returncode if self.popen is not None else None


def spawn_trainer(run_dir: Path, log_path: Path, resources: Plan | None = None) -> Handle:
    """Start ``python -m training RUN_DIR`` as the leader of a new process group, with the
    cores, nice level and GPU of its ``resources`` plan (runner/resources.py)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if resources is not None:
        env.update(resources.env)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "training", str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            env=env,
            start_new_session=True,  # own session and process group; no terminal signals
            close_fds=True,  # never hand the runner's lock file descriptor to a child
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:  # died at once; the caller sees it through poll()
        create_time = 0.0
    # The pgid equals the pid for a new session leader; stored because getpgid() fails once
    # the leader is reaped while its workers may live on.
    notes = apply_resources(popen.pid, resources) if resources is not None else []
    return Handle(pid=popen.pid, pgid=popen.pid, create_time=create_time, popen=popen, notes=notes)


def spawn_module(module: str, args: list[str], cwd: Path, log_path: Path) -> Handle:
    """Start ``python -m MODULE ARGS`` in a new process group (a clip or time-lapse job)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0
    return Handle(pid=popen.pid, pgid=popen.pid, create_time=create_time, popen=popen)


def identify(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid *and* creation time, or None."""
    if not pid or create_time is None:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.01 or proc.status() in _DEAD:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


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


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of a process group (for checks and tests)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] not in _DEAD:
                members.append(proc)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a whole group; False when the group is gone.

    Groups 0 and 1 and our own group are refused: ``killpg(0, ...)`` would signal the caller.
    """
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def suspend(handle: Handle) -> bool:
    return signal_group(handle.pgid, signal.SIGSTOP)


def resume(handle: Handle) -> bool:
    return signal_group(handle.pgid, signal.SIGCONT)


def request_stop(handle: Handle) -> None:
    """Graceful stop: SIGTERM to the trainer (it saves a checkpoint and exits), then SIGCONT
    to the group, because a stopped process does not act on SIGTERM until continued.

    Only the leader gets SIGTERM: its env workers must stay up while it saves.
    """
    proc = identify(handle.pid, handle.create_time)
    if proc is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
    signal_group(handle.pgid, signal.SIGCONT)


def kill(handle: Handle) -> None:
    """SIGKILL the whole group (workers included); the stored pgid works after reaping."""
    signal_group(handle.pgid, signal.SIGKILL)
    if handle.popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            handle.popen.wait(timeout=5)


def signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
