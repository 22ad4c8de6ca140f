"""SIGKILL trainers at random moments, mid-checkpoint included; resume from what is left.

Checkpoints every 64 steps keep a save in flight a good part of the time, so many kills land
inside one (counted when a ``.staging-*`` folder is left behind). After each kill: the run
ended ``failed`` (the runner saw the kill) or ``lost`` (the runner was down too), every
published checkpoint validates, the newest loads in SB3 for real, and a resume continues from
exactly that one.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from runner import process
from runstore import RunState, checkpoints

from ..conftest import Runs, cartpole, wait_for
from .harness import LEDGER, broken_checkpoints, half_written_json, rng, sb3_load, trials

pytestmark = pytest.mark.faults

ENDED = [s for s in RunState if s.is_ended]


def test_trainer_sigkill_then_resume_from_the_newest_loadable_checkpoint(runs: Runs):
    r = rng("trainer-kill")
    n = trials(short=1, share=0.25)
    args = ("--poll", "0.2")
    runner = runs.runner(*args)
    runs.submit(cartpole(steps=10_000_000, ckpt=64, extra="keep_checkpoints: 4\n"), "long.yaml")
    run_id = runs.only_run()
    run = runs.store.paths(run_id)
    for trial in range(n):
        runs.wait_state(run_id, RunState.RUNNING, timeout=120)
        runs.wait_steps(run_id, runs.status(run_id).start_timesteps + 64, timeout=120)
        time.sleep(r.uniform(0, 1.5))
        record = runs.record(run_id)
        both = r.random() < 0.3  # the runner is down too: the new one must find out
        if both:
            runner.kill()
        os.kill(record.pid, signal.SIGKILL)
        LEDGER.trials += 1
        LEDGER.fault("trainer SIGKILL" + (" with the runner down" if both else ""))
        wait_for(lambda p=record.pid, t=record.create_time: not process.identify(p, t), 30)
        if list(run.checkpoints.glob(".staging-*")):
            LEDGER.fault("trainer SIGKILL mid-checkpoint")
        if both:
            runner = runs.runner(*args)
        ended = runs.wait_state(run_id, *ENDED, timeout=60)
        problems = []
        wanted = RunState.LOST if both else RunState.FAILED
        if ended.state != wanted:
            problems.append(f"trial {trial}: ended {ended.state.value}, not {wanted.value}")
        if not both and "SIGKILL" not in ended.reason:
            problems.append(f"trial {trial}: reason does not name the kill: {ended.reason}")
        problems += broken_checkpoints(run.dir) + half_written_json(run.dir)
        newest, skipped = checkpoints.latest_complete(run.checkpoints)
        if newest is None or skipped:
            problems.append(f"trial {trial}: newest {newest}, skipped {skipped}")
        LEDGER.lost(problems)
        assert not problems, problems
        assert sb3_load(newest.model) == newest.step
        runs.store.write_request(run_id, "resume")

        def resumed(pid=ended.pid):
            status = runs.status(run_id)
            return status is not None and status.pid != pid and status.resumed_from

        wait_for(resumed, 120, "the resumed trainer to load its checkpoint")
        status = runs.status(run_id)
        assert status.resumed_from == newest.dir.name
        assert status.start_timesteps == newest.step
