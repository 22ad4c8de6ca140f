"""TensorBoard beside the dashboard: one ``tensorboard --logdir <runs folder>`` per runs folder,
started on request, found again by any session (and by a restarted dashboard), stopped on
request.

The record of the running instance is ``tensorboard.json`` in the runs folder (through
``runstore``). A recorded instance counts only while a process with the recorded pid *and*
create time lives, so a recycled pid is never taken for it (or killed). TensorBoard runs in its
own process group and is stopped by signalling the group: SIGTERM, then SIGKILL after a grace.
It serves on 127.0.0.1 only, as TensorBoard does by default: it has no access control.
No Streamlit here; the Compare page holds one ``TensorBoardLauncher`` per runs folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import psutil

from runstore import safeio
from runstore.models import TensorBoardInfo
from runstore.store import RunStore

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _same_process(info: TensorBoardInfo) -> psutil.Process | None:
    try:
        proc = psutil.Process(info.pid)
        if abs(proc.create_time() - info.create_time) > 0.05:
            return None  # the pid was recycled: not our TensorBoard
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def answers_http(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    """Whether something answers an HTTP GET on the port (TensorBoard's front page)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as resp:
            return 200 <= resp.status < 500
    except OSError:
        return False


class TensorBoardLauncher:
    """Start, find and stop the one TensorBoard of a runs folder."""

    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # reaped after a stop

    def running(self) -> TensorBoardInfo | None:
        """The live TensorBoard of this runs folder, or None (a stale record is removed)."""
        info = self.store.read_tensorboard_info()
        if info is None:
            return None
        if _same_process(info) is None:
            self.store.clear_tensorboard_info()
            return None
        return info

    def url(self, info: TensorBoardInfo) -> str:
        return f"http://{info.host}:{info.port}/"

    def start(self, wait_s: float = 60.0) -> TensorBoardInfo:
        """The running instance, or a new one once it answers HTTP.

        :raises RuntimeError: when TensorBoard exits or does not answer within ``wait_s``;
            the message carries the end of its log.
        """
        with self._lock:
            found = self.running()
            if found is not None:
                return found
            self.store.root.mkdir(parents=True, exist_ok=True)
            port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(self.store.root),
                "--host",
                HOST,
                "--port",
                str(port),
            ]
            log = open(self.store.tensorboard_log, "wb")  # noqa: SIM115 (child keeps it)
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stopped as a group
                )
            finally:
                log.close()
            self._children[proc.pid] = proc
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
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if answers_http(port, timeout=1.0):
                    return info
                time.sleep(0.3)
            self._stop(info)
            raise RuntimeError(
                f"TensorBoard did not start on port {port}: {self._log_tail()}"
                f" (full log: {self.store.tensorboard_log})"
            )

    def stop(self) -> bool:
        """Stop the running instance (its whole process group). False when none was running."""
        with self._lock:
            info = self.running()
            if info is None:
                return False
            self._stop(info)
            return True

    def _stop(self, info: TensorBoardInfo) -> None:
        proc = _same_process(info)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pgid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except psutil.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(info.pgid, signal.SIGKILL)
                with contextlib.suppress(psutil.TimeoutExpired):
                    proc.wait(STOP_GRACE_S)
        child = self._children.pop(info.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1.0)  # reap it, so no zombie stays behind in the dashboard
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
