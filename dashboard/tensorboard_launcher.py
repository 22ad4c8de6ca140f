"""TensorBoard beside the dashboard: one ``tensorboard --logdir <runs folder>`` per runs folder,
started on request, found again by any session (and by a restarted dashboard), stopped on
request.

The record of the running instance is ``tensorboard.json`` in the runs folder (through
``runstore``). The record is a claim, not a proof (anyone who can write the runs folder can
write it), so it counts only while the process table agrees:

- the process with the recorded pid *and* create time lives (``machine.processes.identify``:
  a recycled pid is never taken for it), and its command line is the one this module starts,
  ``tensorboard.main --logdir <this runs folder> --host 127.0.0.1 --port N``; else the record
  is refused, removed, and nothing is signalled;
- the "Open" link is always ``http://127.0.0.1:N/``, N read from that command line: a record's
  own host or port never chooses where the link goes;
- Stop goes through ``machine.processes.send``, the identity check every signal of the runner
  goes through (SIGTERM to the group, SIGKILL after a grace).

At most one instance per runs folder, whatever fails: TensorBoard's output file,
``tensorboard.log``, is opened and locked (``flock``) before the start and the child inherits
the locked descriptor, so the lock is held exactly as long as a TensorBoard of this runs folder
(or one of its processes) lives, across dashboards; a second Start finds it held. Any failure
after the child started (the record cannot be written: a full disk, a folder at its name; no
answer in time) ends that child and waits for it before the error is raised, and every child
this process started has a thread waiting for it, so it is reaped the moment it exits: no
zombie stays behind in the dashboard. Errors are ``TensorBoardError`` (a ``RuntimeError``)
saying what failed and what to do.

It serves on 127.0.0.1 only, as TensorBoard does by default: it has no access control.
No Streamlit here; the Compare page holds one ``TensorBoardLauncher`` per runs folder.
POSIX (process groups, ``flock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO

import psutil

from machine.processes import identify, send
from runstore import safeio
from runstore.models import TensorBoardInfo
from runstore.store import RunStore

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0
MODULE = "tensorboard.main"


class TensorBoardError(RuntimeError):
    """TensorBoard could not be started (or recorded); the message says why and what to do.
    No TensorBoard this call started is left running when it is raised."""


@dataclass(frozen=True)
class TensorBoardState:
    """What the page shows: the live instance (``info``, its host and port taken from the
    process itself), and ``problem``, a sentence about a record that was refused."""

    info: TensorBoardInfo | None
    problem: str = ""


@dataclass(frozen=True)
class Stopped:
    """What Stop did: true when an instance was stopped; ``message`` says what happened."""

    done: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.done


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers_http(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    """Whether something answers an HTTP GET on the port (TensorBoard's front page)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as resp:
            return 200 <= resp.status < 500
    except OSError:
        return False


def command(logdir: str, port: int) -> list[str]:
    """The command this module starts TensorBoard with (and recognises it by)."""
    return [sys.executable, "-m", MODULE, "--logdir", logdir, "--host", HOST, "--port", str(port)]


def _option(cmd: list[str], name: str) -> str | None:
    try:
        return cmd[cmd.index(name) + 1]
    except (ValueError, IndexError):
        return None


def served_port(cmd: list[str], logdir: str) -> int | None:
    """The port, when ``cmd`` is a TensorBoard this module started for ``logdir`` (bound to
    ``HOST``); else None."""
    if MODULE not in cmd or _option(cmd, "--logdir") != logdir or _option(cmd, "--host") != HOST:
        return None
    port = _option(cmd, "--port")
    return int(port) if port is not None and port.isdigit() and 0 < int(port) < 65536 else None


def _command_line(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


class TensorBoardLauncher:
    """Start, find and stop the one TensorBoard of a runs folder."""

    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        # Every TensorBoard this process started, until it is reaped (see ``_reap``).
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- looking -------------------------------------------------------------------------------

    def state(self) -> TensorBoardState:
        """The live TensorBoard of this runs folder and any problem with its record. A stale
        record (its process gone) is removed quietly; a refused one is removed and said."""
        self._reap()
        problem = self._record_file_problem()
        if problem:
            return TensorBoardState(None, problem)
        info = self.store.read_tensorboard_info()
        if info is None:
            return TensorBoardState(None)
        proc = identify(info.pid, info.create_time)
        if proc is None:
            self._forget()
            return TensorBoardState(None)
        cmd = _command_line(proc)
        port = served_port(cmd, str(self.store.root))
        if port is None:
            self._forget()
            return TensorBoardState(None, f"{self._not_ours(info, cmd)} The record was removed.")
        return TensorBoardState(info.model_copy(update={"host": HOST, "port": port}))

    def running(self) -> TensorBoardInfo | None:
        """The live TensorBoard of this runs folder, or None."""
        return self.state().info

    def url(self, info: TensorBoardInfo) -> str:
        """Where the "Open" link goes: always the loopback address TensorBoard is bound to."""
        return f"http://{HOST}:{int(info.port)}/"

    # -- starting ------------------------------------------------------------------------------

    def start(self, wait_s: float = 60.0) -> TensorBoardInfo:
        """The running instance, or a new one once it answers HTTP.

        :raises TensorBoardError: when it cannot be started, recorded, or does not answer
            within ``wait_s`` (the message carries the end of its log); no child of this
            call is left running then.
        """
        with self._lock:
            state = self.state()
            if state.info is not None:
                return state.info
            problem = self._record_file_problem()
            if problem:
                raise TensorBoardError(problem)
            try:
                self.store.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TensorBoardError(f"cannot make the runs folder: {exc}") from exc
            log = self._claim_log()
            if log is None:  # a TensorBoard of this runs folder lives, unrecorded
                return self._adopt()
            try:
                port = free_port()
                proc = subprocess.Popen(
                    command(str(self.store.root), port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,  # the child keeps the locked descriptor: the lock is its life
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stopped as a group
                    close_fds=True,
                )
            except OSError as exc:
                raise TensorBoardError(f"TensorBoard could not be started: {exc}") from exc
            finally:
                log.close()
            self._children[proc.pid] = proc
            reaper = threading.Thread(
                target=self._reaper, args=(proc,), name=f"tensorboard-{proc.pid}", daemon=True
            )
            reaper.start()
            return self._record_and_wait(proc, port, wait_s)

    def _record_and_wait(
        self, proc: subprocess.Popen[bytes], port: int, wait_s: float
    ) -> TensorBoardInfo:
        recorded = False
        try:
            info = TensorBoardInfo(
                pid=proc.pid,
                pgid=proc.pid,
                create_time=psutil.Process(proc.pid).create_time(),
                host=HOST,
                port=port,
                logdir=str(self.store.root),
                started=time.time(),
            )
            self.store.write_tensorboard_info(info)
            recorded = True
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if answers_http(port, timeout=1.0):
                    return info
                time.sleep(0.3)
            failure = f"TensorBoard did not start on port {port}: {self._log_tail()}"
            failure += f" (full log: {self.store.tensorboard_log})"
        except Exception as exc:  # noqa: BLE001 - whatever fails, the child is not left behind
            failure = self._record_failure(exc) if not recorded else f"TensorBoard failed: {exc}"
        except BaseException:
            # Interrupted (a Streamlit rerun, Ctrl-C): a recorded instance stays found and
            # stoppable; an unrecorded one could never be found again, so it goes.
            if not recorded:
                self._end_child(proc)
            raise
        self._end_child(proc)
        if recorded:
            self._forget()
        raise TensorBoardError(failure)

    def _record_failure(self, exc: BaseException) -> str:
        what = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        return (
            f"TensorBoard could not be recorded in {self.store.tensorboard_json} ({what}), "
            "so it was stopped again rather than left running where nobody could stop it. "
            "Fix that (free disk space, or remove whatever is at that name) and start it again."
        )

    def _claim_log(self) -> BinaryIO | None:
        """``tensorboard.log`` opened for the child's output and locked; None when another
        process holds the lock: a TensorBoard of this runs folder lives (or is starting)."""
        path = self.store.tensorboard_log
        try:
            log = safeio.open_append(path, base=self.store.root)
        except OSError as exc:
            raise TensorBoardError(
                f"cannot open {path.name} for TensorBoard's output "
                f"({safeio.problem(exc, path.name)}): remove it ({path}) and start again"
            ) from exc
        try:
            fcntl.flock(log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.close()
            return None
        except OSError:
            pass  # no locks on this file system: the record alone keeps one instance
        with contextlib.suppress(OSError):  # else appended to: the log only helps a person
            log.truncate(0)
        return log

    def _adopt(self) -> TensorBoardInfo:
        """The lock is held but the record names nobody (it was removed or replaced, or a
        dashboard died between the start and the record): the one TensorBoard process that
        serves this runs folder, by its command line, is recorded again; else an error."""
        root = str(self.store.root)
        found = []
        for proc in psutil.process_iter():
            port = served_port(_command_line(proc), root)
            with contextlib.suppress(psutil.Error):
                if port is not None and os.getpgid(proc.pid) == proc.pid:  # a group we start
                    found.append((proc, port))
        if len(found) == 1:
            proc, port = found[0]
            with contextlib.suppress(psutil.Error, OSError, ValueError):
                info = TensorBoardInfo(
                    pid=proc.pid,
                    pgid=proc.pid,
                    create_time=proc.create_time(),
                    host=HOST,
                    port=port,
                    logdir=root,
                    started=proc.create_time(),
                )
                self.store.write_tensorboard_info(info)
                return info
        who = f" (pid {', '.join(str(p.pid) for p, _ in found)})" if found else ""
        raise TensorBoardError(
            f"another TensorBoard of this runs folder{who} holds {self.store.tensorboard_log.name}"
            f" but could not be recorded in {self.store.tensorboard_json.name}; another "
            "dashboard may be starting it: wait a moment, or stop it by its pid, and start again."
        )

    # -- stopping ------------------------------------------------------------------------------

    def stop(self) -> Stopped:
        """Stop the recorded instance (its process group) through the identity check."""
        with self._lock:
            state = self.state()  # the record checked: identity, command line, the file
            if state.info is None:
                return Stopped(False, state.problem or "TensorBoard is not running.")
            return self._stop(state.info)

    def _stop(self, info: TensorBoardInfo) -> Stopped:
        sent = send(info.pid, info.pgid, info.create_time, signal.SIGTERM)
        if sent.refused:
            return Stopped(False, f"TensorBoard not stopped: {sent.reason}")
        if not self._wait_gone(info, STOP_GRACE_S):
            send(info.pid, info.pgid, info.create_time, signal.SIGKILL)
            self._wait_gone(info, STOP_GRACE_S)
        self._forget()
        return Stopped(True, f"TensorBoard (pid {info.pid}) stopped.")

    def _wait_gone(self, info: TensorBoardInfo, timeout: float) -> bool:
        """Wait until the recorded process has ended (reaped, when it is our child)."""
        child = self._children.get(info.pid)
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._children.pop(info.pid, None)
            return True
        deadline = time.monotonic() + timeout
        while identify(info.pid, info.create_time) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _end_child(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill a child this call started (its whole group) and wait for it: no zombie."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # our own child, not yet reaped: its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.returncode is not None:
            self._children.pop(proc.pid, None)

    # -- helpers -------------------------------------------------------------------------------

    def _reap(self) -> None:
        """Forget every child of ours that has exited (``poll`` reaps it, if its reaper
        thread has not yet)."""
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                self._children.pop(pid, None)

    def _reaper(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for one child until it exits, so it is reaped the moment it dies (killed,
        crashed, out of disk), whether or not anyone looks at the page again."""
        with contextlib.suppress(Exception):
            proc.wait()
        self._children.pop(proc.pid, None)

    def _record_file_problem(self) -> str:
        """A sentence when ``tensorboard.json`` is there but not a regular file."""
        path = self.store.tensorboard_json
        try:
            safeio.check_file(path, base=self.store.root)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            if not isinstance(exc, safeio.UnsafeFileError):
                return ""  # unreadable for now (permissions): the record is simply unknown
            return (
                f"{path.name} {exc.reason}, so the dashboard cannot record a TensorBoard "
                f"there: remove it ({path}) and start TensorBoard again."
            )
        return ""

    def _not_ours(self, info: TensorBoardInfo, cmd: list[str]) -> str:
        shown = shlex.join(cmd)[:120] if cmd else "its command cannot be read"
        return (
            f"{self.store.tensorboard_json.name} names pid {info.pid} ({shown}), which is "
            "not a TensorBoard this dashboard started for this runs folder: it is not "
            "signalled and no link goes to it."
        )

    def _forget(self) -> None:
        with contextlib.suppress(OSError):
            self.store.clear_tensorboard_info()

    def _log_tail(self, n: int = 800) -> str:
        """The end of tensorboard.log for an error message: its last bytes only, read through
        ``runstore.safeio`` (a FIFO planted there must not hang the page, nor a link to
        /dev/zero be read without end); a refusal is said instead."""
        path = self.store.tensorboard_log
        try:
            raw = safeio.read_tail(path, limit=4 * n, base=self.store.root)
        except FileNotFoundError:
            return "(no log)"
        except OSError as exc:
            return f"({safeio.problem(exc, path.name)})"[:n]
        return raw.decode("utf-8", errors="replace")[-n:].strip() or "(empty log)"
