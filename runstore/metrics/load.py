"""Loading a run folder: finding its event files, what the process remembers, the public API.

A load walks the folder for event files and ``stat``s them; an unchanged run returns the
frame remembered from the last load. Otherwise each changed file reads what was appended
(``filestate``), and the run's frame is spliced or merged again (``merge``). What is
remembered is bounded (``MAX_CACHED_ROWS``): the runs loaded longest ago go first.

Locks: a load holds its run folder's lock (two loads of one run do the work once) and the
locks of that run's event files (a file shared by two overlapping folders is parsed by one at
a time), never a lock that loads of other runs wait for across a parse: the process-wide lock
guards only the bookkeeping (which files and runs are remembered, the row totals), for
microseconds. So a page showing a healthy run never waits for a big parse of another.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from runstore import safeio
from runstore.metrics import cache, episodes, merge
from runstore.metrics.filestate import FileState, update_file
from runstore.store import printable

#: Bound on cached rows (per-file data plus merged frames) kept by one process.
MAX_CACHED_ROWS = 40_000_000


@dataclass(frozen=True)
class CorruptRegion:
    """Where an event file is damaged, so the UI can say so instead of freezing the curve.

    ``path`` is the file as a page may show it (``runstore.store.printable``): a name whose
    bytes are not UTF-8 comes from ``os.scandir`` with lone surrogates, which Streamlit
    cannot send, so such bytes are written out (``events.out.tfevents.\\xff``)."""

    path: str
    offset: int
    after_step: int | None  # last step read before the damage in that file
    pending: bool = False  # at the end of a file still growing: retried on the next call
    #: Why nothing of the file was read (``"is not a regular file (FIFO)"``, ``"is a symbolic
    #: link"``: runstore.safeio's words), else "". Such a file is skipped, and a run whose
    #: curves miss a file must say so, like any other damage (offset 0).
    refused: str = ""


@dataclass(frozen=True)
class LoadReport:
    """What a load found: event files, damaged records, and how much work the call did."""

    files: int
    corrupt_records: int
    corruptions: tuple[CorruptRegion, ...] = ()
    records_parsed: int = 0  # records decoded by this call (0 when nothing changed)
    bytes_parsed: int = 0
    from_cache: bool = False  # True when the call returned the remembered frame untouched


@dataclass
class RunState:
    key: tuple[Any, ...] = ()
    files: list[str] = field(default_factory=list)
    scalars: pl.DataFrame | None = None
    episodes: pl.DataFrame | None = None
    corrupt: int = 0
    corruptions: tuple[CorruptRegion, ...] = ()
    refused: tuple[CorruptRegion, ...] = ()  # event files never opened (``_scan``)
    states: list[FileState] = field(default_factory=list)
    # What ``scalars`` was built from, so rows appended to the newest file can be spliced in
    # instead of merging the whole run again: (path, generation, rows, starts) per file in
    # timeline order, the newest file's tag count, and per tag (``names`` order) the row where
    # its block ends and its last step.
    layout: merge.Layout = ()
    newest_tags: int = 0
    names: list[str] = field(default_factory=list)
    tag_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tag_last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def _is_event_file(name: str) -> bool:
    # TensorBoard's own rule (io_wrapper.IsTensorFlowEventsFile): "tfevents" in the name.
    return "tfevents" in name and not name.endswith(".tmp")


def _scan(root: str) -> tuple[list[tuple[str, os.stat_result]], tuple[CorruptRegion, ...]]:
    """Event files under ``root`` with their stat, found without following symlinks, and the
    entries named like event files that are refused (a link, a FIFO, a device: never opened,
    see runstore.safeio), each as damage at offset 0 saying why."""
    found: list[tuple[str, os.stat_result]] = []
    refused: list[CorruptRegion] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif not _is_event_file(entry.name):
                            continue
                        elif entry.is_file(follow_symlinks=False):
                            found.append((entry.path, entry.stat(follow_symlinks=False)))
                        else:
                            why = safeio.refusal(entry.stat(follow_symlinks=False).st_mode)
                            refused.append(
                                CorruptRegion(printable(entry.path), 0, None, refused=why)
                            )
                    except OSError:
                        continue
        except OSError:
            continue
    found.sort()
    return found, tuple(sorted(refused, key=lambda r: r.path))


def _regions(states: list[FileState]) -> tuple[CorruptRegion, ...]:
    """Damage of each file; damage at its end is pending until the file stops growing, and a
    record cut short at its end is damage once it has (before, a write in flight)."""
    regions = []
    now = time.time()
    for s in states:
        shown = printable(s.path)
        regions += [CorruptRegion(shown, off, after) for off, after in s.corrupt]
        trailing = s.trailing()
        if trailing is not None:
            pending = not s.settled(now)
            regions.append(CorruptRegion(shown, trailing, s.last_step(), pending=pending))
        elif (cut := s.cut_short()) is not None and s.settled(now):
            # A record still being written is no damage; in a file that stopped growing it
            # is where the file was cut, and the curve stops there.
            regions.append(CorruptRegion(shown, cut, s.last_step()))
    return tuple(regions)


class _Memory:
    """What this process remembers between loads: per event file its read state, per run
    folder its merged frame (least recently loaded first), and running totals of the rows
    both hold (so a page loading a thousand runs does not sum them all on every load).

    The dashboard's sessions are threads of one process. ``lock`` guards the tables and
    totals and is held for bookkeeping only; a load holds its run's lock and its files' locks
    (``holding``) across the parse, so loads of other runs never wait for it.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, FileState] = {}
        self.runs: OrderedDict[str, RunState] = OrderedDict()
        self.file_rows = 0
        self.run_rows = 0
        # Kept when the memory is cleared: a load in flight may hold one.
        self._run_locks: dict[str, threading.Lock] = {}
        self._file_locks: dict[str, threading.Lock] = {}

    def clear(self) -> None:
        with self.lock:
            self.files.clear()
            self.runs.clear()
            self.file_rows = self.run_rows = 0

    def _lock_of(self, table: dict[str, threading.Lock], key: str) -> threading.Lock:
        with self.lock:
            found = table.get(key)
            if found is None:
                found = table[key] = threading.Lock()
            return found

    @contextmanager
    def holding(self, root: str, paths: list[str] | None = None) -> Iterator[None]:
        """Hold the run folder's lock, or with ``paths`` those files' locks (in path order)."""
        with ExitStack() as stack:
            if paths is None:
                stack.enter_context(self._lock_of(self._run_locks, root))
            for path in sorted(paths or ()):
                stack.enter_context(self._lock_of(self._file_locks, path))
            yield

    def _read(self, found: list[tuple[str, os.stat_result]]) -> tuple[list[FileState], int, int]:
        """Each file brought up to date: their states, records and bytes parsed."""
        records = 0
        parsed = 0
        states: list[FileState] = []
        for path, st in found:
            with self.lock:
                state = self.files.get(path)
                if state is None:
                    state = self.files[path] = FileState(path)
            before, rows_before = state.records_parsed, state.n_rows
            parsed += update_file(state, st)  # outside ``lock``: this is the long part
            records += state.records_parsed - before
            with self.lock:
                if self.files.get(path) is state:  # not evicted meanwhile
                    self.file_rows += state.n_rows - rows_before
            states.append(state)
        return states, records, parsed

    def _unchanged(
        self, root: str, key: tuple[Any, ...], files: int
    ) -> tuple[RunState, LoadReport] | None:
        """A run whose files have not changed since its last load, and its report; else None."""
        with self.lock:
            run = self.runs.get(root)
            if run is None or run.key != key or run.scalars is None:
                return None
            self.runs.move_to_end(root)
        # A file may have stopped growing since: pending damage, or a record cut short, is
        # damage once it has.
        if any(c.pending for c in run.corruptions) or any(
            s.cut_short() is not None for s in run.states
        ):
            run.corruptions = run.refused + _regions(run.states)
            run.corrupt = len(run.corruptions)
        return run, LoadReport(files, run.corrupt, run.corruptions, 0, 0, True)

    def refresh(self, root: str) -> tuple[RunState, LoadReport]:
        """Bring the run folder ``root`` up to date; the caller holds ``holding(root)``."""
        cache.note_load()
        found, refused = _scan(root)
        key = tuple((p, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) for p, st in found)
        key += tuple((r.path, r.refused) for r in refused)
        unchanged = self._unchanged(root, key, len(found))
        if unchanged is not None:
            return unchanged
        with self.lock:
            run = self.runs.get(root)
        with self.holding(root, [p for p, _ in found]):
            states, records, parsed = self._read(found)
            ordered = merge.order(states)
            frame = merge.splice(run, ordered) if run is not None else None
            if run is None or frame is None:
                frame, names, tag_end, tag_last = merge.merged(ordered)
                if run is None:
                    run = RunState()
                run.names, run.tag_end, run.tag_last = names, tag_end, tag_last
            regions = refused + _regions(states)
            run.refused = refused
            run.layout = merge.layout(ordered)
            run.newest_tags = len(ordered[-1].tags) if ordered else 0
        run.corrupt, run.corruptions = len(regions), regions
        self._remember(root, run, frame, key, found, states)
        return run, LoadReport(len(found), run.corrupt, run.corruptions, records, parsed, False)

    def _remember(
        self,
        root: str,
        run: RunState,
        frame: pl.DataFrame,
        key: tuple[Any, ...],
        found: list[tuple[str, os.stat_result]],
        states: list[FileState],
    ) -> None:
        """Store the run's new frame, forget files no longer under it, keep within bounds."""
        with self.lock:
            held = run.scalars.height if run.scalars is not None and root in self.runs else 0
            self.run_rows += frame.height - held
            run.key, run.files, run.scalars, run.episodes = key, [p for p, _ in found], frame, None
            run.states = states
            self.runs[root] = run
            self.runs.move_to_end(root)
            old = {p for p in self.files if p.startswith(root + os.sep)} - set(run.files)
            for p in old:
                self.file_rows -= self.files.pop(p).n_rows
            self._evict()

    def _evict(self) -> None:
        while self.file_rows + self.run_rows > MAX_CACHED_ROWS and len(self.runs) > 1:
            _, run = self.runs.popitem(last=False)
            self.run_rows -= run.scalars.height if run.scalars is not None else 0
            still = {p for r in self.runs.values() for p in r.files}
            for p in run.files:
                if p not in still and p in self.files:
                    self.file_rows -= self.files.pop(p).n_rows


