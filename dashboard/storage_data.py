"""Cached disk figures for the pages: each run's size by kind (System page "Storage", Run
page) and clean-up previews, all through ``runstore.disk`` and ``runstore.cleanup``.

Measuring means a ``stat`` of every file of every run, which no file stamp can key (a run's
files change while it trains), so these loaders keep their answer for a short time instead
(``SIZE_TTL_SECONDS``): a big runs folder is walked at most that often, not on every rerun.
``clear()`` drops them after a clean-up is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import data
from runstore.cleanup import CleanupPlan, InitFromReferences, plan_cleanup
from runstore.disk import RunSize, run_size, runs_folder_size
from runstore.models import RunState
from runstore.paths import UnsafePathError

#: How long a measurement is shown before the folder is walked again.
SIZE_TTL_SECONDS = 30


@dataclass(frozen=True)
class SizeRow:
    """One run's size as the Storage table shows it."""

    id: str
    name: str
    state: RunState | None  # None: run.json is damaged
    size: RunSize
    archived: bool = False  # hidden from the Runs page's default view (issue 17)


@dataclass(frozen=True)
class FolderSizes:
    rows: tuple[SizeRow, ...]  # largest first
    rest: int  # bytes outside any run folder (queue, sweeps, the runner's files)

    @property
    def total(self) -> int:
        return self.rest + sum(r.size.total for r in self.rows)


def folder_sizes() -> FolderSizes:
    """Every run's size by kind and the runs folder's total (kept ``SIZE_TTL_SECONDS``)."""
    return _folder_sizes(str(data.store().root))


@st.cache_data(ttl=SIZE_TTL_SECONDS, show_spinner="Measuring the runs folder...")
def _folder_sizes(root: str) -> FolderSizes:
    sizes, rest = runs_folder_size(Path(root))
    entries, _damaged = data.run_index()
    known = {e.id: e for e in entries}
    rows = []
    for run_id, size in sizes.items():
        entry = known.get(run_id)
        if entry is None:  # run.json damaged or missing: its size is still shown
            rows.append(SizeRow(run_id, run_id, None, size))
        else:
            rows.append(SizeRow(run_id, entry.name, entry.state, size, entry.archived))
    rows.sort(key=lambda r: r.size.total, reverse=True)
    return FolderSizes(tuple(rows), rest)


def size_of(run_id: str) -> RunSize:
    """One run's size by kind (kept ``SIZE_TTL_SECONDS``): the Run page's line; nothing for
    an id that is not a run folder of ours (a link out, a hostile name)."""
    try:
        return _size_of(str(data.store().paths(run_id).dir))
    except UnsafePathError:
        return RunSize()


@st.cache_data(ttl=SIZE_TTL_SECONDS, show_spinner=False, max_entries=200)
def _size_of(run_dir: str) -> RunSize:
    return run_size(Path(run_dir))


@st.cache_resource
def _references(root: str) -> InitFromReferences:
    """Which checkpoints other runs' init_from name: one per runs folder and server."""
    return InitFromReferences()


def cleanup_plans(run_ids: tuple[str, ...], checkpoints: bool, clips: bool) -> list[CleanupPlan]:
    """What a clean-up of these runs would delete now (the preview; the runner makes its own
    plan when it acts, by the same rules), kept ``SIZE_TTL_SECONDS``."""
    return _cleanup_plans(str(data.store().root), run_ids, checkpoints, clips)


@st.cache_data(ttl=SIZE_TTL_SECONDS, show_spinner="Working out what would be freed...")
def _cleanup_plans(
    root: str, run_ids: tuple[str, ...], checkpoints: bool, clips: bool
) -> list[CleanupPlan]:
    rs = data.store()
    referenced = _references(root).of(rs.root, rs.run_ids())
    return [
        plan_cleanup(
            rs.paths(run_id).dir,
            checkpoints=checkpoints,
            clips=clips,
            referenced=referenced.get(run_id, frozenset()),
        )
        for run_id in run_ids
    ]


def clear() -> None:
    """Measure again on the next rerun (a clean-up was asked for)."""
    for loader in (_folder_sizes, _size_of, _cleanup_plans):
        loader.clear()
