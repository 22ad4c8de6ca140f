"""Cached reads of the sweeps of the runs folder for the Sweeps page (``runs/sweeps/<id>/``).

Kept apart from dashboard/data.py (the run index) on purpose: a sweep is read from its own
folder (sweep.json, written by the runner) and from its Optuna study, which the runner owns:
the journal file in the folder, or the PostgreSQL database the sweep file names as its
``storage``. Every loader is keyed by the stamps of the files it reads, like the rest of the
dashboard, so a live sweep is re-read when the runner appends to it and costs a ``stat``
otherwise (a database has no stamp: see ``study_key``).

The dashboard must never write to a study (Optuna's own file backend creates a missing file,
and a study object could be told things): the journal is opened through ``ReadOnlyJournal``,
whose appends raise, and a database through a connection PostgreSQL itself keeps read-only,
with no table created. A database's password is never shown: messages name it masked.
"""

from __future__ import annotations

import math
import os
import stat as stat_mod
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import streamlit as st

from dashboard import data
from dashboard.sweep_database import DATABASE_SECONDS, database, database_problem
from runstore import sweeps
from runstore.config import ConfigError
from runstore.sweep_config import parse_sweep
from runstore.sweeps import SweepPaths, SweepState

#: Optuna's trial states as the page names them.
TRIAL_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}


