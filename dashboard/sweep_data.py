"""Cached reads of the sweeps of the runs folder for the Sweeps page (``runs/sweeps/<id>/``).

Kept apart from dashboard/data.py (the run index) on purpose: a sweep is read from its own
folder (sweep.json, written by the runner) and from its Optuna study, which the runner owns:
the journal file in the folder, or the PostgreSQL database the sweep file names as its
``storage``. Every loader is keyed by the stamps of the files it reads, like the rest of the
dashboard, so a live sweep is re-read when the runner appends to it and costs a ``stat``
otherwise (a database has no stamp: see ``study_key``).

The dashboard never writes to a study: it opens it through ``analysis.sweep_study`` (a
journal whose appends raise, a database connection PostgreSQL keeps read-only), which also
builds the tables and messages shown here, uncached, for the reports too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import streamlit as st

from analysis import sweep_study as study
from analysis.sweep_study import StudyView
from dashboard import data
from dashboard.sweep_database import DATABASE_SECONDS, database
from runstore import sweeps
from runstore.sweeps import SweepPaths, SweepState


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


def storage_url(p: SweepPaths) -> str | None:
    """The database the sweep's study lives in (``postgresql://...``, password and all), or
    None for its journal: read from resolved.yaml as the runner reads it."""
    return _storage_url(str(p.dir), data.stamp(p.resolved))


@st.cache_data(show_spinner=False, max_entries=500)
def _storage_url(folder: str, key: data.Stamp) -> str | None:
    return study.storage_url(SweepPaths(Path(folder)))


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
    return study.load_study(sweep_id, p, storage_url(p), database)


def study_view(sweep_id: str) -> StudyView:
    """The study's trials as a table, re-read when the journal grows (or, in a database,
    when ``study_key`` says)."""
    p = paths(sweep_id)
    url = storage_url(p)
    problem = "" if url else study.journal_problem(p)
    if problem:
        return StudyView(pl.DataFrame(), [], "maximize", problem)
    return _study_view(sweep_id, str(p.dir), study_key(p, url))


@st.cache_data(show_spinner=False, max_entries=100)
def _study_view(sweep_id: str, folder: str, key: tuple[Any, ...]) -> StudyView:
    try:
        return study.study_view(load_study(sweep_id))
    except Exception as exc:  # noqa: BLE001 - a damaged journal or a lost server is shown
        return StudyView(pl.DataFrame(), [], "maximize", _problem(sweep_id, exc))


def importances(sweep_id: str) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances, or why there are none."""
    p = paths(sweep_id)
    view = study_view(sweep_id)
    if view.problem:
        return {}, view.problem
    if why := study.enough_for_importances(view):
        return {}, why
    return _importances(sweep_id, str(p.dir), study_key(p, storage_url(p)))


@st.cache_data(show_spinner=False, max_entries=100)
def _importances(sweep_id: str, folder: str, key: tuple[Any, ...]) -> tuple[dict[str, float], str]:
    try:
        return study.importances(load_study(sweep_id))
    except Exception as exc:  # noqa: BLE001 - the study cannot be read
        return {}, _problem(sweep_id, exc)


def _problem(sweep_id: str, exc: BaseException) -> str:
    return study.study_problem(storage_url(paths(sweep_id)), exc)


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
