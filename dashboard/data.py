"""Cached reads of the runs folder for the pages: every loader goes through ``runstore`` and is
keyed by the size and mtime of the files it reads, so a changed file is re-read on the next
rerun and an unchanged one costs a ``stat``.

Pages call the public functions here and never open a file themselves.
"""

from __future__ import annotations

import dataclasses
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import streamlit as st

from runstore import checkpoints as ckpts
from runstore import reports, safeio, sweeps
from runstore.config import ConfigError, RunConfig
from runstore.config_words import config_words as read_config_words
from runstore.metrics import load_episodes, load_scalars, load_scalars_with_report, settled
from runstore.models import LIVE_STATES, RunRecord, RunState, TrainStatus
from runstore.paths import UnsafePathError, default_runs_dir, file_stamp
from runstore.settings import RunnerSettings, SettingsError, load_settings
from runstore.store import ERROR_SUFFIX, RunStore, printable

Stamp = tuple[int, int]
MISSING: Stamp = (-1, -1)
LOG_TAIL_BYTES = 32_768
CONFIG_TEXT_BYTES = 256 * 1024
#: Rows per page of the Runs table: only the shown page's runs have their status.json and
#: config.yaml read (a runs folder of thousands costs the index, two stats a run, and 50 rows).
PAGE_SIZE = 50
#: The runs the Run page offers in its selector: the newest (any other opens by its link
#: from the Runs page), each one run.json read, cached by its stamp.
RUN_CHOICES = 100
#: Earlier runs of the same game and algorithm the New run page takes its speed from (the
#: newest that many).
SPEED_SAMPLE = 50
#: The states in which a trainer process may be using the machine (the System page's totals).
WORKING_STATES = frozenset({RunState.RUNNING, RunState.STARTING, RunState.STOPPING})
#: The live states in which the trainer advances steps (not paused, not stopping): a run here
#: has an ETA and can be paused.
ADVANCING_STATES = LIVE_STATES - {RunState.PAUSED, RunState.STOPPING}


class FileText(NamedTuple):
    """Text read from a run folder for a page, and why it could not be (a refusal of a link
    or a FIFO, in words; "" when it was read or is simply missing)."""

    text: str
    problem: str = ""


def store() -> RunStore:
    """The runs folder this dashboard shows: $RETRO_ML_RUNS_DIR, else ./runs."""
    return RunStore(default_runs_dir())


def stamp(path: Path) -> Stamp:
    """(size, mtime in ns) of a file, or MISSING: the cache key of everything read from it."""
    return file_stamp(path) or MISSING


def tree_stamp(folder: Path) -> tuple[tuple[bytes, int, int], ...]:
    """Stamps of every file under a folder (event files, checkpoints), sorted by path.

    Paths as bytes: a cache key Streamlit can hash whatever the name (a name that is not
    UTF-8 is a lone surrogate in a str, which its hasher refuses to encode)."""
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            s = stamp(Path(path))
            found.append((os.fsencode(path), s[0], s[1]))
    return tuple(sorted(found))


# -- one row per run --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """What the Runs table shows for one run (plain values, cheap to cache and to test)."""

    id: str
    name: str
    state: RunState
    env: str
    algo: str
    device: str
    timesteps: int
    total_timesteps: int
    fps: float | None
    eta_seconds: float | None
    last_return: float | None
    best_return: float | None
    queued_at: float
    started_at: float | None
    ended_at: float | None
    reason: str
    heartbeat_at: float | None
    time_budget: float | None
    problem: str = ""  # a damaged file of this run, in words (shown on the run)
    # -- sweeps (issue 15): added fields only, so the index work elsewhere merges cleanly --
    sweep: str = ""  # "<sweep id>/t<trial>" for a sweep's trial, else ""
    pruned_at: int | None = None  # the step its sweep's pruner stopped it at
    # -- organising (issue 17): from run.json, set by annotate requests --
    tags: tuple[str, ...] = ()
    note: str = ""
    archived: bool = False
    # -- a Ray cluster (issue 16): the node of the current attempt, "" when on this machine --
    node: str = ""

    @property
    def state_text(self) -> str:
        """The state in words: a pruned trial says so ("stopped (pruned at N)")."""
        return state_text(self.state, self.pruned_at)

    @property
    def progress(self) -> float:
        if self.state == RunState.COMPLETED:
            return 1.0
        if self.total_timesteps <= 0:
            return 0.0
        return max(0.0, min(1.0, self.timesteps / self.total_timesteps))