class ReadOnlyJournal(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file, read and never written: no file is created for a missing
    journal and any append (a ``tell``, a ``report``) raises."""

    def __init__(self, file_path: str) -> None:  # no super(): it would create the file
        self._file_path = file_path
        self._lock = None  # type: ignore[assignment]
        self._log_number_offset = {0: 0}

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PermissionError("the dashboard reads the study; only the runner writes it")


@dataclass(frozen=True)
class SweepSummary:
    """One sweep as the list at the top of the page shows it."""

    id: str
    state: SweepState | None  # None until the runner writes sweep.json (or it is damaged)

    @property
    def label(self) -> str:
        if self.state is None:
            return f"{self.id} — waiting for the runner"
        return f"{self.state.name} — {self.state.state} ({self.id})"


def paths(sweep_id: str) -> SweepPaths:
    return sweeps.sweep_paths(data.store().root, sweep_id)


def sweep_list() -> list[SweepSummary]:
    """Every sweep, newest first, with its sweep.json (re-read only when it changed)."""
    root = data.store().root
    found = []
    for sweep_id in reversed(sweeps.sweep_ids(root)):
        p = sweeps.sweep_paths(root, sweep_id)
        found.append(SweepSummary(sweep_id, _state(str(p.dir), data.stamp(p.state))))
    return found


@st.cache_data(show_spinner=False, max_entries=500)
def _state(folder: str, key: data.Stamp) -> SweepState | None:
    return sweeps.read_sweep_state(SweepPaths(Path(folder)))


def journal_problem(p: SweepPaths) -> str:
    """Why the study cannot be read from this sweep's folder, in words ("" when it can)."""
    try:
        st_ = os.lstat(p.journal)
    except FileNotFoundError:
        return "The study has no journal yet (the runner creates it with the first trial)."
    if not stat_mod.S_ISREG(st_.st_mode):
        return "study.journal is not a plain file (a link?): it is not read."
    return ""


def storage_url(p: SweepPaths) -> str | None:
    """The database the sweep's study lives in (``postgresql://...``, password and all), or
    None for its journal: read from resolved.yaml as the runner reads it."""
    return _storage_url(str(p.dir), data.stamp(p.resolved))


@st.cache_data(show_spinner=False, max_entries=500)
def _storage_url(folder: str, key: data.Stamp) -> str | None:
    try:
        return parse_sweep(sweeps.read_resolved(SweepPaths(Path(folder)))).block.storage
    except (OSError, ConfigError):  # the runner fails such a sweep and sweep.json says why
        return None


def study_key(p: SweepPaths, url: str | None) -> tuple[Any, ...]:
    """The cache key of what is read from the study. A journal's own stamp; a database has
    none, so sweep.json's stamp (the runner rewrites it when it tells a trial, so this
    runner's news shows at once) and a clock bucket of ``DATABASE_SECONDS`` (a study shared
    by several machines is told things by runners that never touch this sweep.json)."""
    if url:
        return (data.stamp(p.state), int(time.time() // DATABASE_SECONDS))
    return data.stamp(p.journal)


def load_study(sweep_id: str) -> optuna.Study:
    """The sweep's study, loaded read-only from its journal or its database (not cached:
    pass it on)."""
    p = paths(sweep_id)
    url = storage_url(p)
    if url:
        return optuna.load_study(study_name=sweep_id, storage=database(url))
    storage = optuna.storages.JournalStorage(ReadOnlyJournal(str(p.journal)))
    return optuna.load_study(study_name=sweep_id, storage=storage)


@dataclass(frozen=True)
class StudyView:
    """What the page draws from one study: a plain table (cached), the param names, and
    why it could not be read."""

    trials: pl.DataFrame  # number, state, value, <param columns>, start, end
    params: list[str]
    direction: str
    problem: str = ""


def study_view(sweep_id: str) -> StudyView:
    """The study's trials as a table, re-read when the journal grows (or, in a database,
    when ``study_key`` says)."""
    p = paths(sweep_id)
    url = storage_url(p)
    problem = "" if url else journal_problem(p)
    if problem:
        return StudyView(pl.DataFrame(), [], "maximize", problem)
    return _study_view(sweep_id, str(p.dir), study_key(p, url))


@st.cache_data(show_spinner=False, max_entries=100)
def _study_view(sweep_id: str, folder: str, key: tuple[Any, ...]) -> StudyView:
    try:
        study = load_study(sweep_id)
        trials = study.get_trials(deepcopy=False)
        direction = study.direction.name.lower()
    except Exception as exc:  # noqa: BLE001 - a damaged journal or a lost server is shown
        return StudyView(pl.DataFrame(), [], "maximize", _problem(sweep_id, exc))
    names = sorted({k for t in trials for k in t.params})
    rows: dict[str, list[Any]] = {"number": [], "state": [], "value": []}
    for name in names:
        rows[name] = []
    for t in trials:
        rows["number"].append(t.number)
        rows["state"].append(TRIAL_STATES.get(t.state.name, t.state.name.lower()))
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        rows["value"].append(value)
        for name in names:
            rows[name].append(t.params.get(name))
    frame = pl.DataFrame(
        rows,
        schema_overrides={"number": pl.Int64, "value": pl.Float64, "state": pl.Utf8},
        strict=False,
    )
    return StudyView(frame, names, direction)


def best_so_far(view: StudyView) -> pl.DataFrame:
    """Complete trials in order with the best value reached so far (the history chart)."""
    done = view.trials.filter(pl.col("state") == "complete").sort("number")
    if done.is_empty():
        return done.select("number", "value").with_columns(best=pl.col("value"))
    best = pl.col("value").cum_max() if view.direction == "maximize" else pl.col("value").cum_min()
    return done.select("number", "value").with_columns(best=best)


def importances(sweep_id: str) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances, or why there are none: they need two complete trials
    and a param that varies (Optuna raises otherwise, which is shown as a message)."""
    p = paths(sweep_id)
    view = study_view(sweep_id)
    if view.problem:
        return {}, view.problem
    complete = view.trials.filter(pl.col("state") == "complete").height if view.params else 0
    if complete < 2:
        return {}, "Importances need at least 2 complete trials with params."
    return _importances(sweep_id, str(p.dir), study_key(p, storage_url(p)))


@st.cache_data(show_spinner=False, max_entries=100)
def _importances(sweep_id: str, folder: str, key: tuple[Any, ...]) -> tuple[dict[str, float], str]:
    try:
        found = optuna.importance.get_param_importances(load_study(sweep_id))
    except Exception as exc:  # noqa: BLE001 - e.g. every trial took the same value
        return {}, f"Optuna could not rank the params: {_problem(sweep_id, exc)}"
    return {k: float(v) for k, v in found.items()}, ""


def _problem(sweep_id: str, exc: BaseException) -> str:
    url = storage_url(paths(sweep_id))
    return database_problem(url, exc) if url else f"The study cannot be read: {exc}"


def seed_spread(state: SweepState, metric: str) -> dict[int, tuple[float, float] | None]:
    """Per trial: (lowest, highest) final metric over its runs, when it has two or more runs
    that logged the metric (a one-seed trial has no spread)."""
    spread: dict[int, tuple[float, float] | None] = {}
    for trial, run_ids in state.trial_runs.items():
        finals = []
        if len(run_ids) > 1:
            for run_id in run_ids:
                if data.safe_run_id(run_id) is None:
                    continue
                frame = data.run_scalars(run_id)
                if frame.is_empty():
                    continue
                rows = frame.filter(pl.col("tag") == metric).sort("step")
                if rows.height:
                    finals.append(float(rows["value"][-1]))
        spread[int(trial)] = (min(finals), max(finals)) if len(finals) > 1 else None
    return spread
