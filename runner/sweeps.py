"""Sweeps: the runner owns each Optuna study and turns its trials into ordinary runs.

Each step, for every running sweep, the study and the run store are reconciled from scratch
(nothing is kept only in memory), so a runner killed at any moment loses no trial and runs
none twice:

* a trial the study holds as running whose runs are not all queued gets the missing ones
  queued (its queue files have fixed names: ``runstore.sweeps.trial_file_name``);
* a trial whose runs have all ended is told: the mean of its runs' final metric when they
  completed, failed otherwise;
* a running trial reports the mean of its runs' metric at each step they have all reached,
  and when the pruner says so its runs get an ordinary stop request;
* new trials are asked while fewer than ``max_concurrent`` are unfinished and the budget
  (``n_trials``, ``timeout``) allows.

The trainer never imports Optuna; the runner reads the metric from the run store.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from runstore import metrics, sweeps
from runstore.config import ConfigError
from runstore.models import RunRecord, RunState
from runstore.store import RunStore, printable
from runstore.sweep_config import (
    ChoiceSpace,
    IntSpace,
    Space,
    Sweep,
    grid_values,
    parse_sweep,
    rdb_url,
    storage_password,
    trial_doc,
)
from runstore.sweeps import SweepPaths, SweepState

log = logging.getLogger("runner")
optuna.logging.set_verbosity(optuna.logging.WARNING)

#: How often a running sweep's trials' metrics are read for pruning.
REPORT_SECONDS = 2.0
#: At most this many intermediate values per trial (over its n_timesteps) for the pruner.
REPORTS_PER_RUN = 100
#: A sweep that could not advance (its storage does not answer) is tried again this much later.
STUCK_RETRY_SECONDS = 5.0
_ENDED = {RunState.COMPLETED, RunState.STOPPED, RunState.FAILED, RunState.LOST}


def distribution(space: Space) -> BaseDistribution:
    """One dimension of the search space as Optuna's distribution."""
    if isinstance(space, ChoiceSpace):
        return CategoricalDistribution(space.choice)
    low, high = space.bounds
    if isinstance(space, IntSpace):
        return IntDistribution(int(low), int(high), log=space.log, step=space.step)
    return FloatDistribution(low, high, log=space.log, step=space.step)


def sampler_of(sweep: Sweep) -> optuna.samplers.BaseSampler:
    block = sweep.block
    if block.sampler == "grid":
        grid = {k: grid_values(v) for k, v in block.space.items()}
        return optuna.samplers.GridSampler(grid, seed=block.seed)
    if block.sampler == "random":
        return optuna.samplers.RandomSampler(seed=block.seed)
    if block.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=block.seed)
    return optuna.samplers.TPESampler(seed=block.seed)


def pruner_of(sweep: Sweep) -> optuna.pruners.BasePruner:
    name = sweep.block.pruner
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=sweep.base.n_timesteps)
    # The first evaluations of a run say little: no pruning before a fifth of the steps.
    return optuna.pruners.MedianPruner(
        n_startup_trials=2, n_warmup_steps=sweep.base.n_timesteps // 5
    )


