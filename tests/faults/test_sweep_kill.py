"""SIGKILL the runner while it drives a sweep; the study and the run store must still agree.

Each fault trial drops a sweep (a few tiny CartPole trials, one or two seeds each, the median
pruner) and kills the runner at random moments — right after intake (between ask and queue),
mid-trial, as runs end (before their trial is told) — restarting it after each kill. Some kills
also leave behind what a runner dies with between two writes: a trial asked but never queued
(``study.ask`` with no runs), or a trial pruned (its runs' stop requests written) but never
told. At the end: every trial the study holds is finished and none failed, no (trial,
seed_index) has two runs, every trial has all its runs, a pruned trial is ``PRUNED`` in the
study and its runs are stopped with ``pruned_at``, a complete trial was told the mean of its
runs' final metric, and sweep.json says what the study says.
"""

from __future__ import annotations

import random
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from runstore import RunState, sweeps

from ..conftest import Runs, wait_for
from ..test_sweeps import study_of, trial_runs
from .harness import LEDGER, half_written_json, rng, started_twice, stuck_runs, trials

pytestmark = pytest.mark.faults

SWEEP = """\
name: kill-{n:03d}
algo: ppo
env: CartPole-v1
n_timesteps: 512
eval_every: 128
eval_episodes: 2
video_every: 0
hyperparams:
  n_steps: 64
  batch_size: 64
  n_epochs: 1
sweep:
  n_trials: {trials}
  max_concurrent: 2
  seeds: {seeds}
  sampler: random
  seed: {seed}
  pruner: median
  space:
    hyperparams.learning_rate: {{float: [1.0e-4, 1.0e-2], log: true}}
    hyperparams.gamma: {{float: [0.9, 0.999]}}
"""
ARGS = ("--poll", "0.2", "--max-concurrent", "2")


def _moment(runs: Runs, paths: sweeps.SweepPaths) -> list[str]:
    """What the sweep was doing when the runner died, read from the study and the store."""
    if not paths.journal.exists():
        return ["runner SIGKILL before the study was made"]
    study = study_of(paths)
    found = trial_runs(runs, paths.id)
    kinds = set()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mine = [ids[0] for (n, _), ids in found.items() if n == trial.number]
        if not mine:
            kinds.add("runner SIGKILL between ask and queue")
            continue
        states = [runs.store.read_run(i).state for i in mine]
        if all(s.is_ended for s in states):
            kinds.add("runner SIGKILL before tell")
        else:
            kinds.add("runner SIGKILL mid-trial")
    return sorted(kinds) or ["runner SIGKILL between trials"]


def _leave_behind(runs: Runs, paths: sweeps.SweepPaths, r: random.Random) -> list[str]:
    """With the runner dead: what it would leave if it had died between two of its writes."""
    if not paths.journal.exists():
        return []
    study = study_of(paths)
    state = sweeps.read_sweep_state(paths)
    budget = state.n_trials if state else None
    found = trial_runs(runs, paths.id)
    roll = r.random()
    if roll < 0.25 and (budget is None or len(study.get_trials()) < budget):
        study.ask()  # asked, never queued
        return ["runner SIGKILL between ask and queue (left by hand)"]
    if roll < 0.5:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            mine = [ids[0] for (n, _), ids in found.items() if n == trial.number]
            records = [runs.store.read_run(i) for i in mine]
            if mine and all(rec is not None and not rec.state.is_ended for rec in records):
                for run_id in mine:  # the stop requests of a prune, written; the tell, not
                    runs.store.write_request(
                        run_id, "stop", source="sweep: pruned", params={"pruned_at": 128}
                    )
                return ["runner SIGKILL between prune and tell (left by hand)"]
    return []


