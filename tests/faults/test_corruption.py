"""Files damaged by hand: each shows as a clear problem on that run, never a crash.

One stopped CartPole run is copied into several run folders and each copy gets one kind of
damage: a truncated status.json, a garbage run.json, an event file cut mid-record or with a
flipped byte or made 1 GB long (``truncate -s 1G``: valid records, then sparse zeros), the
newest checkpoint zip cut in half. The runner keeps supervising (no failed
step in its log), ``python -m runner ls`` lists every run, resume skips the broken checkpoint,
and the metrics reader returns what is readable with the damage reported.

What the dashboard shows for the same folders (tests/test_dashboard_hostile.py checks it):
run.json unreadable -> an error naming that run ("run.json is damaged"), no controls for it;
status.json unreadable -> a warning on that run (progress unknown); checkpoint broken -> that
checkpoint marked "incomplete (skipped on resume)"; event file damage -> the curves up to the
damage and a warning naming the file and byte offset (``LoadReport.corruptions``).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from runstore import RunState, checkpoints, metrics

from ..conftest import ROOT, Runs, cartpole, wait_for
from .harness import LEDGER, copy_run, damage_copies, event_files, half_written_json

pytestmark = pytest.mark.faults


def _ls(runs: Runs) -> dict[str, str]:
    listing = subprocess.run(
        [sys.executable, "-m", "runner", "ls", "--runs-dir", str(runs.store.root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    return {row.split()[0]: row for row in listing.stdout.splitlines()[1:]}


def test_hand_corruption_is_a_problem_on_that_run_never_a_crash(runs: Runs):
    r = random.Random(7)
    runner = runs.runner("--poll", "0.2", "--max-concurrent", "2")
    runs.submit(cartpole(steps=10_000_000, ckpt=100, extra="keep_checkpoints: 10\n"), "b.yaml")
    base = runs.only_run()
    runs.wait_steps(base, 500)
    runs.store.write_request(base, "stop")
    runs.wait_state(base, RunState.STOPPED, timeout=60)
    ckpts = checkpoints.list_checkpoints(runs.store.paths(base).checkpoints)
    assert len(ckpts) >= 3
    damaged = damage_copies(runs.store, base, r)
    status_cut, run_garbage, ckpt_cut = damaged.status_cut, damaged.run_garbage, damaged.ckpt_cut
    tb_cut, tb_flip = damaged.tb_cut, damaged.tb_flip
    tb_huge = copy_run(runs.store, base, "tb-huge")
    huge = event_files(runs.store, tb_huge)[-1]
    valid_bytes = huge.stat().st_size
    os.truncate(huge, 1024**3)  # sparse: no disk, and read past by the reader's hole skip
    old = time.time() - 3600  # stopped growing an hour ago: its zeros are damage, not pending
    os.utime(huge, (old, old))
    newest = checkpoints.list_checkpoints(runs.store.paths(ckpt_cut).checkpoints)
    assert newest[0] == damaged.cut_checkpoint
    # Read the intact run only now: its Parquet cache (derived data) must not be copied along,
    # since a cache that matches a file's first and last bytes is trusted for the middle.
    rows_before = metrics.load_scalars(runs.store.paths(base).dir).height
    LEDGER.trials += 1
    LEDGER.fault("hand corruption", 6)
    line = _ls(runs)
    assert set(line) == {base, status_cut, run_garbage, tb_cut, tb_flip, tb_huge, ckpt_cut}
    assert "unreadable" in line[run_garbage] and "corrupt" in line[run_garbage]
    assert "status.json is corrupt" in line[status_cut]

    for run_id in (status_cut, run_garbage, ckpt_cut):
        runs.store.write_request(run_id, "resume", source="test")
    # The broken checkpoint is skipped: resume continues from the one before it.
    wait_for(
        lambda: (s := runs.status(ckpt_cut)) and s.pid != runs.record(base).pid and s.resumed_from,
        120,
        "the run with the cut checkpoint to resume",
    )
    assert runs.status(ckpt_cut).resumed_from == newest[1].dir.name
    resume_note = [e.detail for e in runs.record(ckpt_cut).events if e.kind == "queued"][-1]
    assert newest[1].dir.name in resume_note
    # The truncated status.json does not stop a resume either.
    runs.wait_state(status_cut, RunState.STARTING, RunState.RUNNING, timeout=120)

    cut_rows, cut_report = metrics.load_scalars_with_report(runs.store.paths(tb_cut).dir)
    assert rows_before - 2 <= cut_rows.height <= rows_before  # at most the cut record is missing
    flip_rows, flip_report = metrics.load_scalars_with_report(runs.store.paths(tb_flip).dir)
    assert flip_report.corruptions, "a flipped byte must be reported, not hidden"
    assert flip_rows.height < rows_before
    huge_rows, huge_report = metrics.load_scalars_with_report(runs.store.paths(tb_huge).dir)
    assert huge_rows.height == rows_before, "every valid scalar before the zeros"
    damage = [(c.path, c.offset, c.pending) for c in huge_report.corruptions]
    assert damage == [(str(huge), valid_bytes, False)], damage

    for run_id in (status_cut, ckpt_cut):
        runs.store.write_request(run_id, "stop", source="test")
    for run_id in (status_cut, ckpt_cut):
        runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    assert len(_ls(runs)) == 7
    assert runner.proc.poll() is None, "the runner died"
    assert "step failed" not in runner.output() and "Traceback" not in runner.output()
    assert not [p for p in half_written_json(runs.store.root) if run_garbage not in p]
