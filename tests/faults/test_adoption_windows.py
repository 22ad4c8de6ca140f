"""Regressions found by the runner-kill loop, each pinned to its exact window.

The loop kills at random; these tests put the folder into the state a kill in one window
leaves (the runner's own documents written by hand, the way the killed runner wrote them) and
start a real runner on it.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from runner.supervisor import Supervisor
from runstore import RunState

from ..conftest import ROOT, Runs, cartpole, wait_for

pytestmark = pytest.mark.faults


def _starting_without_pid(runs: Runs, text: str) -> str:
    """A run as a runner leaves it when killed after writing "starting", before the spawn."""
    path = runs.submit(text, "run.yaml")
    record = runs.store.accept(path, runs.store.read_queue_file(path))
    record.attempts = 1
    record.started_at = time.time()
    record.state = RunState.STARTING
    record.record("starting", "spawning the training process")
    runs.store.write_run(record)
    return record.id


def test_killed_before_the_spawn_is_queued_again_not_lost(runs: Runs):
    """No process ever existed, so the run is not "lost": it goes back to the queue."""
    run_id = _starting_without_pid(runs, cartpole(steps=300, ckpt=100))
    runs.runner()
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.LOST, RunState.FAILED)
    assert record.state == RunState.COMPLETED, record.reason
    assert record.attempts == 1
    assert [e.kind for e in record.events].count("spawned") == 1


def test_trainer_that_finished_while_no_runner_watched_keeps_its_outcome(runs: Runs):
    """Killed after the spawn, before the pid was recorded; the trainer then completed alone."""
    run_id = _starting_without_pid(runs, cartpole(steps=300, ckpt=100))
    trainer = subprocess.run(
        [sys.executable, "-m", "training", str(runs.store.paths(run_id).dir)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert trainer.returncode == 0, trainer.stderr[-2000:]
    runs.runner()
    record = runs.wait_state(run_id, *[s for s in RunState if s.is_ended])
    assert record.state == RunState.COMPLETED, record.reason
    assert record.attempts == 1


def test_adoption_leaves_a_live_trainers_temp_files_alone(runs: Runs):
    """``.status.json.*.tmp`` of a live run is the trainer's write in flight; deleting it made
    the trainer's ``os.replace`` fail and the run end ``failed``."""
    runner = runs.runner()
    runs.submit(cartpole(steps=200_000, ckpt=100_000), "long.yaml")
    run_id = runs.only_run()
    runs.wait_steps(run_id, 100)
    runner.kill()
    in_flight = runs.store.paths(run_id).dir / ".status.json.abc123.tmp"
    in_flight.write_text("{}")
    runs.runner()
    wait_for(lambda: any(e.kind == "adopted" for e in runs.record(run_id).events), 30, "adoption")
    assert in_flight.exists()
    assert runs.record(run_id).state == RunState.RUNNING


def test_a_new_attempt_does_not_carry_the_previous_pid(runs: Runs, monkeypatch):
    """While a resumed run is spawning, run.json must not name the last attempt's process."""
    from runner import process

    path = runs.submit(cartpole(steps=300), "run.yaml")
    record = runs.store.accept(path, runs.store.read_queue_file(path))
    record.pid, record.pgid, record.create_time = 999_999, 999_999, 1.0
    runs.store.write_run(record)
    seen = {}

    def spawn(run_dir, *args, **kwargs):
        seen["pid"] = runs.store.read_run(record.id).pid
        raise OSError("no spawn in this test")

    monkeypatch.setattr(process, "spawn_trainer", spawn)
    Supervisor(runs.store).launch(runs.store.read_run(record.id))
    assert seen == {"pid": None}