@st.cache_data(show_spinner=False, max_entries=2000)
def _run_row(root: str, run_id: str, run_key: Stamp, status_key: Stamp, cfg_key: Stamp) -> Any:
    rs = RunStore(root)
    record = rs.read_run(run_id)
    if record is None:
        return None
    status = rs.read_status(run_id)
    config = _config_or_none(rs, run_id)
    row = build_row(record, status, config)
    problems = []
    if status is None and status_key != MISSING:
        problems.append(
            "status.json cannot be read (damaged, or not a plain file): progress and returns "
            "are unknown until the trainer writes it again"
        )
    if config is None and cfg_key != MISSING:
        problems.append("config.yaml cannot be read or is invalid: game and algorithm unknown")
    return dataclasses.replace(row, problem="; ".join(problems)) if problems else row


def build_row(
    record: RunRecord, status: TrainStatus | None, config: RunConfig | None, now: float = 0.0
) -> RunRow:
    total = (status.total_timesteps if status else 0) or (config.n_timesteps if config else 0)
    steps = status.timesteps if status else 0
    fps = status.fps if status and status.fps else None
    eta = None
    if fps and record.state in ADVANCING_STATES and total > steps:
        eta = (total - steps) / fps
        if config and config.time_budget and status:
            eta = min(eta, max(0.0, config.time_budget - status.train_seconds))
    return RunRow(
        id=record.id,
        name=record.name,
        state=record.state,
        env=config.env if config else "?",
        algo=config.algo if config else "?",
        device=(status.device if status and status.device else (config.device if config else "")),
        timesteps=steps,
        total_timesteps=total,
        fps=fps,
        eta_seconds=eta,
        last_return=status.last_episode_return if status else None,
        best_return=status.best_episode_return if status else None,
        queued_at=record.queued_at,
        started_at=record.started_at,
        ended_at=record.ended_at,
        reason=record.reason,
        heartbeat_at=(status.heartbeat_at if status else None),
        time_budget=config.time_budget if config else None,
        sweep=sweep_label(config),
        pruned_at=record.pruned_at,
        tags=tuple(record.tags),
        note=record.note,
        archived=record.archived,
        node=node_label(record),
    )


def node_label(record: RunRecord) -> str:
    """Where the current attempt trains on a Ray cluster: "host (ip)", "waiting for a node"
    while Ray holds it in its queue, "" on the runner's own machine."""
    node = record.node
    if node is None:
        return ""
    if not node.id:
        return "waiting for a node"
    return f"{node.hostname or node.id[:8]} ({node.ip})" if node.ip else node.hostname


def sweep_label(config: RunConfig | None) -> str:
    """``<sweep id>/t<trial>`` (and ``/s<seed index>`` past the first seed), else ""."""
    ref = config.sweep if config is not None else None
    if ref is None:
        return ""
    return f"{ref.id}/t{ref.trial}" + (f"/s{ref.seed_index}" if ref.seed_index else "")


def state_text(state: RunState, pruned_at: int | None) -> str:
    if state == RunState.STOPPED and pruned_at is not None:
        return f"stopped (pruned at {pruned_at:,})"
    return state.value


def _config_or_none(rs: RunStore, run_id: str) -> RunConfig | None:
    try:
        return rs.read_config(run_id)
    except (OSError, ConfigError, ValueError):
        return None


def _row_of(rs: RunStore, run_id: str) -> RunRow | None:
    p = rs.paths(run_id)
    return _run_row(str(rs.root), run_id, stamp(p.run_json), stamp(p.status_json), stamp(p.config))