def _check(runs: Runs, paths: sweeps.SweepPaths, seeds: int) -> list[str]:
    problems = half_written_json(runs.store.root) + stuck_runs(runs.store)
    problems += started_twice(runs.store)
    study = study_of(paths)
    state = sweeps.read_sweep_state(paths)
    found = trial_runs(runs, paths.id)
    numbers = {t.number for t in study.get_trials()}
    for (n, k), ids in sorted(found.items()):
        if len(ids) > 1:
            problems.append(f"trial {n} seed {k} has {len(ids)} runs: {ids}")
        if n not in numbers:
            problems.append(f"run {ids} belongs to trial {n}, which the study does not hold")
    for trial in study.get_trials():
        n = trial.number
        mine = {k: found[(n, k)][0] for k in range(seeds) if (n, k) in found}
        records = {k: runs.store.read_run(i) for k, i in mine.items()}
        said = {k: (rec.state.value if rec else "unreadable") for k, rec in records.items()}
        if trial.state == TrialState.RUNNING:
            problems.append(f"trial {n} is still running in the study (runs {said})")
        elif trial.state == TrialState.FAIL:
            problems.append(f"trial {n} failed (runs {said})")
        if len(mine) != seeds:
            problems.append(f"trial {n} has runs for seeds {sorted(mine)} of {seeds}")
            continue
        stopped = [rec for rec in records.values() if rec and rec.state == RunState.STOPPED]
        if any(rec.pruned_at is not None for rec in stopped) and trial.state != TrialState.PRUNED:
            problems.append(f"trial {n}: its runs were pruned, the study says {trial.state.name}")
        if trial.state == TrialState.PRUNED and any(rec.pruned_at is None for rec in stopped):
            problems.append(f"trial {n}: a run stopped by a prune has no pruned_at")
        complete = all(
            rec is not None and rec.state == RunState.COMPLETED for rec in records.values()
        )
        if trial.state == TrialState.COMPLETE and not complete:
            problems.append(f"trial {n} complete but its runs are {said}")
    if state is None:
        return [*problems, "sweep.json unreadable"]
    count = {s: sum(1 for t in study.get_trials() if t.state == s) for s in TrialState}
    agree = {
        "asked": (state.asked, len(study.get_trials())),
        "running": (state.running, count[TrialState.RUNNING]),
        "complete": (state.complete, count[TrialState.COMPLETE]),
        "pruned": (state.pruned, count[TrialState.PRUNED]),
        "failed": (state.failed, count[TrialState.FAIL]),
    }
    if count[TrialState.COMPLETE]:
        agree["best"] = (
            (state.best_trial, state.best_value),
            (study.best_trial.number, study.best_value),
        )
    expected = {
        str(n): [ids[0] for (m, _), ids in sorted(found.items()) if m == n] for n in numbers
    }
    agree["trial_runs"] = (state.trial_runs, {n: v for n, v in expected.items() if v})
    problems += [f"sweep.json {k} {a!r}, study {b!r}" for k, (a, b) in agree.items() if a != b]
    return problems


def _where(runs: Runs, paths: sweeps.SweepPaths, runner) -> str:
    """What a sweep that did not end was waiting on, for the failure message."""
    study = study_of(paths)
    found = trial_runs(runs, paths.id)
    lines = [f"sweep.json: {sweeps.read_sweep_state(paths)}"]
    for trial in study.get_trials():
        mine = {k: ids for (n, k), ids in found.items() if n == trial.number}
        said = {
            k: [(i, getattr(runs.store.read_run(i), "state", None)) for i in ids]
            for k, ids in mine.items()
        }
        lines.append(f"trial {trial.number} {trial.state.name}: {said}")
    lines.append(f"queue: {sorted(p.name for p in runs.store.queue_dir.iterdir())}")
    lines.append(f"rejected: {sorted(p.name for p in runs.store.rejected_dir.iterdir())}")
    lines.append("runner log (last 3,000 characters):\n" + runner.output()[-3000:])
    return "\n".join(lines)


def test_runner_sigkill_mid_sweep_at_random_moments(runs: Runs):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    r = rng("sweep-kill")
    n = trials(short=1, share=0.1)
    runner = runs.runner(*ARGS)
    for sweep_n in range(n):
        seeds = r.choice([1, 1, 2])
        n_trials = r.choice([3, 4]) if seeds == 1 else 2
        text = SWEEP.format(n=sweep_n, trials=n_trials, seeds=seeds, seed=r.randrange(1000))
        runs.submit(text, f"kill-{sweep_n}.yaml")
        for _ in range(r.choice([2, 3, 4])):
            time.sleep(r.choice([0.0, r.uniform(0, 1.0), r.uniform(1.0, 6.0), r.uniform(6, 15)]))
            runner.kill(signal.SIGKILL)
            LEDGER.trials += 1
            ids = [i for i in sweeps.sweep_ids(runs.store.root) if f"-kill-{sweep_n:03d}-" in i]
            if ids:
                paths = sweeps.sweep_paths(runs.store.root, ids[0])
                for kind in _moment(runs, paths):
                    LEDGER.fault(kind)
                for kind in _leave_behind(runs, paths, r):
                    LEDGER.fault(kind)
            else:
                LEDGER.fault("runner SIGKILL during sweep intake")
            problems = half_written_json(runs.store.root)
            LEDGER.lost(problems)
            assert not problems, problems
            runner = runs.runner(*ARGS)
        ids = wait_for(
            lambda n=sweep_n: [
                i for i in sweeps.sweep_ids(runs.store.root) if f"-kill-{n:03d}-" in i
            ],
            30,
            "the sweep folder",
        )
        paths = sweeps.sweep_paths(runs.store.root, ids[0])

        def ended(p=paths):
            state = sweeps.read_sweep_state(p)
            return state is not None and state.state in ("complete", "failed")

        try:
            wait_for(ended, 240, f"sweep {sweep_n} to end")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_where(runs, paths, runner)}") from None
        wait_for(
            lambda: all(
                (rec := runs.store.read_run(i)) is not None and rec.state.is_ended
                for i in runs.store.run_ids()
            ),
            60,
            "every run to end",
        )
        problems = _check(runs, paths, seeds)
        LEDGER.lost(problems)
        assert not problems, f"sweep {sweep_n}: {problems}"
