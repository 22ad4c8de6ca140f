"""Damage a live run's run.json at random moments; the training must never notice.

One long CartPole run trains while each trial damages its run.json one way — cut short, an
incomplete object, garbage bytes, emptied, deleted, a folder put in its place for a moment,
or a valid document from someone else that says the run ended — sometimes followed at once
by a pause and a resume. After each: the same trainer process is alive and its timesteps go
on, run.json is valid again and says what the runner knows (running, the same pid), and no
JSON file is torn. At the end a stop still ends the run ``stopped`` with a checkpoint at its
last step. A loss is a trainer killed, a run.json not repaired, or a run left stuck.
"""

from __future__ import annotations

import json
import time

import pytest

from runner import process
from runstore import RunState, checkpoints

from ..conftest import Runs, cartpole, wait_for
from .harness import LEDGER, half_written_json, rng, stuck_runs, trials

pytestmark = pytest.mark.faults

KINDS = ["cut", "incomplete object", "garbage", "empty", "deleted", "folder", "says completed"]


def _damage(runs: Runs, run_id: str, kind: str, r) -> None:
    path = runs.store.paths(run_id).run_json
    if kind == "cut":
        data = path.read_bytes()
        path.write_bytes(data[: r.randrange(1, len(data) - 1)])
    elif kind == "incomplete object":
        path.write_bytes(b'{"id": ')
    elif kind == "garbage":
        path.write_bytes(r.randbytes(r.randrange(1, 400)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "deleted":
        path.unlink()
    elif kind == "folder":  # EISDIR on every read and write: unreadable even to root
        path.unlink()
        path.mkdir()
        time.sleep(r.uniform(0.5, 2.5))
        path.rmdir()
    elif kind == "says completed":
        doc = json.loads(path.read_bytes())
        doc["state"], doc["pid"] = "completed", 1
        path.write_text(json.dumps(doc))


def _problems(runs: Runs, run_id: str, pid: int, create_time: float, trial: int) -> list[str]:
    problems = []
    if process.identify(pid, create_time) is None:
        problems.append(f"trial {trial}: the trainer (pid {pid}) was killed")
    record = runs.store.read_run(run_id)
    if record is None:
        problems.append(f"trial {trial}: run.json was not repaired")
    elif record.pid != pid or record.state not in (RunState.RUNNING, RunState.PAUSED):
        problems.append(f"trial {trial}: run.json says {record.state.value}, pid {record.pid}")
    return problems + half_written_json(runs.store.paths(run_id).dir)


def test_damaged_run_json_never_touches_the_training(runs: Runs):
    r = rng("damaged-run-json")
    n = trials(short=len(KINDS), share=0.25)  # every kind once in make test
    runner = runs.runner("--poll", "0.2")
    runs.submit(cartpole(steps=10_000_000, ckpt=1000), "long.yaml")
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.RUNNING, timeout=120)
    pid, create_time = record.pid, record.create_time
    runs.wait_steps(run_id, 100)

    def repaired() -> bool:
        rec = runs.store.read_run(run_id)
        return rec is not None and rec.pid == pid and rec.state == RunState.RUNNING

    for trial in range(n):
        kind = KINDS[trial] if trial < len(KINDS) else r.choice(KINDS)
        before = runs.status(run_id).timesteps
        time.sleep(r.uniform(0, 1.0))
        _damage(runs, run_id, kind, r)
        LEDGER.trials += 1
        LEDGER.fault(f"run.json {kind}")
        if kind not in ("deleted", "folder") and r.random() < 0.4:
            # requests keep working while it is damaged (a request needs run.json to exist)
            runs.store.write_request(run_id, "pause", source="fault")
            runs.wait_state(run_id, RunState.PAUSED, timeout=30)
            runs.store.write_request(run_id, "resume", source="fault")
        try:
            wait_for(repaired, 30, "run.json to be repaired")
            wait_for(
                lambda b=before: (s := runs.status(run_id)) is not None and s.timesteps > b + 64,
                60,
                "the training to go on",
            )
        except AssertionError:
            pass  # counted below
        problems = _problems(runs, run_id, pid, create_time, trial)
        LEDGER.lost(problems)
        assert not problems, problems

    runs.store.write_request(run_id, "stop", source="fault")
    final = runs.wait_state(run_id, RunState.STOPPED, RunState.FAILED, timeout=120)
    problems = [] if final.state == RunState.STOPPED else [f"stop ended {final.state.value}"]
    status = runs.status(run_id)
    ckpt, _ = checkpoints.latest_complete(runs.store.paths(run_id).checkpoints)
    if ckpt is None or ckpt.step != status.timesteps:
        problems.append(f"no checkpoint at the last step {status.timesteps}: {ckpt}")
    problems += stuck_runs(runs.store)
    if "step failed" in runner.output():
        problems.append("a supervisor step failed")
    LEDGER.lost(problems)
    assert not problems, problems