def storage_of(sweep: Sweep, paths: SweepPaths) -> optuna.storages.BaseStorage:
    """The study's storage. A database that does not answer costs a step seconds (the
    connect timeout), not the minutes of a TCP timeout, and the sweep is retried later."""
    if sweep.block.storage:
        return optuna.storages.RDBStorage(
            rdb_url(sweep.block.storage),
            engine_kwargs={"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True},
        )
    backend = optuna.storages.journal.JournalFileBackend(str(paths.journal))
    return optuna.storages.JournalStorage(backend)


@dataclass
class _Open:
    sweep: Sweep
    study: optuna.Study
    next_report: float = 0.0


class Sweeps:
    """Every sweep of a runs folder, advanced by the supervisor's step."""

    def __init__(self, store: RunStore, read_run: Callable[[str], RunRecord | None]):
        self.store = store
        self._read_run = read_run  # the supervisor's view of run.json (its cached copy)
        self._open: dict[str, _Open] = {}
        self._refs: dict[str, tuple[str, int, int] | None] = {}  # run id -> its sweep trial
        self._trouble: dict[str, tuple[str, float]] = {}  # sweep id -> (why stuck, retry at)

    # -- intake -------------------------------------------------------------------------

    def accept(self, path: Path, sweep: Sweep) -> str | None:
        """A checked sweep file becomes ``sweeps/<id>/``; returns the id (None: taken)."""
        block = sweep.block.model_dump(mode="json", by_alias=True, exclude_none=True)
        resolved = {**sweep.base_doc, "sweep": block}
        made = sweeps.create_sweep(self.store.root, path, sweep.base.display_name, resolved)
        if made is None:
            return None
        state = SweepState(
            id=made.id,
            name=sweep.base.display_name,
            metric=sweep.metric,
            direction=sweep.block.direction,
            n_trials=sweep.n_trials,
            seeds=sweep.block.seeds,
        )
        sweeps.write_sweep_state(made, state)
        log.info("sweep %s from %s", made.id, printable(path.name))
        return made.id

    # -- each step ----------------------------------------------------------------------

    def advance(self) -> None:
        for sweep_id in sweeps.sweep_ids(self.store.root):
            paths = sweeps.sweep_paths(self.store.root, sweep_id)
            state = sweeps.read_sweep_state(paths)
            if state is None:
                continue
            if time.monotonic() < self._trouble.get(sweep_id, ("", 0.0))[1]:
                continue  # could not advance a moment ago (see _stuck)
            try:
                self._requests(paths, state)
                if state.state != "running":
                    self._open.pop(sweep_id, None)
                    continue
                self._advance(paths, state)
            except ConfigError as exc:  # its file no longer checks: it cannot go on
                state.state, state.reason = "failed", "; ".join(exc.problems)
                log.error("sweep %s failed: %s", sweep_id, state.reason)
                sweeps.write_sweep_state(paths, state)
            except Exception as exc:  # noqa: BLE001 - EMFILE, a storage that does not answer
                self._stuck(paths, exc)
            else:
                self._unstuck(paths)

    def _stuck(self, paths: SweepPaths, exc: Exception) -> None:
        """One sweep could not advance: the other sweeps go on, it is tried again after
        STUCK_RETRY_SECONDS (a database that does not answer must not hold up every step),
        and sweep.json says why, once, so the dashboard and ``runner sweeps`` show a storage
        that does not answer rather than a sweep silently stuck."""
        self._open.pop(paths.id, None)  # opened afresh next time: a new connection
        said = f"{type(exc).__name__}: {exc}".strip()
        if secret := storage_password(_storage_in(paths)):
            said = said.replace(secret, "***")
        reason = (
            f"cannot advance, retried every {STUCK_RETRY_SECONDS:.0f} s: {printable(said)[:400]}"
        )
        retry_at = time.monotonic() + STUCK_RETRY_SECONDS
        said_before = self._trouble.get(paths.id, ("", 0.0))[0]
        self._trouble[paths.id] = (reason, retry_at)
        if said_before == reason:
            return
        log.error("sweep %s: %s", paths.id, reason)
        # Not the step's ``state``: the failed step may have changed it halfway.
        if (fresh := sweeps.read_sweep_state(paths)) is not None:
            fresh.reason = reason
            sweeps.write_sweep_state(paths, fresh)

    def _unstuck(self, paths: SweepPaths) -> None:
        if (trouble := self._trouble.pop(paths.id, None)) is None:
            return
        log.info("sweep %s advances again", paths.id)
        state = sweeps.read_sweep_state(paths)
        if state is not None and state.reason == trouble[0]:
            state.reason = ""
            sweeps.write_sweep_state(paths, state)

    def _requests(self, paths: SweepPaths, state: SweepState) -> None:
        """Carry out what was asked of the whole sweep, oldest first."""
        requests, invalid = sweeps.pending_sweep_requests(paths)
        for path in invalid:
            with contextlib.suppress(OSError):
                path.unlink()
        if not requests:
            return
        for request in requests:
            self._apply(paths, state, request)
            with contextlib.suppress(OSError):
                request.path.unlink()
        if (opened := self._open.get(paths.id)) is not None:
            self._summarise(opened.study, state, self._trial_runs(paths.id))
        sweeps.write_sweep_state(paths, state)

    def _apply(self, paths: SweepPaths, state: SweepState, request: sweeps.SweepRequest) -> None:
        action, note = request.action, f"{request.action} requested ({request.source})"
        if action == "promote":
            state.reason = self._promote(paths, request.params.get("n_timesteps"))
            return
        wanted = {"stop": "stopped", "pause": "paused", "resume": "running"}[action]
        ended = state.state in ("complete", "failed")
        if ended or (action == "resume" and state.state == "running"):
            state.reason = f"{note}: ignored, the sweep is {state.state}"
            return
        run_action = {"stop": "stop", "pause": "pause", "resume": "resume"}[action]
        acts_on = {
            "stop": lambda s: s not in _ENDED,
            "pause": lambda s: s in (RunState.RUNNING, RunState.STARTING),
            "resume": lambda s: s == RunState.PAUSED,
        }[action]
        for trial in self._trial_runs(paths.id).values():
            for run_id in trial.values():
                record = self._read_run(run_id)
                if record is not None and acts_on(record.state):
                    self.store.write_request(run_id, run_action, source=f"sweep {action}")
        if action == "stop":
            opened = self._open.get(paths.id) or self._load(paths)
            for trial in opened.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                opened.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        state.state, state.reason = wanted, note  # type: ignore[assignment]
        log.info("sweep %s: %s", paths.id, note)

    def _promote(self, paths: SweepPaths, n_timesteps: Any) -> str:
        """Queue the best trial's config as an ordinary run (no sweep), for ``n_timesteps``
        when given: the search trains short, the promoted run as long as it should."""
        opened = self._open.get(paths.id) or self._load(paths)
        done = opened.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return "promote: no trial has completed yet"
        best = opened.study.best_trial
        doc = trial_doc(
            opened.sweep, best.params, sweep_id=paths.id, trial=best.number, seed_index=0
        )
        del doc["sweep"]
        doc["name"] = f"{opened.sweep.base.display_name[:50]}-best-t{best.number}"
        if isinstance(n_timesteps, int) and n_timesteps > 0:
            doc["n_timesteps"] = n_timesteps
        name = f"promote-{paths.id}-t{best.number:05d}-{time.time_ns()}.yaml"
        self.store.submit(yaml.safe_dump(doc, sort_keys=False), name)
        return f"promoted trial {best.number} (queued {name})"

    def _advance(self, paths: SweepPaths, state: SweepState) -> None:
        opened = self._open.get(paths.id) or self._load(paths)
        sweep, study = opened.sweep, opened.study
        runs = self._trial_runs(paths.id)
        report = time.monotonic() >= opened.next_report
        if report:
            opened.next_report = time.monotonic() + REPORT_SECONDS
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self._settle(paths.id, sweep, study, trial, runs.get(trial.number, {}), report)
        before = state.document()
        self._ask(paths.id, sweep, study, state)
        self._summarise(study, state, self._trial_runs(paths.id))
        if state.document() != before:  # not an fsync'd rewrite twice a second for nothing
            sweeps.write_sweep_state(paths, state)

    def _load(self, paths: SweepPaths) -> _Open:
        sweep = parse_sweep(sweeps.read_resolved(paths))
        study = optuna.create_study(
            study_name=paths.id,
            storage=storage_of(sweep, paths),
            sampler=sampler_of(sweep),
            pruner=pruner_of(sweep),
            direction=sweep.block.direction,
            load_if_exists=True,
        )
        self._open[paths.id] = opened = _Open(sweep, study)
        return opened

    def _trial_runs(self, sweep_id: str) -> dict[int, dict[int, str]]:
        """trial number -> seed index -> run id, from the runs' configs (read once each)."""
        found: dict[int, dict[int, str]] = {}
        for run_id in self.store.run_ids():
            if run_id not in self._refs:
                self._refs[run_id] = self._ref_of(run_id)
            ref = self._refs[run_id]
            if ref is not None and ref[0] == sweep_id:
                found.setdefault(ref[1], {})[ref[2]] = run_id
        return found

    def _ref_of(self, run_id: str) -> tuple[str, int, int] | None:
        try:
            sweep = self.store.read_config(run_id).sweep
        except (OSError, ConfigError, ValueError):
            return None
        return None if sweep is None else (sweep.id, sweep.trial, sweep.seed_index)

    def _queue(self, sweep_id: str, sweep: Sweep, number: int, params: dict, k: int) -> None:
        """Queue one run of a trial unless its queue file is already there."""
        name = sweeps.trial_file_name(sweep_id, number, k)
        if (self.store.queue_dir / name).exists() or (self.store.rejected_dir / name).exists():
            return
        doc = trial_doc(sweep, params, sweep_id=sweep_id, trial=number, seed_index=k)
        self.store.submit(yaml.safe_dump(doc, sort_keys=False), name)

    def _settle(
        self,
        sweep_id: str,
        sweep: Sweep,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        runs: dict[int, str],
        report: bool,
    ) -> None:
        """Queue a running trial's missing runs, tell it when they have ended, or report
        its progress and prune it."""
        seeds = range(sweep.block.seeds)
        for k in seeds:
            if k not in runs:
                self._queue(sweep_id, sweep, trial.number, trial.params, k)
        rejected = [
            k
            for k in seeds
            if (
                self.store.rejected_dir / sweeps.trial_file_name(sweep_id, trial.number, k)
            ).exists()
        ]
        if rejected:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            return
        if len(runs) < len(seeds):
            return
        records = [self._read_run(run_id) for run_id in runs.values()]
        states = [r.state if r else RunState.LOST for r in records]
        if all(s in _ENDED for s in states):
            pruned = any(r is not None and r.pruned_at is not None for r in records)
            self._tell(study, trial, sweep, list(runs.values()), states, pruned)
        elif report:
            self._report(study, trial, sweep, list(runs.values()))

    def _tell(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        sweep: Sweep,
        run_ids: list[str],
        states: list[RunState],
        pruned: bool,
    ) -> None:
        """Tell an ended trial: ``pruned`` when its runs were stopped by a prune (the runner
        died after their stop requests, before its own tell), else its value or a failure."""
        if pruned:
            study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
            return
        finals = [_final(self.store, run_id, sweep.metric) for run_id in run_ids]
        if all(s == RunState.COMPLETED for s in states) and all(v is not None for v in finals):
            value = sum(finals) / len(finals)  # type: ignore[arg-type]
            study.tell(trial.number, value, skip_if_finished=True)
        else:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)

    def _report(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, sweep: Sweep, run_ids: list[str]
    ) -> None:
        curves = [_curve(self.store, run_id, sweep.metric) for run_id in run_ids]
        # Trial() over a running trial of the stored study: FrozenTrial has no public id.
        live = optuna.trial.Trial(study, trial._trial_id)
        every = max(1, sweep.base.n_timesteps // REPORTS_PER_RUN)
        after = max(trial.intermediate_values, default=-1)
        for step, value in _common_steps(curves, after, every):
            live.report(value, step)
        if curves and live.should_prune():
            at = max(trial.intermediate_values, default=0)
            for run_id in run_ids:
                record = self._read_run(run_id)
                if record is not None and record.state not in _ENDED:
                    self.store.write_request(
                        run_id, "stop", source="sweep: pruned", params={"pruned_at": at}
                    )
            study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
            log.info("sweep trial %d pruned at step %s", trial.number, at)

    def _ask(self, sweep_id: str, sweep: Sweep, study: optuna.Study, state: SweepState) -> None:
        trials = study.get_trials(deepcopy=False)
        unfinished = sum(1 for t in trials if t.state == TrialState.RUNNING)
        timed_out = sweep.block.timeout and time.time() - state.created_at > sweep.block.timeout
        budget = sweep.n_trials
        space = {k: distribution(v) for k, v in sweep.block.space.items()}
        while (
            unfinished < sweep.block.max_concurrent
            and (budget is None or len(trials) < budget)
            and not timed_out
        ):
            trial = study.ask(space)
            for k in range(sweep.block.seeds):
                self._queue(sweep_id, sweep, trial.number, trial.params, k)
            trials = study.get_trials(deepcopy=False)
            unfinished += 1
        if unfinished == 0 and (timed_out or (budget is not None and len(trials) >= budget)):
            state.state = "complete"

    def _summarise(
        self, study: optuna.Study, state: SweepState, runs: dict[int, dict[int, str]]
    ) -> None:
        trials = study.get_trials(deepcopy=False)
        count = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
        state.asked = len(trials)
        state.running = count[TrialState.RUNNING]
        state.complete = count[TrialState.COMPLETE]
        state.pruned = count[TrialState.PRUNED]
        state.failed = count[TrialState.FAIL]
        state.trial_runs = {str(n): [r[k] for k in sorted(r)] for n, r in sorted(runs.items())}
        if state.complete:
            best = study.best_trial
            state.best_trial, state.best_value = best.number, best.value
            state.best_params = dict(best.params)


def _storage_in(paths: SweepPaths) -> str | None:
    """The storage URL the sweep's resolved file names, read without checking the rest."""
    with contextlib.suppress(Exception):
        doc = yaml.safe_load(sweeps.read_resolved(paths))
        return str(doc["sweep"]["storage"])
    return None


def _curve(store: RunStore, run_id: str, tag: str) -> dict[int, float]:
    frame = metrics.load_scalars(store.paths(run_id).dir)
    rows = frame.filter(pl.col("tag") == tag).select("step", "value")
    return {int(s): float(v) for s, v in rows.iter_rows() if v is not None and math.isfinite(v)}


def _final(store: RunStore, run_id: str, tag: str) -> float | None:
    curve = _curve(store, run_id, tag)
    return curve[max(curve)] if curve else None


def _common_steps(
    curves: list[dict[int, float]], after: int, every: int
) -> list[tuple[int, float]]:
    """(step, mean over the runs) past ``after``, up to the step every run of the trial has
    reached: each run's latest value at or before the step. At most one step per ``every``
    steps (the last of each stretch), so a metric logged per episode does not flood the study
    with thousands of reports."""
    if not curves or not all(curves):
        return []
    series = [sorted(c.items()) for c in curves]
    reached = min(s[-1][0] for s in series)
    candidates = sorted({step for s in series for step, _ in s if after < step <= reached})
    steps = [
        step
        for i, step in enumerate(candidates)
        if i + 1 == len(candidates) or candidates[i + 1] // every != step // every
    ]
    out = []
    for step in steps:
        values = []
        for s in series:
            k = bisect.bisect_right(s, step, key=lambda row: row[0])
            if k:
                values.append(s[k - 1][1])
        if len(values) == len(series):
            out.append((step, sum(values) / len(values)))
    return out
