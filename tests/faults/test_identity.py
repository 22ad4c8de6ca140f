"""Identity trials: run.json records that name live processes which are not the runner's.

Each trial makes a run folder the way one arrives from elsewhere (a colleague's copy, a folder
from before a reboot) whose run.json names a live foreign process group with one identity
fault: the pid reused by a process started at another time, the pgid of a foreign session
(our trainer gone), no create time at all, or a create time from before this boot. Some also
name a foreign media job. Half the folders are there when the runner starts (adoption), half
are copied in while it runs; each then gets a request (stop, pause, resume, delete, timelapse),
or none. Afterwards every foreign process must be alive and not stopped: a signal to one is a
loss. ``make test`` runs a few trials; ``make faults`` runs $RETRO_ML_FAULT_TRIALS of them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from runstore.models import MediaJob

from ..conftest import Runs, wait_for
from ..test_signals import IDENTITY_FAULTS, Foreign, naming, place_run
from .harness import LEDGER, live_states, rng, trials

pytestmark = pytest.mark.faults

ACTIONS = ("stop", "pause", "resume", "delete", "timelapse", None)
BATCH = 6  # folders per runner start: a runner restart costs more than a folder


def _folder(runs: Runs, tmp_path: Path, r, groups: list[Foreign], n: int) -> tuple[str, str]:
    """One run folder naming foreign groups with a random identity fault; returns its id and
    a description for the loss report."""
    fault = r.choice(IDENTITY_FAULTS)
    group = Foreign()
    groups.append(group)
    pid, pgid, create_time = naming(fault, group)
    media = None
    if r.random() < 0.5:
        job = Foreign()
        groups.append(job)
        job_pid, job_pgid, job_time = naming(r.choice(IDENTITY_FAULTS), job)
        media = MediaJob(
            action="record",
            pid=job_pid,
            pgid=job_pgid,
            create_time=job_time or 0.0,
            started_at=time.time(),
        )
    state = r.choice(sorted(live_states(), key=lambda s: s.value))
    run_id = place_run(
        runs.store, tmp_path / f"elsewhere-{n}", state, pid, pgid, create_time, media, f"id{n}"
    )
    return run_id, f"{fault} in state {state.value}, media {media is not None}"


def test_records_naming_foreign_processes_never_get_them_signalled(runs: Runs, tmp_path: Path):
    r = rng("identity")
    total = trials(6)
    groups: list[Foreign] = []
    n = 0
    try:
        while n < total:
            batch = min(BATCH, total - n)
            early = batch // 2
            placed = {}
            for _ in range(early):  # there before the runner starts: adoption finds them
                run_id, what = _folder(runs, tmp_path, r, groups, n)
                placed[run_id] = what
                n += 1
            runner = runs.runner("--poll", "0.2")
            for _ in range(batch - early):  # copied in while it runs
                run_id, what = _folder(runs, tmp_path, r, groups, n)
                placed[run_id] = what
                n += 1
            pending = []
            for run_id, what in placed.items():
                action = r.choice(ACTIONS)
                placed[run_id] = f"{what}, request {action}"
                if action is not None:
                    pending.append((run_id, runs.store.write_request(run_id, action, "fault")))
            wait_for(
                lambda p=pending: all(not path.exists() for _, path in p),
                60,
                "every request to be handled",
            )
            time.sleep(0.6)  # three polls: media clean-up and process checks have run
            LEDGER.trials += batch
            LEDGER.fault("foreign identity", batch)
            hurt = [g.describe() for g in groups if not g.alive()]
            if hurt:
                LEDGER.lost([f"foreign process signalled: {h}" for h in hurt])
            assert not hurt, (hurt, placed)
            assert "Traceback" not in runner.output(), runner.output()[-3000:]
            runner.kill()
            for group in groups:
                group.end()
            groups.clear()
            for run_id in runs.store.run_ids():  # the next batch starts from an empty folder
                shutil.rmtree(runs.store.paths(run_id).dir)
    finally:
        for group in groups:
            group.end()
