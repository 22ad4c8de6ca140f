"""SIGKILL the runner at random moments; a new runner must leave nothing lost or doubled.

Each trial drops a few queue files (mostly tiny CartPole runs, some invalid), waits a random
moment — often inside intake or a spawn, sometimes while trainers checkpoint — SIGKILLs the
runner, checks the folder with no runner at all, starts a new runner and checks again once it
has adopted what was left. At the end every valid file must have become exactly one completed
run, every invalid one a rejected file with its reason.
"""

from __future__ import annotations

import signal
import time

import pytest

from runstore import RunState

from ..conftest import Runs, cartpole, wait_for
from .harness import (
    LEDGER,
    digest,
    half_written_json,
    queue_accounting,
    rng,
    started_twice,
    stuck_runs,
    trials,
)

pytestmark = pytest.mark.faults

INVALID = [
    "algo: ppo\nenv: CartPole-v1\n",  # n_timesteps missing
    "algo: a2c\nenv: CartPole-v1\nn_timesteps: 100\n",
    "!!python/object/apply:os.system ['true']\n",
    "algo: ppo\nenv: [unclosed\n",
]


def _moment(runs: Runs) -> list[str]:
    """What the runner was doing when it was killed, read from the store."""
    kinds = []
    if runs.store.queue_files():
        kinds.append("runner SIGKILL during intake")
    for run_id in runs.store.run_ids():
        record = runs.store.read_run(run_id)
        status = runs.store.read_status(run_id)
        if record is not None and record.state == RunState.STARTING:
            kinds.append("runner SIGKILL during spawn")
        if status is not None and status.phase == "saving":
            kinds.append("runner SIGKILL during a checkpoint")
    return sorted(set(kinds)) or ["runner SIGKILL while idle or training"]


def _settled(runs: Runs) -> list[str]:
    return stuck_runs(runs.store) + started_twice(runs.store)


def test_runner_sigkill_at_random_moments(runs: Runs):
    r = rng("runner-kill")
    n = trials(short=4)
    dropped: dict[str, str] = {}
    valid: set[str] = set()
    args = ("--max-concurrent", "2", "--poll", "0.2")
    runner = runs.runner(*args)
    for trial in range(n):
        for k in range(r.choice([0, 1, 1, 2])):
            name = f"t{trial:04d}-{k}"
            if r.random() < 0.75:
                text = cartpole(steps=300, ckpt=100, extra=f"name: {name}\n")
                valid.add(digest(text.encode()))
            else:
                text = f"# {name}\n" + r.choice(INVALID)
            dropped[digest(text.encode())] = f"{name}.yaml"
            runs.submit(text, f"{name}.yaml")
        time.sleep(r.choice([0.0, r.uniform(0, 0.3), r.uniform(0.3, 2.5)]))
        moments = _moment(runs)
        runner.kill(signal.SIGKILL)
        for kind in moments:
            LEDGER.fault(kind)
        LEDGER.trials += 1
        # With no runner at all: nothing torn, nothing lost.
        problems = half_written_json(runs.store.root) + queue_accounting(runs.store, dropped)
        LEDGER.lost(problems)
        assert not problems, f"trial {trial}: {problems}"
        runner = runs.runner(*args)
        # Once the new runner has adopted: every live run has its process, none runs twice.
        try:
            wait_for(lambda: not _settled(runs), 30, "adoption to settle")
        except AssertionError:
            problems = _settled(runs)
            LEDGER.lost(problems)
            raise AssertionError(f"trial {trial}: {problems}") from None

    def sources() -> set[str]:
        return {digest(runs.store.paths(i).source.read_bytes()) for i in runs.store.run_ids()}

    def all_done() -> bool:
        return (
            not runs.store.queue_files()
            and valid <= sources()
            and all(
                (rec := runs.store.read_run(i)) is not None and rec.state.is_ended
                for i in runs.store.run_ids()
            )
        )

    wait_for(all_done, 60 + 10 * len(valid), "every run to end")
    problems = half_written_json(runs.store.root) + queue_accounting(runs.store, dropped)
    for run_id in runs.store.run_ids():
        record = runs.record(run_id)
        source = digest(runs.store.paths(run_id).source.read_bytes())
        if source not in valid:
            problems.append(f"{run_id}: an invalid file became a run")
        elif record.state != RunState.COMPLETED:
            problems.append(f"{run_id} ended {record.state.value}: {record.reason}")
    problems += [f"{dropped[s]} never became a run" for s in valid - sources()]
    for path in runs.store.rejected_dir.glob("*.yaml"):
        if not path.with_name(path.name + ".error.txt").exists():
            problems.append(f"rejected/{path.name} has no .error.txt with its reason")
    LEDGER.lost(problems)
    assert not problems, problems
