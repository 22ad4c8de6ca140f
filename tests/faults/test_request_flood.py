"""Request floods: thousands of requests that do nothing, over several ended runs at once,
while a run trains and a queue file waits.

Each trial moves a flood of pause/stop/resume requests (mixed, thousands in all) into the
requests/ folders of several completed runs at once, drops a queue file, and samples
runner.json while the flood drains. A loss is a heartbeat older than 5 s, a run.json that
grew by more than a few hundred bytes per kind of ignored request, an ignored-request count
that does not add up, a request left behind, the queue file not taken, or the training run
disturbed (its trainer changed or its steps stopped).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from runstore import RunState

from ..conftest import Runs, cartpole, wait_for
from .harness import LEDGER, copy_run, half_written_json, rng, stuck_runs, trials

pytestmark = pytest.mark.faults

MAX_HEARTBEAT_AGE = 5.0
ACTIONS = ("pause", "stop", "resume")  # none does anything to a completed run


def flood(runs: Runs, targets: dict[str, list[str]]) -> None:
    """Request files written aside, then renamed into each run's requests/ (so they land
    faster than any runner drains them). ``targets``: run id -> actions, oldest first."""
    staged = []
    for run_id, actions in targets.items():
        run = runs.store.paths(run_id)
        staging = run.dir / ".flood"
        staging.mkdir(exist_ok=True)
        base = time.time_ns()
        for i, action in enumerate(actions):
            doc = {"action": action, "at": time.time(), "source": "flood", "params": {}}
            path = staging / f"{base + i}-{action}.json"
            path.write_text(json.dumps(doc))
            staged.append((path, run.requests / path.name))
    for source, target in staged:
        os.rename(source, target)
    for run_id in targets:
        (runs.store.paths(run_id).dir / ".flood").rmdir()


def ignored_counts(runs: Runs, run_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in runs.record(run_id).events:
        if event.kind == "request-ignored":
            action = event.detail.split()[0]
            counts[action] = counts.get(action, 0) + event.count
    return counts


def test_request_floods_over_many_runs(runs: Runs):
    r = rng("request-flood")
    n = trials(short=1, share=0.05)
    runner = runs.runner("--poll", "0.5", "--max-concurrent", "2")
    runs.submit(cartpole(steps=300, ckpt=100, extra="name: done\n"), "done.yaml")
    done = runs.only_run()
    runs.wait_state(done, RunState.COMPLETED, timeout=120)
    ended = [done] + [copy_run(runs.store, done, f"done-{k}") for k in range(4)]
    runs.submit(cartpole(steps=10_000_000, ckpt=5000, extra="name: live\n"), "live.yaml")
    live = wait_for(lambda: [i for i in runs.store.run_ids() if runs.record(i).name == "live"], 30)[
        0
    ]
    live_pid = runs.wait_state(live, RunState.RUNNING, timeout=120).pid
    expected = {run_id: dict.fromkeys(ACTIONS, 0) for run_id in ended}
    sizes = {run_id: runs.store.paths(run_id).run_json.stat().st_size for run_id in ended}
    sent, worst_all = 0, 0.0

    for trial in range(n):
        total = 3000 if trial == 0 else r.randrange(500, 6000)
        chosen = r.sample(ended, r.randrange(1, len(ended) + 1))
        targets: dict[str, list[str]] = {run_id: [] for run_id in chosen}
        for _ in range(total):
            run_id = r.choice(chosen)
            action = r.choice(ACTIONS)
            targets[run_id].append(action)
            expected[run_id][action] += 1
        steps_before = runs.status(live).timesteps
        flood(runs, targets)
        queue_file = runs.submit(cartpole(steps=200, extra=f"name: q{trial}\n"), f"q{trial}.yaml")
        LEDGER.trials += 1
        LEDGER.fault("request flood")
        problems = []
        worst = 0.0
        while any(any(runs.store.paths(i).requests.iterdir()) for i in chosen):
            info = runs.store.read_runner_info()
            worst = max(worst, time.time() - info.heartbeat_at)
            time.sleep(0.05)
        if worst > MAX_HEARTBEAT_AGE:
            problems.append(f"trial {trial}: heartbeat {worst:.1f} s old during the flood")
        try:
            wait_for(lambda q=queue_file: not q.exists(), 30, "the queue file to be taken")
        except AssertionError:
            problems.append(f"trial {trial}: the queue file dropped during the flood waits")
        for run_id in chosen:
            record = runs.record(run_id)
            if record.state != RunState.COMPLETED:
                problems.append(f"{run_id}: {record.state.value} after a flood of no-ops")
            want = {a: c for a, c in expected[run_id].items() if c}
            if ignored_counts(runs, run_id) != want:
                problems.append(f"{run_id}: counted {ignored_counts(runs, run_id)}, sent {want}")
            grown = runs.store.paths(run_id).run_json.stat().st_size - sizes[run_id]
            if grown > 300 * len(ACTIONS):
                problems.append(f"{run_id}: run.json grew by {grown} bytes")
        record = runs.record(live)
        if record.pid != live_pid or record.state != RunState.RUNNING:
            problems.append(f"the live run is {record.state.value}, pid {record.pid}")
        else:
            try:
                runs.wait_steps(live, steps_before + 64, timeout=60)
            except AssertionError:
                problems.append("the live run stopped training during the flood")
        problems += half_written_json(runs.store.root)
        sent += total
        worst_all = max(worst_all, worst)
        LEDGER.lost(problems)
        assert not problems, problems

    LEDGER.note(
        f"request floods: {sent} requests in {n} flood(s), runner.json at most "
        f"{worst_all:.1f} s old meanwhile"
    )
    runs.store.write_request(live, "stop", source="fault")
    runs.wait_state(live, RunState.STOPPED, timeout=120)
    for run_id in runs.store.run_ids():  # the queue files taken during the floods, too
        runs.wait_state(run_id, *[s for s in RunState if s.is_ended], timeout=120)
    problems = stuck_runs(runs.store)
    if "step failed" in runner.output():
        problems.append("a supervisor step failed")
    LEDGER.lost(problems)
    assert not problems, problems
