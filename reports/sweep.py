"""What a sweep's report says: the study (read-only, ``analysis.sweep_study``), its best
trials with their runs, the optimisation history, the parameter importances, every trial, and
the sweep file as resolved, its storage password masked."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analysis import sweep_study
from reports.facts import ReportError
from runstore import safeio, sweeps
from runstore.store import RunStore
from runstore.sweep_config import storage_password
from runstore.sweeps import SweepState

#: Trials listed in the "every trial" table (a long study shows its newest this many).
MAX_TRIALS_SHOWN = 300


@dataclass(frozen=True)
class SweepFacts:
    id: str
    state: SweepState
    view: sweep_study.StudyView
    best: pl.DataFrame  # analysis.sweep_study.best_trials
    history: pl.DataFrame  # analysis.sweep_study.best_so_far
    importances: dict[str, float]
    importances_problem: str
    resolved_yaml: str  # the sweep file as the runner resolved it, password masked


def read_sweep_facts(store: RunStore, sweep_id: str) -> SweepFacts:
    paths = sweeps.sweep_paths(store.root, sweep_id)
    state = sweeps.read_sweep_state(paths)
    if state is None:
        raise ReportError(f"sweep {sweep_id}: sweep.json is missing or unreadable (no runner yet?)")
    url = sweep_study.storage_url(paths)
    problem = "" if url else sweep_study.journal_problem(paths)
    found: dict[str, float] = {}
    why = ""
    if problem:
        view = sweep_study.StudyView(pl.DataFrame(), [], state.direction, problem)
    else:
        try:
            study = sweep_study.load_study(sweep_id, paths, url)
            view = sweep_study.study_view(study)
            why = sweep_study.enough_for_importances(view)
            if not why:
                found, why = sweep_study.importances(study)
        except Exception as exc:  # noqa: BLE001 - a damaged journal or a lost server is said
            view = sweep_study.StudyView(
                pl.DataFrame(), [], state.direction, sweep_study.study_problem(url, exc)
            )
    try:
        text = safeio.read_text(paths.resolved)
    except OSError as exc:
        text = f"(resolved.yaml cannot be read: {safeio.problem(exc)})"
    if url and (secret := storage_password(url)):
        text = text.replace(secret, "***")
    empty = not view.trials.height
    return SweepFacts(
        id=sweep_id,
        state=state,
        view=view,
        best=view.trials if empty else sweep_study.best_trials(view),
        history=view.trials if empty else sweep_study.best_so_far(view),
        importances=found,
        importances_problem=why or view.problem,
        resolved_yaml=text,
    )
