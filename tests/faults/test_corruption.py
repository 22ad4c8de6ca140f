"""Files damaged by hand: each shows as a clear problem on that run, never a crash.

One stopped CartPole run is copied into several run folders and each copy gets one kind of
damage: a truncated status.json, a garbage run.json, an event file cut mid-record or with a
flipped byte, the newest checkpoint zip cut in half. The runner keeps supervising (no failed
step in its log), ``python -m runner ls`` lists every run, resume skips the broken checkpoint,
and the metrics reader returns what is readable with the damage reported.

What the dashboard should show for the same folders (its page check comes with the dashboard):
run.json unreadable -> the run listed as "unreadable" with that note, controls disabled;
status.json unreadable -> "status unavailable", the last known values; checkpoint broken ->
that checkpoint marked incomplete and "resume continues from <the previous one>"; event file
damage -> the curve up to the damage and ``LoadReport.corruptions`` (offset, after step) shown.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys

import pytest

from runstore import RunState, checkpoints, metrics
from runstore.paths import new_run_id

from ..conftest import ROOT, Runs, cartpole, wait_for
from .harness import LEDGER, half_written_json

pytestmark = pytest.mark.faults


def _copy(runs: Runs, run_id: str, name: str) -> str:
    new_id = new_run_id(name)
    shutil.copytree(runs.store.paths(run_id).dir, runs.store.root / f".copy-{new_id}")
    record = runs.record(run_id).model_copy(update={"id": new_id, "name": name})
    (runs.store.root / f".copy-{new_id}").rename(runs.store.root / new_id)
    runs.store.write_run(record)
    return new_id


def _cut(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _events(runs: Runs, run_id: str):
    return sorted(runs.store.paths(run_id).tb.rglob("events.out.tfevents.*"))


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
    status_cut = _copy(runs, base, "status-cut")
    _cut(runs.store.paths(status_cut).status_json, 0.5)
    run_garbage = _copy(runs, base, "run-garbage")
    runs.store.paths(run_garbage).run_json.write_bytes(r.randbytes(300))
    tb_cut = _copy(runs, base, "tb-cut")
    event = _events(runs, tb_cut)[-1]
    event.write_bytes(event.read_bytes()[:-7])
    tb_flip = _copy(runs, base, "tb-flip")
    event = _events(runs, tb_flip)[0]
    data = bytearray(event.read_bytes())
    data[len(data) // 2] ^= 0xFF
    event.write_bytes(bytes(data))
    ckpt_cut = _copy(runs, base, "ckpt-cut")
    newest = checkpoints.list_checkpoints(runs.store.paths(ckpt_cut).checkpoints)
    _cut(newest[0].model, 0.5)
    # Read the intact run only now: its Parquet cache (derived data) must not be copied along,
    # since a cache that matches a file's first and last bytes is trusted for the middle.
    rows_before = metrics.load_scalars(runs.store.paths(base).dir).height
    LEDGER.trials += 1
    LEDGER.fault("hand corruption", 5)
    line = _ls(runs)
    assert set(line) == {base, status_cut, run_garbage, tb_cut, tb_flip, ckpt_cut}
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

    for run_id in (status_cut, ckpt_cut):
        runs.store.write_request(run_id, "stop", source="test")
    for run_id in (status_cut, ckpt_cut):
        runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    assert len(_ls(runs)) == 6
    assert runner.proc.poll() is None, "the runner died"
    assert "step failed" not in runner.output() and "Traceback" not in runner.output()
    assert not [p for p in half_written_json(runs.store.root) if run_garbage not in p]
