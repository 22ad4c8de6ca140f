"""Signals reach only the processes the runner recorded, identified by (pid, create time).

A run.json can name processes that are not ours: a folder copied from another host, a pid
reused after a reboot, a record without a create time. Each test here starts real foreign
process groups (``sleep 1000`` in a new session), writes run.json records that name them the
way such a folder would look, drives a real runner (``python -m runner``) through adoption,
delete, stop, pause, resume and media-job clean-up, and checks the foreign processes are alive
and not stopped afterwards, and that the run (or, for a deleted run, the runner's log) says why
nothing was signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runner import process
from runstore import RunRecord, RunState, RunStore
from runstore.models import MediaJob

from .conftest import Runs, cartpole, wait_for


class Foreign:
    """A process group this test started that the runner must never signal."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        self.pid = self.popen.pid
        self.create_time = psutil.Process(self.pid).create_time()

    def alive(self) -> bool:
        """Running and not stopped (a SIGSTOP to it would be as wrong as a SIGKILL)."""
        if self.popen.poll() is not None:
            return False
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.pid).status() not in (
                psutil.STATUS_STOPPED,
                psutil.STATUS_ZOMBIE,
            )
        return False

    def describe(self) -> str:
        code = self.popen.poll()
        if code is not None:
            return f"pid {self.pid} ended ({process.signal_name(code) or code})"
        return f"pid {self.pid} is {psutil.Process(self.pid).status()}"

    def end(self) -> None:
        """Kill it by its own group, which we own: we are its parent and have not reaped it."""
        if self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


@pytest.fixture
def foreign() -> Iterator[list[Foreign]]:
    """Foreign process groups, ended (by their own pgid) however the test ends."""
    started: list[Foreign] = []
    try:
        yield started
    finally:
        for group in started:
            group.end()