def runs_listing() -> tuple[list[RunRow], list[str]]:
    """Every readable run (newest first), and the run folders whose run.json is damaged (or a
    link): those are shown as a problem, not as a run. One pass over the folders."""
    rs = store()
    rows, unreadable = [], []
    for run_id in reversed(rs.run_ids()):
        row = _row_of(rs, run_id)
        if row is None:
            unreadable.append(run_id)
        else:
            rows.append(row)
    return rows, unreadable


# -- the index: what filters and pages need, for every run, without reading its rows ---------


@dataclass(frozen=True)
class IndexEntry:
    """What the Runs and Compare pages filter on: from run.json (state, name) and config.yaml
    (game, algorithm), re-read only when one of the two files changed."""

    id: str
    name: str
    state: RunState
    env: str
    algo: str
    sweep_id: str = ""  # the sweep this run is a trial of (issue 15; filter by sweep)
    parent: str = ""  # the run its init_from started it from (lineage), else ""
    # -- organising (issue 17): what the Runs page searches and filters on, from run.json --
    tags: tuple[str, ...] = ()
    note: str = ""
    archived: bool = False


#: root -> run id -> ((run.json stamp, config.yaml stamp), entry or None when unreadable).
#: A plain dict in the server process, not ``st.cache_data``: with thousands of runs, hashing
#: thousands of cache keys per rerun cost more than the stats themselves.
_INDEX: dict[str, dict[str, tuple[tuple[Stamp, Stamp], IndexEntry | None]]] = {}
_INDEX_LOCK = threading.Lock()


def run_index() -> tuple[list[IndexEntry], list[str]]:
    """Every run's index entry (newest first) and the runs whose run.json is damaged: two
    stats a run, and a read only of the runs whose run.json or config.yaml changed."""
    rs = store()
    root = str(rs.root)
    with _INDEX_LOCK:
        known = _INDEX.setdefault(root, {})
    entries, unreadable = [], []
    ids = rs.run_ids()
    fresh: dict[str, tuple[tuple[Stamp, Stamp], IndexEntry | None]] = {}
    for run_id in reversed(ids):
        base = os.path.join(root, run_id)
        key = (
            file_stamp(os.path.join(base, "run.json")) or MISSING,
            file_stamp(os.path.join(base, "config.yaml")) or MISSING,
        )
        cached = known.get(run_id)
        entry = cached[1] if cached is not None and cached[0] == key else _index_entry(rs, run_id)
        fresh[run_id] = (key, entry)
        if entry is None:
            unreadable.append(run_id)
        else:
            entries.append(entry)
    with _INDEX_LOCK:
        _INDEX[root] = fresh
    return entries, unreadable


def _index_entry(rs: RunStore, run_id: str) -> IndexEntry | None:
    try:
        record = rs.read_run(run_id)
    except UnsafePathError:
        return None
    if record is None:
        return None
    # The game and algorithm only (top-level keys of config.yaml, nothing else built or
    # validated): the full config is read for the rows of the page shown.
    try:
        listing = rs.read_config_listing(run_id)
    except (OSError, ConfigError, ValueError):
        listing = None
    return IndexEntry(
        id=run_id,
        name=record.name,
        state=record.state,
        env=(listing.env if listing else None) or "?",
        algo=(listing.algo if listing else None) or "?",
        sweep_id=sweeps.sweep_of_queue_file(record.source_file) or "",
        parent=(listing.parent if listing else None) or "",
        tags=tuple(record.tags),
        note=record.note,
        archived=record.archived,
    )


#: root -> run id -> (config.yaml stamp, its words): the search's part of each config, read
#: the first time a search needs it and again only when the file changed (its stamp is the one
#: the run index took, so a search costs no stat of its own).
_CONFIG_WORDS: dict[str, dict[str, tuple[Stamp, str]]] = {}