#: The one memory of this process, shared by every caller: a run parsed for one dashboard
#: session is parsed for all of them.
_MEMORY = _Memory()


def clear_cache() -> None:
    """Forget everything remembered in this process (the Parquet caches stay on disk, queued
    ones written first)."""
    cache.wait_for_cache_writes()
    _MEMORY.clear()


def load_scalars(run_dir: str | Path) -> pl.DataFrame:
    """Every scalar of a run as one tidy frame: ``tag, step, wall_time, value``.

    Reads all TensorBoard event files under ``run_dir`` (any depth; our runs keep them in
    ``tb/<name>_<k>/``, but plain SB3, CleanRL and ``SummaryWriter`` folders work as well), one
    row per (tag, step), sorted by tag then step. Cheap to call in a polling loop: only bytes
    appended since the last call are parsed, and an unchanged run returns the remembered frame.
    A missing folder gives an empty frame, so a run deleted under a dashboard is no error.
    """
    return load_scalars_with_report(run_dir)[0]


def load_scalars_with_report(run_dir: str | Path) -> tuple[pl.DataFrame, LoadReport]:
    """``load_scalars`` plus what the load found: damaged records (with offsets) and files.

    The dashboard shows ``report.corruptions`` on the run instead of silently stopping the
    curve at the damage, as TensorBoard does.
    """
    root = os.path.abspath(os.fspath(run_dir))
    with _MEMORY.holding(root):
        run, report = _MEMORY.refresh(root)
        assert run.scalars is not None
        return run.scalars, report


def load_episodes(run_dir: str | Path) -> pl.DataFrame:
    """Every finished episode of a run: ``step, wall_time, episode_return, episode_length``.

    Our trainer logs each finished episode as the scalars ``episode/return`` and
    ``episode/length`` at its global step; those are paired in the order they were written
    (several episodes may share a step). Runs without them (a plain SB3 script) fall back to
    SB3 ``Monitor`` files (``*monitor.csv``), which carry no global step: there the step is the
    running sum of episode lengths in finishing order, a lower bound of the true step.
    """
    root = os.path.abspath(os.fspath(run_dir))
    with _MEMORY.holding(root):
        run, _ = _MEMORY.refresh(root)
        if run.episodes is None:
            with _MEMORY.holding(root, run.files):
                run.episodes = episodes.from_tags(run.states)
            if run.episodes is None:
                run.episodes = episodes.from_monitor(Path(run_dir))
        return run.episodes