def dead_pid() -> int:
    """A pid that existed a moment ago and is gone now."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def place_run(
    store: RunStore,
    elsewhere: Path,
    state: RunState,
    pid: int | None,
    pgid: int | None,
    create_time: float | None,
    media: MediaJob | None = None,
    name: str = "copied",
) -> str:
    """A run folder made by another store (another host), moved in by one rename, as a copied
    folder arrives: a live runner never sees it half-made or queued."""
    other = RunStore(elsewhere)
    other.ensure_layout()
    path = elsewhere / f"{name}.yaml"
    path.write_text(cartpole(extra=f"name: {name}\n"))
    record = other.accept(path, other.read_queue_file(path))
    assert record is not None
    record.state = state
    record.record(state.value, "on another host")
    record.started_at = time.time() - 60
    record.attempts = 1
    record.pid, record.pgid, record.create_time = pid, pgid, create_time
    record.media_job = media
    other.write_run(record)
    os.rename(other.paths(record.id).dir, store.root / record.id)
    shutil.rmtree(elsewhere, ignore_errors=True)
    return record.id


def refusals(record: RunRecord) -> list[str]:
    return [e.detail for e in record.events if e.kind == "signal-refused"]


IDENTITY_FAULTS = ("reused-pid", "foreign-pgid", "no-create-time", "before-boot")


def naming(fault: str, group: Foreign) -> tuple[int, int, float | None]:
    """The (pid, pgid, create_time) a run.json with this fault records for a foreign group."""
    if fault == "reused-pid":  # the pid came back to a process started at another time
        return group.pid, group.pid, group.create_time - 3600.0
    if fault == "foreign-pgid":  # our trainer is gone; its group number is someone else's
        return dead_pid(), group.pid, time.time() - 60
    if fault == "no-create-time":
        return group.pid, group.pid, None
    if fault == "before-boot":  # written before this machine last booted (or elsewhere)
        return group.pid, group.pid, psutil.boot_time() - 86_400.0
    raise ValueError(fault)


@pytest.mark.parametrize("fault", IDENTITY_FAULTS)
def test_adoption_leaves_a_foreign_group_alive(runs: Runs, foreign, tmp_path: Path, fault: str):
    """A live run naming a foreign group, found by a starting runner: the run ends (its
    process is not there) and the group that took its numbers is left alone."""
    group = Foreign()
    foreign.append(group)
    pid, pgid, create_time = naming(fault, group)
    run_id = place_run(runs.store, tmp_path / "elsewhere", RunState.RUNNING, pid, pgid, create_time)
    runs.runner()
    record = runs.wait_state(run_id, RunState.LOST, RunState.FAILED, timeout=30)
    time.sleep(0.5)
    assert group.alive(), group.describe()
    assert refusals(record), [e.kind for e in record.events]


def test_requests_on_a_copied_folder_leave_foreign_groups_alive(
    runs: Runs, foreign, tmp_path: Path
):
    """A folder copied in while the runner runs, naming a foreign trainer group and a foreign
    media job: pause, resume, stop and delete signal neither."""
    trainer, job = Foreign(), Foreign()
    foreign.extend([trainer, job])
    runner = runs.runner("--poll", "0.2")
    media = MediaJob(
        action="record",
        pid=job.pid,
        pgid=job.pid,
        create_time=job.create_time + 5.37,  # a reused pid: another start, to the tick
        started_at=time.time(),
    )
    run_id = place_run(
        runs.store,
        tmp_path / "elsewhere",
        RunState.RUNNING,
        trainer.pid,
        trainer.pid,
        trainer.create_time - 7.43,
        media=media,
    )
    for action in ("pause", "resume", "stop"):
        request = runs.store.write_request(run_id, action, source="test")
        wait_for(lambda r=request: not r.exists(), 15, f"the {action} request to be handled")
        assert trainer.alive() and job.alive(), (action, trainer.describe(), job.describe())
    runs.store.write_request(run_id, "delete", source="test")
    wait_for(lambda: run_id not in runs.store.run_ids(), 15, "the run to be deleted")
    time.sleep(0.5)
    assert trainer.alive(), trainer.describe()
    assert job.alive(), job.describe()
    log = runner.output()
    assert f"pid {trainer.pid}" in log and "not signalled" in log, log[-3000:]
    assert f"pid {job.pid}" in log, log[-3000:]


def test_an_adopted_trainer_is_signalled_in_its_own_group_only(runs: Runs, foreign, tmp_path: Path):
    """run.json names a live process of ours by (pid, create time) but a foreign group as its
    pgid: pause, resume and stop reach our process, never the foreign group, and the run's
    end does not sweep that group either."""
    ours, group = Foreign(), Foreign()  # ``ours`` plays a trainer: its identity is recorded
    foreign.extend([ours, group])
    run_id = place_run(
        runs.store, tmp_path / "elsewhere", RunState.RUNNING, ours.pid, group.pid, ours.create_time
    )
    runs.runner("--poll", "0.2")
    wait_for(lambda: any(e.kind == "adopted" for e in runs.record(run_id).events), 15, "adoption")
    record = runs.record(run_id)
    assert record.pgid == ours.pid  # the group it really leads, and run.json says so
    assert any(f"group {group.pid}" in r for r in refusals(record)), record.events

    runs.store.write_request(run_id, "pause", source="test")
    runs.wait_state(run_id, RunState.PAUSED, timeout=15)
    assert psutil.Process(ours.pid).status() == psutil.STATUS_STOPPED
    time.sleep(0.5)
    assert group.alive(), group.describe()

    runs.store.write_request(run_id, "resume", source="test")
    runs.wait_state(run_id, RunState.RUNNING, timeout=15)
    assert ours.alive()

    runs.store.write_request(run_id, "stop", source="test")  # sleep ends on SIGTERM
    runs.wait_state(run_id, RunState.STOPPED, RunState.LOST, RunState.FAILED, timeout=30)
    assert ours.popen.wait(timeout=10) == -signal.SIGTERM
    time.sleep(0.5)
    assert group.alive(), group.describe()


def test_media_job_clean_up_leaves_a_foreign_group_alive(runs: Runs, foreign, tmp_path: Path):
    """An adopted media job that names a foreign pgid: when the job ends, the clean-up of its
    group (stray children) does not reach the foreign group; run.json says why."""
    job, group = Foreign(), Foreign()
    foreign.extend([job, group])
    media = MediaJob(
        action="timelapse",
        pid=job.pid,
        pgid=group.pid,
        create_time=job.create_time,
        started_at=time.time(),
    )
    run_id = place_run(
        runs.store, tmp_path / "elsewhere", RunState.COMPLETED, None, None, None, media=media
    )
    runs.runner("--poll", "0.2")
    time.sleep(1.0)  # adopted (a live job with its identity) and watched
    assert runs.record(run_id).media_job is not None
    job.end()  # the job ends: the runner cleans up what it left in its group
    wait_for(lambda: runs.record(run_id).media_job is None, 15, "the job's end to be noted")
    time.sleep(0.5)
    assert group.alive(), group.describe()
    assert refusals(runs.record(run_id)), [e.kind for e in runs.record(run_id).events]


def _busy_group(n: int) -> subprocess.Popen:
    """A process group of ``n`` busy processes (a leader and its children), more than the
    cores it competes for, so some are runnable but not running when a signal arrives."""
    code = (
        "import os, subprocess, sys\n"
        "busy = [sys.executable, '-c', 'while True: pass']\n"
        f"kids = [subprocess.Popen(busy) for _ in range({n - 1})]\n"
        "while True: pass\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_suspend_returns_once_every_process_of_the_group_is_stopped():
    """SIGSTOP acts when the process next runs; under load that is later than ``killpg``
    returns. ``suspend`` must not report a pause before the kernel shows every member
    stopped, so "paused" in run.json is the truth."""
    leader = _busy_group(2 * (os.cpu_count() or 1) + 2)
    try:
        handle = process.Handle(leader.pid, leader.pid, psutil.Process(leader.pid).create_time())
        wait_for(lambda: len(process.group_members(leader.pid)) >= 4, 20, "the busy children")
        members = process.group_members(leader.pid)
        time.sleep(0.3)
        for _ in range(20):
            result = process.suspend(handle)
            statuses = {p.pid: p.status() for p in members}  # read at once, as a poller would
            assert result, result
            assert set(statuses.values()) == {psutil.STATUS_STOPPED}, statuses
            assert process.resume(handle)
            time.sleep(0.05)
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)


def test_a_record_without_create_time_is_never_signalled(foreign):
    """The one function every signal goes through refuses without an identity."""
    group = Foreign()
    foreign.append(group)
    for create_time in (None, 0.0):
        sent = process.send(group.pid, group.pid, create_time, signal.SIGSTOP)
        assert not sent and "create time" in sent.reason
    assert group.alive()
    stale = process.send(group.pid, group.pid, group.create_time - 10.61, signal.SIGKILL)
    assert not stale and f"pid {group.pid}" in stale.reason
    assert group.alive()
    ok = process.send(group.pid, group.pid, group.create_time, signal.SIGCONT)
    assert ok and ok.count == 1


def test_a_wall_clock_adjustment_does_not_make_our_process_a_stranger(foreign):
    """psutil adds the kernel's boot time (whole seconds, read at each call) to a process's
    start in clock ticks; when the wall clock is adjusted, one process reads a create time off
    by whole seconds. The loaded suite saw pause refused as "pid is now another process" for
    exactly that. Such a reading is still ours; a start on another tick is not."""
    group = Foreign()
    foreign.append(group)
    for shift in (1.0, -1.0, 2.0, 59.0):  # what a clock step does to the recorded time
        assert process.same_start(group.create_time + shift, group.create_time)
        sent = process.send(group.pid, group.pid, group.create_time + shift, signal.SIGCONT)
        assert sent and sent.count == 1, sent.reason
    for shift in (0.5, 1.37, -7.43, 3600.0):  # another start: a reused pid
        assert not process.same_start(group.create_time + shift, group.create_time)
        assert not process.send(group.pid, group.pid, group.create_time + shift, signal.SIGKILL)
    assert group.alive()
