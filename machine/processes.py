"""Process identity and signals, torch-free, for every process that signals one it recorded.

Identity is (pid, create_time), never a pid alone: a recycled pid belongs to someone else.
``send`` checks a recorded (pid, process group, create time) against the process table before
any signal; it is the one way the runner signals a trainer or a media job
(``runner/process.py``) and the one way the dashboard stops the TensorBoard it recorded in
``tensorboard.json`` (``dashboard/tensorboard_launcher.py``); see docs/architecture.md,
"Trust". POSIX (Linux and macOS).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

import psutil

DEAD = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
#: psutil reports create times to 1/100 s (clock ticks); two readings of one process agree.
_SAME_TIME = 0.01
#: psutil's create time is the start in clock ticks since boot (exact, never changes) plus the
#: boot time the kernel reports in whole seconds, read again at each call. When the wall clock
#: is adjusted, that boot time moves by whole seconds, and one process reads a create time off
#: by an integer number of seconds (seen here under load: 1 s, and pause was refused as "pid
#: is now another process"). So two readings of one process differ by a whole number of
#: seconds, to 1/100 s, within this many seconds of clock adjustment.
CLOCK_STEP = 60.0


def same_start(a: float, b: float) -> bool:
    """Whether two create times can be readings of one process (see ``CLOCK_STEP``). A
    reused pid matches only if it started within the window on the same 1/100 s fraction."""
    gap = abs(a - b)
    return gap <= CLOCK_STEP and abs(gap - round(gap)) <= _SAME_TIME


def identify(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid *and* creation time, or None."""
    if not pid or create_time is None:
        return None
    try:
        proc = psutil.Process(pid)
        if not same_start(proc.create_time(), create_time) or proc.status() in DEAD:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of a process group (for checks and tests)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] not in DEAD:
                members.append(proc)
        except (ProcessLookupError, PermissionError):
            continue
    return members


@dataclass(frozen=True)
class Sent:
    """What one signal did: ``count`` processes (or groups) got it; ``refused`` when the
    recorded identity did not match the process table, with ``reason`` saying why (the
    runner records it). ``pending``: pids a SIGSTOP had not stopped yet (``suspend``)."""

    count: int = 0
    reason: str = ""
    refused: bool = False
    pending: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return self.count > 0


def _recorded(pid: int, create_time: float) -> psutil.Process | None:
    """The process with this pid and creation time, zombies included (a zombie leader still
    owns its group number), or None."""
    try:
        proc = psutil.Process(pid)
        return proc if same_start(proc.create_time(), create_time) else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _started(pid: int) -> float | None:
    """When the process now holding ``pid`` started, or None when no process holds it."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return -1.0  # someone else's: certainly not ours


def send(
    pid: int | None,
    pgid: int | None,
    create_time: float | None,
    sig: int,
    *,
    leader_only: bool = False,
) -> Sent:
    """Send ``sig`` to the process group a run.json (or a media job) recorded, only when the
    process table proves it is still that group. The one way the runner signals anything, and
    the way the dashboard stops the TensorBoard it recorded.

    A run.json can come from another host or from before a reboot, so its numbers may name a
    stranger. The rules:

    - no create time recorded: never (a pid alone proves nothing);
    - a create time from before this boot: never (that process cannot exist now);
    - the leader identified by (pid, create time) and leading ``pgid``: ``killpg``;
    - the leader gone: a group number cannot be reused while any member lives, so the group
      is still ours unless another process holds pid == pgid or a member is older than our
      leader (it existed before our leader could have made the group). Then each member
      created at or after the recorded create time gets the signal (stray env workers after
      the trainer was reaped: ``finish`` relies on this).

    ``leader_only``: just the identified leader (SIGTERM for a graceful stop).
    Limitation: a foreign group whose own leader has exited, all of whose members were created
    after our recorded create time, passes these checks (see tests/test_signals.py).
    """
    who = f"pid {pid} (group {pgid})"

    def refuse(why: str) -> Sent:
        return Sent(0, f"{who} not signalled: {why}", refused=True)

    if not create_time or create_time <= 0:
        return refuse("no create time is recorded, so its identity cannot be checked")
    if not pid or pid <= 1 or not pgid or pgid <= 1:
        return refuse("no usable pid or process group is recorded")
    if pgid == os.getpgrp() or pid == os.getpid():
        return refuse("that is this process's own process group")
    if create_time < psutil.boot_time() - CLOCK_STEP:
        return refuse("it was recorded as started before this machine last booted")
    leader = _recorded(pid, create_time)
    if leader is not None:
        if leader_only or pid != pgid:
            # A process that does not lead the recorded group (started by hand inside a
            # shell's job) is signalled alone: its group holds processes we never started.
            with contextlib.suppress(psutil.NoSuchProcess):
                leader.send_signal(sig)
                return Sent(1, f"{who}: sent to the process")
            return Sent(0, f"{who}: already gone")
        try:
            actual = os.getpgid(pid)
        except ProcessLookupError:
            actual = None
        if actual is not None and actual != pgid:
            return refuse(f"the process leads group {actual}, not the recorded {pgid}")
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return Sent(0, f"{who}: the group is gone")
        return Sent(1, f"{who}: sent to the group")
    started = _started(pid)
    if started is not None:
        return refuse(f"pid {pid} is now another process (started {_when(started)})")
    if leader_only:
        return Sent(0, f"{who}: already gone")
    holder = _started(pgid)
    if holder is not None:
        return refuse(f"pid {pgid} is a different process (started {_when(holder)})")
    return _send_to_members(pgid, create_time, sig, who)


def _send_to_members(pgid: int, create_time: float, sig: int, who: str) -> Sent:
    """The leader is gone: signal the group's members one by one, each checked by psutil
    against pid reuse, repeated for SIGKILL so a member's last fork is caught too."""
    count = 0
    for _ in range(3 if sig == signal.SIGKILL else 1):
        members = []
        for proc in group_members(pgid):
            try:
                started = proc.create_time()
            except psutil.NoSuchProcess:
                continue
            if started < create_time - CLOCK_STEP:
                return Sent(
                    count,
                    f"{who} not signalled: its member pid {proc.pid} started "
                    f"{_when(started)}, before the recorded leader, so the group is not ours",
                    refused=True,
                )
            members.append(proc)
        if not members:
            break
        for proc in members:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(sig)
                count += 1
    return Sent(count, f"{who}: {count} member(s) signalled after the leader ended")


def _when(timestamp: float) -> str:
    if timestamp < 0:
        return "by another user"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


__all__ = ["CLOCK_STEP", "DEAD", "Sent", "group_members", "identify", "same_start", "send"]
