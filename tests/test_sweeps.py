"""Sweeps with the real runner, real Optuna (journal storage) and real CartPole trials.

A sweep file dropped into the queue becomes ``runs/sweeps/<id>/``; each trial is an ordinary
run whose config carries its params and ``sweep: {id, trial, seed_index}``; the study is told
each trial's final metric from the run store, and a runner killed with SIGKILL mid-sweep
loses no trial and runs none twice.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import optuna
import polars as pl
from optuna.trial import TrialState

from runstore import RunState, metrics, sweeps

from .conftest import ROOT, Runs, wait_for

SWEEP = """\
name: sweep-cp
algo: ppo
env: CartPole-v1
n_timesteps: 1024
eval_every: 256
eval_episodes: 2
video_every: 0
hyperparams:
  n_steps: 64
  batch_size: 64
  n_epochs: 2
sweep:
  n_trials: {trials}
  max_concurrent: 2
  seeds: {seeds}
  sampler: random
  pruner: median
  space:
    hyperparams.learning_rate: {{float: [1.0e-4, 1.0e-2], log: true}}
    hyperparams.n_epochs: {{int: [1, 3]}}
"""


def cli(runs: Runs, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "runner", *args, "--runs-dir", str(runs.store.root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def only_sweep(runs: Runs) -> sweeps.SweepPaths:
    ids = wait_for(lambda: sweeps.sweep_ids(runs.store.root), 30, "a sweep folder")
    assert len(ids) == 1, ids
    return sweeps.sweep_paths(runs.store.root, ids[0])


def state_of(paths: sweeps.SweepPaths) -> sweeps.SweepState:
    state = sweeps.read_sweep_state(paths)
    assert state is not None
    return state


def wait_complete(paths: sweeps.SweepPaths, timeout: float = 300) -> sweeps.SweepState:
    def done() -> sweeps.SweepState | None:
        state = sweeps.read_sweep_state(paths)
        assert state is None or state.state != "failed", state.reason
        return state if state is not None and state.state == "complete" else None

    return wait_for(done, timeout, "the sweep to complete")  # type: ignore[return-value]


def study_of(paths: sweeps.SweepPaths) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(paths.journal))
    return optuna.load_study(study_name=paths.id, storage=optuna.storages.JournalStorage(backend))


def trial_runs(runs: Runs, sweep_id: str) -> dict[tuple[int, int], list[str]]:
    found: dict[tuple[int, int], list[str]] = {}
    for run_id in runs.store.run_ids():
        ref = runs.store.read_config(run_id).sweep
        if ref is not None and ref.id == sweep_id:
            found.setdefault((ref.trial, ref.seed_index), []).append(run_id)
    return found


def test_a_sweep_file_runs_its_trials_as_ordinary_runs_and_tells_the_study(runs: Runs):
    runs.runner("--poll", "0.2", "--max-concurrent", "3")
    runs.submit(SWEEP.format(trials=4, seeds=1), "lr.yaml")
    paths = only_sweep(runs)
    state = wait_complete(paths)

    study = study_of(paths)
    trials = study.get_trials()
    assert len(trials) == 4 and state.asked == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert state.complete + state.pruned == 4 and state.failed == 0
    found = trial_runs(runs, paths.id)
    assert sorted(found) == [(t.number, 0) for t in trials], "one run per trial, none twice"
    for trial in trials:
        (run_id,) = found[(trial.number, 0)]
        config = runs.store.read_config(run_id)
        assert config.hyperparams.learning_rate == trial.params["hyperparams.learning_rate"]
        assert config.hyperparams.n_epochs == trial.params["hyperparams.n_epochs"]
        assert config.seed == 0
        record = runs.record(run_id)
        if trial.state == TrialState.COMPLETE:
            assert record.state == RunState.COMPLETED
            evals = metrics.load_scalars(runs.store.paths(run_id).dir).filter(
                pl.col("tag") == "eval/mean_return"
            )
            assert trial.value == evals.sort("step")["value"][-1], "told the final evaluation"
        else:  # pruned: stopped with the step, unless it completed before the stop landed
            # The study is told at once; the run is stopped when its trainer has saved and
            # exited, which on a loaded machine can come after the sweep is complete.
            record = runs.wait_state(run_id, RunState.STOPPED, RunState.COMPLETED, timeout=90)
            assert record.state in (RunState.STOPPED, RunState.COMPLETED)
            if record.state == RunState.STOPPED:
                assert record.pruned_at is not None and record.pruned_at > 0
    best = study.best_trial
    assert (state.best_trial, state.best_value) == (best.number, best.value)
    assert state.best_params == best.params
    # At most max_concurrent trials trained at once.
    spans = [(r.started_at, r.ended_at) for r in map(runs.record, runs.store.run_ids())]
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    listing = cli(runs, "sweeps").splitlines()
    assert paths.id in listing[1] and "complete" in listing[1] and "4/4" in listing[1]

    # Promote: the best trial's config as an ordinary run, as long as asked.
    cli(runs, "promote", "sweep-cp", "--steps", "1000")
    promoted = wait_for(
        lambda: [i for i in runs.store.run_ids() if runs.store.read_config(i).sweep is None],
        30,
        "the promoted run",
    )
    config = runs.store.read_config(promoted[0])
    assert config.n_timesteps == 1000
    assert config.hyperparams.learning_rate == best.params["hyperparams.learning_rate"]


def test_a_bad_sweep_file_is_rejected_with_the_reason_and_nothing_runs(runs: Runs):
    runner = runs.runner("--poll", "0.2")
    bad = SWEEP.format(trials=4, seeds=1).replace("[1.0e-4, 1.0e-2]", "[1.0e-2, 1.0e-4]")
    runs.submit(bad, "bad.yaml")
    note = runs.store.rejected_dir / "bad.yaml.error.txt"
    wait_for(note.exists, 30, "the rejection note")
    text = note.read_text()
    assert "sweep.space.hyperparams.learning_rate" in text and "above high" in text
    assert sweeps.sweep_ids(runs.store.root) == [] and runs.store.run_ids() == []
    assert "Traceback" not in runner.output()


def test_sigkill_mid_sweep_loses_no_trial_and_runs_none_twice(runs: Runs):
    runner = runs.runner("--poll", "0.2", "--max-concurrent", "2")
    runs.submit(SWEEP.format(trials=2, seeds=2), "seeds.yaml")
    paths = only_sweep(runs)
    wait_for(lambda: runs.store.run_ids(), 60, "the first trial's run")
    runner.kill(signal.SIGKILL)
    # As if the runner had died between asking a trial and queueing its runs.
    orphan = study_of(paths).ask()
    runs.runner("--poll", "0.2", "--max-concurrent", "2")
    wait_complete(paths)

    trials = study_of(paths).get_trials()
    assert orphan.number in [t.number for t in trials]
    assert all(t.state != TrialState.RUNNING for t in trials)
    found = trial_runs(runs, paths.id)
    assert all(len(ids) == 1 for ids in found.values()), f"a run queued twice: {found}"
    told = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    for trial in told:
        assert {k for (n, k) in found if n == trial.number} == {0, 1}, "both seeds of a trial"
    assert len(trials) >= 2


def test_stop_acts_on_every_run_of_a_sweep_and_asks_no_more(runs: Runs):
    runs.runner("--poll", "0.2", "--max-concurrent", "2")
    runs.submit(SWEEP.format(trials=10, seeds=1).replace("1024", "1_000_000"), "long.yaml")
    paths = only_sweep(runs)
    wait_for(lambda: len(runs.store.run_ids()) == 2, 60, "two trials' runs")
    first = runs.store.run_ids()[0]
    runs.wait_state(first, RunState.RUNNING)
    cli(runs, "pause", "sweep-cp")
    runs.wait_state(first, RunState.PAUSED)
    assert state_of(paths).state == "paused"
    cli(runs, "stop", paths.id[:12])
    for run_id in runs.store.run_ids():
        runs.wait_state(run_id, RunState.STOPPED)
    state = wait_for(lambda: state_of(paths).state == "stopped" and state_of(paths), 30, "stop")
    assert state.asked == 2 and state.running == 0
    assert len(runs.store.run_ids()) == 2, "no trial asked after the stop"


def test_a_prune_whose_tell_was_lost_to_a_sigkill_is_told_pruned(runs: Runs):
    """The runner writes a prune's stop requests, then tells the study: killed in between,
    the restarted runner finds the runs stopped with ``pruned_at`` and must say PRUNED (it
    said FAIL; found by tests/faults/test_sweep_kill.py)."""
    runner = runs.runner("--poll", "0.2", "--max-concurrent", "2")
    runs.submit(SWEEP.format(trials=1, seeds=1).replace("1024", "1_000_000"), "lost-tell.yaml")
    paths = only_sweep(runs)
    run_id = runs.only_run(60)
    runs.wait_state(run_id, RunState.RUNNING)
    runner.kill(signal.SIGKILL)
    (trial,) = study_of(paths).get_trials()
    assert trial.state == TrialState.RUNNING
    runs.store.write_request(run_id, "stop", source="sweep: pruned", params={"pruned_at": 256})
    runs.runner("--poll", "0.2", "--max-concurrent", "2")
    assert runs.wait_state(run_id, RunState.STOPPED).pruned_at == 256
    state = wait_complete(paths)
    (trial,) = study_of(paths).get_trials()
    assert trial.state == TrialState.PRUNED, trial.state
    assert (state.pruned, state.failed) == (1, 0)


def test_a_sweep_whose_storage_does_not_answer_says_why_and_holds_up_no_other(runs: Runs):
    """A study in a database that refuses connections: that sweep's sweep.json says why
    (without the password) and is retried; a journal sweep beside it still runs to the end."""
    runner = runs.runner("--poll", "0.2", "--max-concurrent", "2")
    secret = "hunter2-" + "x" * 8
    storage = f"  storage: postgresql://someone:{secret}@127.0.0.1:1/nowhere\n  space:"
    bad_text = SWEEP.format(trials=2, seeds=1).replace("  space:", storage)
    runs.submit(bad_text.replace("name: sweep-cp", "name: a-unreachable"), "a.yaml")
    bad = sweeps.sweep_paths(runs.store.root, only_sweep(runs).id)
    runs.submit(SWEEP.format(trials=2, seeds=1).replace("sweep-cp", "b-journal"), "b.yaml")
    ids = wait_for(lambda: (i := sweeps.sweep_ids(runs.store.root))[1:] and i, 30, "sweep b")
    assert ids[0] == bad.id
    good = wait_complete(sweeps.sweep_paths(runs.store.root, ids[1]))
    assert good.complete == 2

    state = wait_for(
        lambda: (s := sweeps.read_sweep_state(bad)) and "cannot advance" in s.reason and s,
        30,
        "the unreachable sweep's reason",
    )
    assert state.state == "running" and state.asked == 0, state
    assert "OperationalError" in state.reason and "127.0.0.1" in state.reason, state.reason
    assert secret not in bad.state.read_text()
    assert secret not in runner.output(), "the runner logged the storage password"
    assert runner.output().count("sweep " + bad.id + ": cannot advance") == 1, runner.output()
    listed = cli(runs, "sweeps")
    assert "cannot advance" in listed and secret not in listed, listed
