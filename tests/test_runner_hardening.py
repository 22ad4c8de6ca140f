"""The runner under abuse of its own files: a damaged run.json, request floods, queue files
from the future and a runs folder it cannot write. Real runner, real CartPole trainers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from runner import process
from runstore import RunState, checkpoints

from .conftest import ROOT, Runs, cartpole, wait_for

MAX_HEARTBEAT_AGE = 5.0


def _valid_run(runs: Runs, run_id: str):
    """run.json parsed, or None while it is damaged."""
    return runs.store.read_run(run_id)


def _advancing(runs: Runs, run_id: str, by: int = 300, timeout: float = 60) -> None:
    """The trainer is alive and its timesteps keep increasing."""
    start = runs.status(run_id).timesteps
    wait_for(
        lambda: (s := runs.status(run_id)) is not None and s.timesteps >= start + by,
        timeout,
        f"{run_id} to train on past {start + by} steps",
    )


def test_a_damaged_run_json_leaves_the_trainer_alone_and_is_rewritten(runs: Runs):
    runner = runs.runner("--poll", "0.2")
    runs.submit(cartpole(steps=10_000_000, ckpt=500), "long.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.RUNNING, timeout=120)
    runs.wait_steps(run_id, 200)
    record = runs.record(run_id)
    pid, create_time = record.pid, record.create_time
    run_json = runs.store.paths(run_id).run_json

    # 1. an incomplete JSON object written over it (not atomically, as an editor might)
    run_json.write_bytes(b'{"id": ')
    wait_for(lambda: _valid_run(runs, run_id), 10, "run.json to be rewritten by the runner")
    assert process.identify(pid, create_time) is not None, "the trainer was killed"
    _advancing(runs, run_id)
    record = runs.record(run_id)
    assert record.state == RunState.RUNNING and record.pid == pid
    damaged = [e for e in record.events if e.kind == "run-json-damaged"]
    assert len(damaged) == 1, damaged
    assert runner.output().count("run.json is unreadable") == 1

    # 2. unreadable as a file (EISDIR; chmod cannot keep root out): a folder in its place
    run_json.unlink()
    run_json.mkdir()
    time.sleep(3)
    assert process.identify(pid, create_time) is not None, "the trainer was killed"
    _advancing(runs, run_id)
    assert runner.output().count("run.json is unreadable") == 2  # once per episode of damage
    run_json.rmdir()  # missing now, the folder still there: not a deleted run either
    wait_for(lambda: _valid_run(runs, run_id), 10, "run.json to be rewritten by the runner")
    assert process.identify(pid, create_time) is not None, "the trainer was killed"

    # 3. a valid document from someone else that contradicts the live process
    stale = runs.record(run_id).model_copy(update={"state": RunState.COMPLETED})
    run_json.write_text(json.dumps(stale.model_dump(mode="json")))
    wait_for(
        lambda: (r := _valid_run(runs, run_id)) and r.state == RunState.RUNNING,
        10,
        "the runner to put back the state it knows",
    )

    # stop and pause still work on the run
    runs.store.write_request(run_id, "pause", source="test")
    runs.wait_state(run_id, RunState.PAUSED, timeout=30)
    runs.store.write_request(run_id, "stop", source="test")
    final = runs.wait_state(run_id, RunState.STOPPED, RunState.FAILED, timeout=120)
    assert final.state == RunState.STOPPED, final.reason
    status = runs.status(run_id)
    ckpt, _ = checkpoints.latest_complete(runs.store.paths(run_id).checkpoints)
    assert ckpt is not None and ckpt.step == status.timesteps
    assert "step failed" not in runner.output() and "Traceback" not in runner.output()


def test_a_run_json_damaged_across_a_runner_restart_is_adopted_once_fixed(runs: Runs):
    """A new runner that never read the run cannot repair it: it leaves the trainer alone
    and, once the file is put back, adopts the run, so stop works again."""
    first = runs.runner("--poll", "0.2")
    runs.submit(cartpole(steps=10_000_000, ckpt=500), "long.yaml")
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.RUNNING, timeout=120)
    pid, create_time = record.pid, record.create_time
    run_json = runs.store.paths(run_id).run_json
    first.kill()
    good = run_json.read_bytes()
    run_json.write_bytes(b'{"id": ')
    second = runs.runner("--poll", "0.2")
    runs.wait_steps(run_id, runs.status(run_id).timesteps + 300)  # trains on, unsupervised
    assert process.identify(pid, create_time) is not None, "the trainer was killed"
    assert runs.store.read_run(run_id) is None  # nothing to repair it from: left as it is
    assert second.output().count("has no copy of it") == 1
    run_json.write_bytes(good)
    wait_for(
        lambda: any(e.kind == "adopted" for e in runs.record(run_id).events[-3:]),
        10,
        "the runner to adopt the run once its run.json is back",
    )
    runs.store.write_request(run_id, "stop", source="test")
    final = runs.wait_state(run_id, RunState.STOPPED, RunState.FAILED, timeout=120)
    assert final.state == RunState.STOPPED, final.reason
    assert "step failed" not in second.output()


def _flood(runs: Runs, run_id: str, action: str, n: int) -> None:
    """``n`` request files moved into requests/ at once (renames: the flood lands faster
    than the runner can drain it)."""
    run = runs.store.paths(run_id)
    staging = run.dir / ".flood"
    staging.mkdir()
    base = time.time_ns()
    for i in range(n):
        doc = {"action": action, "at": time.time(), "source": "flood", "params": {}}
        (staging / f"{base + i}-{action}.json").write_text(json.dumps(doc))
    for path in sorted(staging.iterdir()):
        os.rename(path, run.requests / path.name)
    staging.rmdir()


def _heartbeat_age(runs: Runs) -> float:
    info = runs.store.read_runner_info()
    assert info is not None
    return time.time() - info.heartbeat_at


def test_a_request_flood_is_coalesced_and_the_runner_stays_responsive(runs: Runs):
    runner = runs.runner("--poll", "0.5")
    runs.submit(cartpole(steps=300, ckpt=100), "done.yaml")
    done = runs.only_run()
    runs.wait_state(done, RunState.COMPLETED, timeout=120)
    size_before = runs.store.paths(done).run_json.stat().st_size

    _flood(runs, done, "pause", 3000)
    runs.submit(cartpole(steps=300, ckpt=100, extra="name: during\n"), "during.yaml")
    requests = runs.store.paths(done).requests
    worst = 0.0
    while any(requests.iterdir()):  # sample the heartbeat while the flood drains
        age = _heartbeat_age(runs)
        worst = max(worst, age)
        assert age <= MAX_HEARTBEAT_AGE, f"runner.json heartbeat {age:.1f} s old mid-flood"
        time.sleep(0.05)
    assert runner.proc.poll() is None
    # the queue file dropped during the flood was taken (and ran)
    ids = wait_for(lambda: len(runs.store.run_ids()) == 2 and runs.store.run_ids(), 30)
    during = next(i for i in ids if i != done)
    runs.wait_state(during, RunState.COMPLETED, timeout=120)

    record = runs.record(done)
    assert record.state == RunState.COMPLETED
    ignored = [e for e in record.events if e.kind == "request-ignored"]
    assert len(ignored) == 1, [e.detail for e in ignored]
    assert ignored[0].count == 3000 and "3000" in ignored[0].detail
    assert runs.store.paths(done).run_json.stat().st_size < size_before + 1024
    assert "step failed" not in runner.output()
    print(f"worst heartbeat age during the flood: {worst:.2f} s")


def test_a_bad_queue_file_from_the_future_is_still_rejected(runs: Runs):
    runs.runner("--poll", "0.2")
    path = runs.submit("algo: ppo\nenv: CartPole-v1\nn_timesteps: [\n", "future.yaml")
    future = time.time() + 3600
    os.utime(path, (future, future))
    moved = runs.store.rejected_dir / "future.yaml"  # moved there after its note is written
    wait_for(moved.exists, 10, "the bad file to be rejected")
    note = runs.store.rejected_dir / "future.yaml.error.txt"
    assert "was not started" in note.read_text()


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args, "--runs-dir", str(root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_an_unwritable_runs_folder_is_one_clear_line_not_a_traceback(runs: Runs):
    """Root ignores file modes, so the runs folder is made unwritable the way root also
    meets it: files and folders in the way of what the runner must create."""
    path = runs.submit(cartpole(steps=300), "x.yaml")
    record = runs.store.accept(path, runs.store.read_queue_file(path))
    root = runs.store.root
    lock = runs.store.lock_path
    requests = runs.store.paths(record.id).requests
    requests.rmdir()
    if os.geteuid() == 0:
        lock.mkdir()  # open(.runner.lock) fails: EISDIR
        requests.write_text("in the way")  # mkstemp in requests/ fails: ENOTDIR
    os.chmod(root, 0o555)
    os.chmod(root / record.id, 0o555)
    try:
        supervise = _cli(root)
        resume = _cli(root, "resume", record.id)
    finally:
        os.chmod(root, 0o755)
        os.chmod(root / record.id, 0o755)
    for result in (supervise, resume):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, result.stderr
        assert str(root) in lines[0], lines[0]


def test_a_run_json_written_right_after_the_runners_own_write_is_not_taken_for_its_own(
    tmp_path: Path, monkeypatch
):
    """The race the loaded suite found: someone writes run.json between the runner's write and
    the runner noting the file's stamp. The runner must remember the stamp of what *it* wrote,
    so the other document is looked at (and, contradicting the live process, put right)."""
    from runner.process import Handle
    from runner.supervisor import Supervisor
    from runstore import RunStore

    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    path = store.submit(cartpole(), "r.yaml")
    record = store.accept(path, store.read_queue_file(path))
    me = psutil.Process()
    record.state, record.pid, record.create_time = RunState.RUNNING, me.pid, me.create_time()
    supervisor = Supervisor(store)
    supervisor.handles[record.id] = Handle(me.pid, os.getpgrp(), me.create_time())
    supervisor._write_run(record)
    assert supervisor._read_run(record.id).state == RunState.RUNNING

    foreign = record.model_copy(update={"state": RunState.COMPLETED})
    write_run = store.write_run

    def write_then_someone_else_writes(rec):  # the other writer wins the race by a hair
        stamp = write_run(rec)
        time.sleep(0.01)  # a different mtime for the other document
        write_run(foreign)
        return stamp

    monkeypatch.setattr(store, "write_run", write_then_someone_else_writes)
    record.record("note", "the runner writes")
    supervisor._write_run(record)
    monkeypatch.setattr(store, "write_run", write_run)
    seen = supervisor._read_run(record.id)
    assert seen.state == RunState.RUNNING  # the runner's copy, not the foreign document
    assert [e.kind for e in seen.events][-1] == "run-json-replaced"
