"""The disk fills at a random moment, again and again (extends the single disk-full case in
tests/test_training_failures.py with repetition and the store invariants).

Each trial runs one CartPole run on a few-MB tmpfs next to a finished run, fills the disk at a
random step, and checks: the run ends ``failed`` with the disk-full diagnosis, every published
checkpoint still validates and the newest loads in SB3, no JSON file is torn, the other run's
files are byte-for-byte the same, and the runner is still supervising.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runstore import RunState, checkpoints

from ..conftest import Runs, cartpole, wait_for
from ..test_training_failures import _digest, _mount_tmpfs, fill_disk
from .harness import (
    LEDGER,
    broken_checkpoints,
    half_written_json,
    rng,
    sb3_load,
    trials,
)

pytestmark = pytest.mark.faults


# Repetition belongs to `make faults`; `make test` runs the single disk-full case
# (tests/test_training_failures.py), so this one is deselected there (marker `long`).
@pytest.mark.long
def test_disk_full_at_random_moments_keeps_everything_else(tmp_path: Path):
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "12m"):
        pytest.skip("needs root to mount a small tmpfs (the disk-full case cannot be faked)")
    r = rng("disk-full")
    try:
        runs = Runs(small / "runs")
        try:
            runner = runs.runner("--poll", "0.2")
            runs.submit(cartpole(steps=300, extra="name: done\n"), "done.yaml")
            done = runs.only_run()
            runs.wait_state(done, RunState.COMPLETED, timeout=120)
            before = _digest(runs.store.paths(done).dir)
            for trial in range(trials(short=1, share=0.05)):
                name = f"full-{trial}"
                runs.submit(cartpole(ckpt=256, extra=f"name: {name}\n"), f"{name}.yaml")
                run_id = wait_for(
                    lambda n=name: [i for i in runs.store.run_ids() if runs.record(i).name == n],
                    30,
                )[0]
                runs.wait_steps(run_id, r.randrange(300, 1500), timeout=120)
                filler = small / "filler"
                fill_disk(small, filler, leave=48 * 1024)
                LEDGER.trials += 1
                LEDGER.fault("disk full")
                record = runs.wait_state(run_id, RunState.FAILED, RunState.COMPLETED, timeout=120)
                filler.unlink()
                run = runs.store.paths(run_id)
                problems = broken_checkpoints(run.dir) + half_written_json(runs.store.root)
                if record.state != RunState.FAILED:
                    problems.append(f"trial {trial}: ended {record.state.value}")
                elif record.diagnosis is None or record.diagnosis.code != "disk_full":
                    problems.append(f"trial {trial}: diagnosis {record.diagnosis}: {record.reason}")
                if _digest(runs.store.paths(done).dir) != before:
                    problems.append(f"trial {trial}: the finished run's files changed")
                if runner.proc.poll() is not None:
                    problems.append(f"trial {trial}: the runner died")
                LEDGER.lost(problems)
                assert not problems, problems
                newest, _ = checkpoints.latest_complete(run.checkpoints)
                if newest is not None:
                    assert sb3_load(newest.model) == newest.step
                runs.store.delete_run(run_id)  # room for the next trial
        finally:
            runs.cleanup()
    finally:
        subprocess.run(["umount", "-l", str(small)])