def config_words(run_id: str) -> str:
    """Every value of the run's config.yaml with its key path, lower case
    (``runstore.config_words``), for the Runs page's search; "" when it cannot be read."""
    rs = store()
    root = str(rs.root)
    with _INDEX_LOCK:
        indexed = _INDEX.get(root, {}).get(run_id)
        known = _CONFIG_WORDS.setdefault(root, {})
        cached = known.get(run_id)
    try:
        path = rs.paths(run_id).config
    except UnsafePathError:
        return ""
    key = indexed[0][1] if indexed is not None else stamp(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    words = read_config_words(path)
    with _INDEX_LOCK:
        known[run_id] = (key, words)
    return words


def children_of(run_id: str) -> list[IndexEntry]:
    """The runs started from this one's weights (``init_from``), newest first: from the run
    index, so finding them costs no read of their configs."""
    entries, _ = run_index()
    return [e for e in entries if e.parent == run_id]


def rows_of(ids: list[str]) -> list[RunRow]:
    """The full rows of these runs only (a page of the table), in that order."""
    rs = store()
    rows = []
    for run_id in ids:
        try:
            row = _row_of(rs, run_id)
        except UnsafePathError:
            continue
        if row is not None:
            rows.append(row)
    return rows


def list_runs() -> list[RunRow]:
    """Every run, newest first (every run's status.json and config.yaml: tests and small
    folders; the pages use ``run_index`` and read rows only of what they show)."""
    return runs_listing()[0]


def newest_runs(limit: int) -> list[RunRecord]:
    """The run.json of the newest ``limit`` runs whose run.json can be read (newest first):
    one listing of the folder and at most ``limit`` reads, each cached by its file's stamp."""
    rs = store()
    found = []
    for run_id in reversed(rs.run_ids()):
        try:
            record = read_run(run_id)
        except UnsafePathError:
            continue
        if record is not None:
            found.append(record)
            if len(found) >= limit:
                break
    return found


def rows_like(env: str, algo: str, limit: int = SPEED_SAMPLE) -> list[RunRow]:
    """The rows of the newest ``limit`` runs of this game and algorithm (from the index: no
    other run's status.json or config is read)."""
    index, _ = run_index()
    return rows_of([e.id for e in index if e.env == env and e.algo == algo][:limit])


def working_statuses() -> list[TrainStatus]:
    """status.json of every run whose trainer may be working (``WORKING_STATES``, from the
    index): no other run's status.json is read."""
    index, _ = run_index()
    found = []
    for entry in index:
        if entry.state in WORKING_STATES:
            status = read_status(entry.id)
            if status is not None:
                found.append(status)
    return found


def get_row(run_id: str) -> RunRow | None:
    """One run's row, without listing the others (the Run page refreshes it every few s)."""
    try:
        return _row_of(store(), run_id)
    except UnsafePathError:
        return None


# -- one run in depth -------------------------------------------------------------------------


def read_run(run_id: str) -> RunRecord | None:
    return _read_doc(run_id, "run")


def read_status(run_id: str) -> TrainStatus | None:
    return _read_doc(run_id, "status")


def read_config(run_id: str) -> RunConfig | None:
    return _read_doc(run_id, "config")


def config_text(run_id: str) -> FileText:
    """The resolved config.yaml as written to the run folder (never through a link)."""
    return _read_doc(run_id, "config_text")


def _config_file_text(rs: RunStore, run_id: str) -> FileText:
    return _read_text(rs.paths(run_id).config, CONFIG_TEXT_BYTES, tail=False)


#: The one-file reads of a run: name -> (the ``RunPaths`` field of the file, its reader).
_DOCS: dict[str, tuple[str, Callable[[RunStore, str], Any]]] = {
    "run": ("run_json", RunStore.read_run),
    "status": ("status_json", RunStore.read_status),
    "config": ("config", _config_or_none),
    "config_text": ("config", _config_file_text),
}


def _read_doc(run_id: str, doc: str) -> Any:
    rs = store()
    field = _DOCS[doc][0]
    return _cached_doc(str(rs.root), run_id, doc, stamp(getattr(rs.paths(run_id), field)))


@st.cache_data(show_spinner=False, max_entries=2000)
def _cached_doc(root: str, run_id: str, doc: str, key: Stamp) -> Any:
    return _DOCS[doc][1](RunStore(root), run_id)


def _read_text(path: Path, limit: int, *, tail: bool) -> FileText:
    try:
        read = safeio.read_tail if tail else safeio.read_bytes
        raw = read(path, limit=limit)
    except FileNotFoundError:
        return FileText("")
    except OSError as exc:  # refused (a link, a FIFO, too big) or unreadable: say which
        return FileText("", safeio.problem(exc, path.name))
    return FileText(raw.decode("utf-8", errors="replace"))


def run_scalars(run_id: str) -> pl.DataFrame:
    """Every TensorBoard scalar of a run: [tag, step, wall_time, value]."""
    return _read_events(run_id, "scalars")


def run_episodes(run_id: str) -> pl.DataFrame:
    """Episodes of a run: [step, wall_time, episode_return, episode_length]."""
    return _read_events(run_id, "episodes")


def metric_problems(run_id: str) -> list[str]:
    """Damaged places in the run's event files, in words (the curves stop there)."""
    return _read_events(run_id, "problems")


def _damage(run_dir: str) -> list[str]:
    _frame, report = load_scalars_with_report(run_dir)
    return [
        f"{Path(c.path).name} was not read: it {c.refused}"
        if c.refused
        else f"{Path(c.path).name} is damaged at byte {c.offset:,}"
        + (f" (after step {c.after_step:,})" if c.after_step is not None else "")
        for c in report.corruptions
        if not c.pending  # a record still being written is not damage
    ]


#: What is read from a run's event files, by name: each keyed by the stamps of all of them.
_EVENT_READS: dict[str, Callable[[str], Any]] = {
    "scalars": load_scalars,
    "episodes": load_episodes,
    "problems": _damage,
}


def _read_events(run_id: str, what: str) -> Any:
    p = store().paths(run_id)
    stamps = tree_stamp(p.tb)
    # Damage at a file's end turns from pending to damage once the files stop growing.
    quiet = all(settled(mtime) for _, _, mtime in stamps)
    return _cached_events(str(p.dir), what, (stamps, quiet))


@st.cache_data(show_spinner=False, max_entries=600)
def _cached_events(run_dir: str, what: str, key: Any) -> Any:
    return _EVENT_READS[what](run_dir)


@dataclass(frozen=True)
class CheckpointRow:
    step: int
    name: str
    complete: bool
    size_bytes: int
    saved_at: float


def list_checkpoints(run_id: str) -> list[CheckpointRow]:
    """Checkpoints of a run, newest first, with whether each can be resumed from."""
    p = store().paths(run_id)
    return _checkpoints(str(p.checkpoints), tree_stamp(p.checkpoints))


@st.cache_data(show_spinner=False, max_entries=200)
def _checkpoints(folder: str, key: Any) -> list[CheckpointRow]:
    rows = []
    for c in ckpts.list_checkpoints(Path(folder)):
        # lstat: a link's target (its size, its time) is nothing of this checkpoint's
        stats = [os.lstat(f) for f in c.dir.iterdir()]
        files = [s for s in stats if stat_is_file(s)]
        rows.append(
            CheckpointRow(
                step=c.step,
                name=c.dir.name,
                complete=ckpts.is_complete(c.dir),
                size_bytes=sum(s.st_size for s in files),
                saved_at=max((s.st_mtime for s in files), default=0.0),
            )
        )
    return rows


def log_tail(run_id: str, max_lines: int = 60) -> FileText:
    """The last lines of the training process's output (stdout and stderr); a planted link or
    FIFO is refused (``problem``), never followed or waited on."""
    p = store().paths(run_id)
    return _log_tail(str(p.trainer_log), stamp(p.trainer_log), max_lines)


@st.cache_data(show_spinner=False, max_entries=200)
def _log_tail(path: str, key: Stamp, max_lines: int) -> FileText:
    text, problem = _read_text(Path(path), LOG_TAIL_BYTES, tail=True)
    return FileText("\n".join(text.splitlines()[-max_lines:]), problem)


# -- queue and runner -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    name: str  # as shown: escaped (``printable``), a name that is not UTF-8 included
    waiting_seconds: float
    problem: str | None = None  # why the runner could neither start nor move it


@dataclass(frozen=True)
class RejectedItem:
    name: str  # as shown (``printable``)
    error: str
    rejected_at: float


def queue_items() -> list[QueueItem]:
    now = time.time()
    rs = store()
    items = []
    for path in rs.queue_files():
        s = stamp(path)
        waiting = max(0.0, now - s[1] / 1e9) if s != MISSING else 0.0
        # A name in bytes that are not UTF-8 comes as lone surrogates, which Streamlit cannot
        # send (the page crashed for good); controls and bidi overrides would mislead.
        items.append(QueueItem(printable(path.name), waiting, rs.refusal_note(path)))
    return items


def rejected_items(limit: int = 20) -> list[RejectedItem]:
    """Queue files the runner refused, newest first, with the reason it wrote beside each."""
    rs = store()
    folder = rs.rejected_dir
    if folder.is_symlink() or not folder.is_dir():  # a link out: not even its names are shown
        return []
    found = []
    for path in folder.iterdir():
        if path.name.endswith(ERROR_SUFFIX) or path.name.startswith("."):
            continue
        error = rs.refusal_note(path) or "(no error file)"
        found.append(RejectedItem(printable(path.name), error, stamp(path)[1] / 1e9))
    return sorted(found, key=lambda r: r.rejected_at, reverse=True)[:limit]


def runner_alive() -> bool:
    return store().runner_is_alive()


def safe_run_id(value: object) -> str | None:
    """A run id from outside (URL, widget) if it names a run in this folder, else None."""
    if not isinstance(value, str):
        return None
    try:
        p = store().paths(value)
    except UnsafePathError:
        return None
    return value if p.run_json.exists() else None


def runner_settings() -> tuple[RunnerSettings, str]:
    """settings.yaml of this runs folder (defaults when absent), and its problems if invalid."""
    try:
        return load_settings(store().root), ""
    except SettingsError as exc:
        return RunnerSettings(), "\n".join(f"- {p}" for p in exc.problems)


def stat_is_file(st: os.stat_result) -> bool:
    """A regular file by its lstat (not a link, FIFO or folder)."""
    return stat_mod.S_ISREG(st.st_mode)


# -- reports (runs/reports/: runstore.reports) ------------------------------------------------

#: The largest report the Reports page offers for download (a report of 40 runs is ~2 MB).
MAX_REPORT_BYTES = 64 * 1024 * 1024


def report_files() -> list[reports.ReportFile]:
    """The reports, newest first (one scandir: cheap enough for every rerun)."""
    return reports.list_reports(store().root)


def report_jobs() -> list[reports.ReportJob]:
    """The runner's report jobs, newest first, read again only when the jobs folder changed
    (a job record is renamed into it, which moves the folder's mtime)."""
    folder = reports.report_paths(store().root).jobs
    return _report_jobs(str(store().root), stamp(folder))


@st.cache_data(show_spinner=False, max_entries=20)
def _report_jobs(root: str, key: Stamp) -> list[reports.ReportJob]:
    return reports.read_jobs(Path(root), limit=20)


def report_bytes(path: str) -> bytes:
    """A report file's bytes for a download button (bounded, link-free: runstore.safeio)."""
    return _report_bytes(path, stamp(Path(path)))


@st.cache_data(show_spinner=False, max_entries=20)
def _report_bytes(path: str, key: Stamp) -> bytes:
    try:
        return safeio.read_bytes(path, limit=MAX_REPORT_BYTES)
    except OSError as exc:
        return f"this report cannot be read: {safeio.problem(exc)}".encode()
