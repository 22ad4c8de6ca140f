"""The TensorBoard launcher when something fails (issue 20, item 5), on real TensorBoard
processes and a real runs folder: at most one instance per runs folder whatever fails, every
child reaped, the "Open" link always to the loopback address the launcher bound, and Stop
through the same identity check as the runner's signals (``machine.processes.send``). Also
the runs folder's key read without blocking (a FIFO at ``runs/.secret``).

Every TensorBoard a test starts is ended by its pid (its own process group) in the fixture.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.tensorboard_launcher import HOST, TensorBoardLauncher, answers_http
from runstore.models import TensorBoardInfo
from runstore.store import RunStore
from tests.conftest import ROOT

# TensorBoard imports slowly on a loaded machine: generous, and never a tight timing.
START_WAIT_S = 180.0


def _tensorboards(root: Path) -> list[psutil.Process]:
    """Live (not zombie) TensorBoard processes of this test process serving ``root``."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
            live = proc.status() != psutil.STATUS_ZOMBIE
            if live and "tensorboard.main" in cmd and str(root) in cmd:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _reaped(pid: int) -> bool:
    """The pid is gone from the process table: dead *and* waited for (no zombie)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_DEAD
    except psutil.NoSuchProcess:
        return True


def _wait_until(what, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.2)
    return bool(what())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    rs = RunStore(tmp_path / "runs")
    rs.ensure_layout()
    yield rs
    for proc in _tensorboards(rs.root):  # what a failing test left: ended by pid
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        with contextlib.suppress(psutil.TimeoutExpired):
            proc.wait(10)  # reaps our own child


def test_a_folder_at_tensorboard_json_refuses_start_and_leaves_no_server(store: RunStore):
    """Before: IsADirectoryError escaped (the page catches RuntimeError), and every click left
    a live, unrecorded TensorBoard. Now: a clear error naming the file and the fix, no server."""
    store.tensorboard_json.mkdir()
    tb = TensorBoardLauncher(store)
    for _ in range(3):  # three clicks on Start
        with pytest.raises(RuntimeError) as err:
            tb.start(wait_s=START_WAIT_S)
        text = str(err.value)
        assert "tensorboard.json" in text and "directory" in text, text
        assert "remove it" in text, text
    assert _tensorboards(store.root) == []
    assert tb.running() is None
    state = tb.state()
    assert "tensorboard.json" in state.problem and "directory" in state.problem
    stopped = tb.stop()
    assert not stopped and "tensorboard.json" in stopped.message


def test_a_fifo_at_tensorboard_log_refuses_start_without_blocking(store: RunStore):
    """TensorBoard's output file as a FIFO: opening it for writing must not block the page
    (it is opened non-blocking and refused), and nothing is started."""
    os.mkfifo(store.tensorboard_log)
    with pytest.raises(RuntimeError, match=r"tensorboard\.log.*FIFO.*remove it"):
        TensorBoardLauncher(store).start(wait_s=START_WAIT_S)
    assert _tensorboards(store.root) == []


@pytest.mark.timeout(900)
def test_a_failure_after_the_start_ends_that_child_and_a_later_start_makes_one(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
):
    """A full disk when the record is written: before, the OSError escaped and the server
    ran on unrecorded (three clicks, three servers). Now each started child is killed and
    reaped (checked by its pid), and once the disk is back one Start makes exactly one."""
    tb = TensorBoardLauncher(store)
    started: list[int] = []
    real_write = store.write_tensorboard_info

    def full_disk(info: TensorBoardInfo) -> None:
        started.append(info.pid)
        raise OSError(errno.ENOSPC, "No space left on device", str(store.tensorboard_json))

    monkeypatch.setattr(store, "write_tensorboard_info", full_disk)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="No space left on device"):
            tb.start(wait_s=START_WAIT_S)
    assert len(started) == 3
    for pid in started:
        assert _reaped(pid), f"TensorBoard pid {pid} was left running or a zombie"
    assert _tensorboards(store.root) == []
    assert store.read_tensorboard_info() is None

    monkeypatch.setattr(store, "write_tensorboard_info", real_write)
    info = tb.start(wait_s=START_WAIT_S)
    assert tb.start(wait_s=START_WAIT_S) == info  # a second click: the same one
    # A second dashboard (its own launcher) finds the same instance and starts none.
    assert TensorBoardLauncher(RunStore(store.root)).start(wait_s=START_WAIT_S) == info
    assert [p.pid for p in _tensorboards(store.root)] == [info.pid]
    # The record lost (removed by hand, or a dashboard died before writing it): the child
    # still holds tensorboard.log's lock, so a Start records that one again, starts none.
    store.clear_tensorboard_info()
    adopted = TensorBoardLauncher(RunStore(store.root)).start(wait_s=START_WAIT_S)
    assert (adopted.pid, adopted.port) == (info.pid, info.port)
    assert store.read_tensorboard_info() is not None
    assert [p.pid for p in _tensorboards(store.root)] == [info.pid]
    assert tb.stop()
    assert _reaped(info.pid)


@pytest.mark.timeout(600)
def test_the_link_is_loopback_and_a_dead_child_is_reaped(store: RunStore):
    """A record rewritten to another host still links to the loopback address TensorBoard
    was bound to (before: http://evil.example:PORT/); a TensorBoard that dies is reaped
    (before: a zombie stayed in the dashboard's process until Stop)."""
    tb = TensorBoardLauncher(store)
    info = tb.start(wait_s=START_WAIT_S)
    assert answers_http(info.port)
    store.write_tensorboard_info(info.model_copy(update={"host": "evil.example"}))
    shown = tb.running()
    assert shown is not None and shown.pid == info.pid
    assert tb.url(shown) == f"http://{HOST}:{info.port}/"
    at = AppTest.from_function(_panel, args=(str(store.root),), default_timeout=60).run()
    assert not at.exception
    links = [b.proto.url for b in at.get("link_button")]
    assert links == [f"http://{HOST}:{info.port}/"], links

    os.kill(info.pid, signal.SIGKILL)  # TensorBoard dies on its own (OOM, a crash)
    assert _wait_until(lambda: tb.running() is None)
    assert _wait_until(lambda: _reaped(info.pid)), "the dead TensorBoard stayed a zombie"
    assert store.read_tensorboard_info() is None


def _panel(root: str) -> None:
    """The Compare page's TensorBoard panel alone (AppTest runs this as a script)."""
    from dashboard.components.tensorboard import tensorboard_panel

    tensorboard_panel(root)


def test_a_forged_record_is_never_signalled_nor_linked(store: RunStore):
    """tensorboard.json naming another process of this user (a ``sleep`` in its own session)
    with a foreign host: before, the page linked to evil.example and Stop killed the sleep's
    group. Now the record is refused (it is not a TensorBoard of this runs folder), Stop
    signals nothing and says why, and no link leaves the loopback address."""
    sleeper = subprocess.Popen(
        ["sleep", "600"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        forged = TensorBoardInfo(
            pid=sleeper.pid,
            pgid=sleeper.pid,
            create_time=psutil.Process(sleeper.pid).create_time(),
            host="evil.example",
            port=6006,
            logdir=str(store.root),
            started=time.time(),
        )
        store.write_tensorboard_info(forged)
        at = AppTest.from_function(_panel, args=(str(store.root),), default_timeout=60).run()
        assert not at.exception
        assert all(b.proto.url.startswith(f"http://{HOST}:") for b in at.get("link_button"))
        assert "evil.example" not in str(at)
        warnings = " ".join(w.value for w in at.warning)
        assert f"pid {sleeper.pid}" in warnings and "not a TensorBoard" in warnings, warnings

        store.write_tensorboard_info(forged)
        tb = TensorBoardLauncher(store)
        stopped = tb.stop()
        assert not stopped
        assert f"pid {sleeper.pid}" in stopped.message and "not signalled" in stopped.message
        assert sleeper.poll() is None, "Stop signalled a process that is not TensorBoard"
        assert tb.url(forged) == f"http://{HOST}:6006/"
    finally:
        os.killpg(sleeper.pid, signal.SIGKILL)
        sleeper.wait(30)


def test_a_fifo_at_the_secret_fails_fast(tmp_path: Path):
    """runs/.secret as a FIFO: before, opening it blocked forever (no writer), hanging every
    loader of a checkpoint and the Run page's trust check. Now a clear SecretError at once.
    Run in a subprocess with a timeout, so a regression fails instead of hanging the suite."""
    runs = tmp_path / "runs"
    runs.mkdir()
    os.mkfifo(runs / ".secret")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from runstore import trust\n"
        "for create in (False, True):\n"
        "    try:\n"
        "        trust.folder_key(Path(sys.argv[1]), create=create)\n"
        "    except trust.SecretError as exc:\n"
        "        print('REFUSED', exc)\n"
        "    else:\n"
        "        print('ACCEPTED')\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(runs)],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:  # run() killed the child and waited for it
        pytest.fail("reading runs/.secret hung on a FIFO")
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert len(lines) == 2 and all(line.startswith("REFUSED") for line in lines), lines
    assert "FIFO" in lines[0] and ".secret" in lines[0] and "remove it" in lines[0], lines[0]
