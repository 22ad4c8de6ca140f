"""A sweep's Optuna study, read and never written: where it lives (the journal in its folder,
or the PostgreSQL database its sweep file names), its trials as a table, the best value so far
and the parameter importances. The Sweeps page caches these (dashboard/sweep_data.py) and a
sweep's report uses them as they are (reports/sweep.py).

The runner owns every study. A journal is opened through ``ReadOnlyJournal``, whose appends
raise and which creates no missing file (Optuna's own backend would); a database through a
connection PostgreSQL itself keeps read-only, with no table created. A database's password is
never shown: messages name it masked.
"""

from __future__ import annotations

import math
import os
import stat as stat_mod
from dataclasses import dataclass
from typing import Any

import optuna
import polars as pl
from sqlalchemy.engine import make_url

from runstore.config import ConfigError
from runstore.sweep_config import parse_sweep, rdb_url, storage_password
from runstore.sweeps import SweepPaths, read_resolved

#: Optuna's trial states as pages and reports name them.
TRIAL_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
#: Every connection to a study's database: read-only in the server itself, and a host that
#: does not answer costs seconds, not the minutes of a TCP timeout.
_READ_ONLY = {
    "options": "-c default_transaction_read_only=on",
    "connect_timeout": 5,
    "application_name": "retro-ml reader",
}


class ReadOnlyJournal(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file, read and never written: no file is created for a missing
    journal and any append (a ``tell``, a ``report``) raises."""

    def __init__(self, file_path: str) -> None:  # no super(): it would create the file
        self._file_path = file_path
        self._lock = None  # type: ignore[assignment]
        self._log_number_offset = {0: 0}

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PermissionError("the study is read here; only the runner writes it")


def read_only_database(url: str) -> optuna.storages.RDBStorage:
    """A read-only storage on a study's database. It never creates a table (a write) nor
    refuses a schema made by another Optuna version (the runner's Optuna owns it)."""
    return optuna.storages.RDBStorage(
        rdb_url(url),
        engine_kwargs={"connect_args": _READ_ONLY, "pool_pre_ping": True},
        skip_table_creation=True,
        skip_compatibility_check=True,
    )


def storage_url(paths: SweepPaths) -> str | None:
    """The database the sweep's study lives in (``postgresql://...``, password and all), or
    None for its journal: read from resolved.yaml as the runner reads it."""
    try:
        return parse_sweep(read_resolved(paths)).block.storage
    except (OSError, ConfigError):  # the runner fails such a sweep and sweep.json says why
        return None


def journal_problem(paths: SweepPaths) -> str:
    """Why the study cannot be read from this sweep's folder, in words ("" when it can)."""
    try:
        found = os.lstat(paths.journal)
    except FileNotFoundError:
        return "The study has no journal yet (the runner creates it with the first trial)."
    if not stat_mod.S_ISREG(found.st_mode):
        return "study.journal is not a plain file (a link?): it is not read."
    return ""


def load_study(
    sweep_id: str, paths: SweepPaths, url: str | None, database: Any = read_only_database
) -> optuna.Study:
    """The sweep's study, read-only from its journal, or from its database through
    ``database(url)`` (the dashboard passes one that keeps a connection pool)."""
    if url:
        return optuna.load_study(study_name=sweep_id, storage=database(url))
    storage = optuna.storages.JournalStorage(ReadOnlyJournal(str(paths.journal)))
    return optuna.load_study(study_name=sweep_id, storage=storage)


@dataclass(frozen=True)
class StudyView:
    """A study as a plain table, its param names, its direction, and why it could not be
    read."""

    trials: pl.DataFrame  # number, state, value, <param columns>
    params: list[str]
    direction: str
    problem: str = ""


def study_view(study: optuna.Study) -> StudyView:
    """The study's trials as a table (values that are not finite become null)."""
    trials = study.get_trials(deepcopy=False)
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
    return StudyView(frame, names, study.direction.name.lower())


def best_so_far(view: StudyView) -> pl.DataFrame:
    """Complete trials in order with the best value reached so far (the history chart)."""
    done = view.trials.filter(pl.col("state") == "complete").sort("number")
    if done.is_empty():
        return done.select("number", "value").with_columns(best=pl.col("value"))
    best = pl.col("value").cum_max() if view.direction == "maximize" else pl.col("value").cum_min()
    return done.select("number", "value").with_columns(best=best)


def best_trials(view: StudyView, n: int = 5) -> pl.DataFrame:
    """The ``n`` best complete trials, best first."""
    done = view.trials.filter(pl.col("state") == "complete").sort("number")
    ranked = done.sort("value", descending=view.direction == "maximize", maintain_order=True)
    return ranked.head(n)  # of equal values, the earliest trial first


def enough_for_importances(view: StudyView) -> str:
    """Why importances cannot be ranked yet ("" when they can): Optuna needs two complete
    trials and a param."""
    complete = view.trials.filter(pl.col("state") == "complete").height if view.params else 0
    return "" if complete >= 2 else "Importances need at least 2 complete trials with params."


def importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances, or why there are none (e.g. every trial took the
    same value: Optuna raises, which becomes the message)."""
    try:
        found = optuna.importance.get_param_importances(study)
    except Exception as exc:  # noqa: BLE001
        return {}, f"Optuna could not rank the params: {exc}"
    return {k: float(v) for k, v in found.items()}, ""


def database_problem(url: str, exc: BaseException) -> str:
    """Why a study in a database cannot be read, in words, naming its host with the
    password masked (in the URL and in the driver's message alike)."""
    found = make_url(url)
    shown = found.render_as_string(hide_password=True)
    root = _root(exc)
    # KeyError: no study of that name; 42P01 (undefined table): Optuna's tables not made yet.
    if isinstance(root, KeyError) or getattr(root, "pgcode", None) == "42P01":
        return (
            f"The study is not in its database yet (`{shown}`): the runner creates it there "
            "with the first trial."
        )
    reason = " ".join(str(root).split()).rstrip(".")
    if secret := storage_password(url):
        reason = reason.replace(secret, "***")
    return (
        f"The study is in PostgreSQL at {found.host}:{found.port or 5432} (`{shown}`), where "
        f"the runner keeps it, and cannot be read: {reason}\n\nCheck that the server is up and "
        "reachable from this machine, and the user, password and database in the sweep "
        "file's storage."
    )


def study_problem(url: str | None, exc: BaseException) -> str:
    return database_problem(url, exc) if url else f"The study cannot be read: {exc}"


def _root(exc: BaseException) -> BaseException:
    """The driver's own error (psycopg2's, with the server's words): Optuna wraps it in its
    StorageInternalError and SQLAlchemy in its own, each with words of its own."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return getattr(exc, "orig", None) or exc
