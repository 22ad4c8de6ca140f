"""Scalar metrics of a run, read straight from its TensorBoard event files.

Why not TensorBoard's own ``EventAccumulator``: it decodes every record into Python objects
(15-20 µs a record on our 2-core box, ``bench/bench_metrics.py``), keeps them as Python objects,
and stops silently at the first damaged record. The dashboard polls live runs every few
seconds and compares many runs at once, so this module:

* parses the TFRecord framing itself, checks both CRCs of every record and decodes the common
  record shape (one ``simple_value`` per event, as SB3, CleanRL and ``torch.utils.tensorboard``
  write it) in a loop compiled by numba (``runstore.tfrecord``), and hands anything else
  (tensor scalars of TF2/new-style writers, ``SessionLog`` events, text, histograms) to
  protobuf;
* remembers per event file how far it has read (byte offset, inode, size, the bytes just
  before the offset), so a poll reads only the appended bytes and an unchanged run costs a
  directory walk and a few ``stat`` calls;
* splices rows appended to a run's newest file into the run's frame (zero-copy slices plus
  the new rows) instead of merging the whole run again, so a poll costs what was appended;
* keeps a Parquet copy of what it parsed beside each event file over 512 KiB, written by a
  background thread, so a fresh process (a new dashboard session, the CLI) starts fast too.
  The event file stays the source of truth: a cache that is stale, foreign or unreadable is
  ignored and rebuilt;
* tolerates writers: a record cut short by a writer mid-append is left for the next call, a
  record with a bad CRC is skipped and reported (never fatal), and damage at the very end of a
  file that nothing valid follows yet is retried on the next call instead of being skipped.

Several event files in one run folder (a resumed run) form one timeline, ordered by the
wall time of each file's first event, then by name. Data written by an earlier file is
superseded by a later one: explicitly by ``SessionLog.START`` at step S (everything earlier
with step >= S goes, as TensorBoard purges it), and implicitly per tag (a later file that
logs tag T from step S on replaces the earlier file's T at steps >= S, which also removes the
zig-zag when the resumed process logs at different steps than the crashed one did). Then one
value is kept per (tag, step): the last one written. Every event file found under the folder
belongs to that one timeline, so point it at one run, not at a folder holding several.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from runstore import safeio, tfrecord

__all__ = [
    "EPISODE_LENGTH_TAG",
    "EPISODE_RETURN_TAG",
    "CorruptRegion",
    "LoadReport",
    "clear_cache",
    "load_episodes",
    "load_scalars",
    "load_scalars_with_report",
    "wait_for_cache_writes",
]

EPISODE_RETURN_TAG = "episode/return"
EPISODE_LENGTH_TAG = "episode/length"

SCALARS_SCHEMA: dict[str, Any] = {
    "tag": pl.String,
    "step": pl.Int64,
    "wall_time": pl.Float64,
    "value": pl.Float64,
}
EPISODES_SCHEMA: dict[str, Any] = {
    "step": pl.Int64,
    "wall_time": pl.Float64,
    "episode_return": pl.Float64,
    "episode_length": pl.Int64,
}
#: An episode length beyond this (2**53, where floats stop holding every integer) is damage.
_MAX_LENGTH = float(2**53)

#: Write the Parquet cache beside event files. Turned off it changes speed, never results.
PERSIST_CACHE = True
#: Files smaller than this get no cache: below it, parsing (about 2 ms for 280 KiB) costs what
#: reading the Parquet file does; above it the cache halves a fresh process's load.
PERSIST_MIN_BYTES = 512 * 1024
#: Rewrite a file's cache once this share of it is new since the last write (or the file has
#: been quiet for ``_QUIET_SECONDS``); rewriting on every poll of a live run would be O(n^2).
_PERSIST_GROWTH = 0.25
_QUIET_SECONDS = 30.0
#: Cache writes wait until no load has started for this long (see ``_write_cache``).
_WRITE_WHEN_QUIET = 0.25
_LAST_LOAD = [0.0]
#: Bound on cached rows (per-file data plus merged frames) kept by one process.
MAX_CACHED_ROWS = 40_000_000
#: Event files are read in blocks this large, so a huge file never sits in memory whole.
_BLOCK = 32 * 1024 * 1024
#: SB3 Monitor files: one short line per episode; more than this is not a Monitor file.
MONITOR_LIMIT = 256 * 2**20

_CACHE_FORMAT = "retro-ml.scalars.v1"
_CACHE_META_KEY = "retro_ml_scalars"
_FINGERPRINT_BYTES = 4096

_DT_FLOAT = 1
_DT_DOUBLE = 2


def _tensor_scalar(tensor: Any) -> float | None:
    """The single number in a TensorProto (TF2 / new-style scalar summaries), else None."""
    dtype = tensor.dtype
    if dtype == _DT_FLOAT and len(tensor.float_val) == 1 and not tensor.tensor_content:
        return float(tensor.float_val[0])
    if dtype == _DT_DOUBLE and len(tensor.double_val) == 1 and not tensor.tensor_content:
        return float(tensor.double_val[0])
    try:
        from tensorboard.util import tensor_util

        arr = tensor_util.make_ndarray(tensor)
        if arr.size != 1 or arr.dtype.kind not in "fiub":
            return None
        return float(arr.reshape(-1)[0])
    except Exception:  # an unknown dtype or malformed content is not a scalar we can show
        return None


def _event_pb2() -> Any:
    # Imported on first use: loading the protobuf modules costs ~0.1 s the dashboard need not
    # pay when every record takes the compiled path.
    from tensorboard.compat.proto import event_pb2

    return event_pb2


@dataclass
class _SlowResult:
    rec: np.ndarray  # record index of each scalar row
    tags: list[str]
    step: np.ndarray
    wall: np.ndarray
    value: np.ndarray
    session_starts: list[tuple[int, int]]  # (record index, step) of SessionLog.START events
    undecodable: list[int]  # record indices whose bytes are not an Event
    first_wall: tuple[int, float] | None  # (record index, wall_time) of the first event


def _slow_records(
    buf: bytes, rec_ids: np.ndarray, starts: np.ndarray, lens: np.ndarray, plugins: dict[str, str]
) -> _SlowResult:
    """Decode records with protobuf: tensor scalars, SessionLog.START, multi-value summaries.

    ``plugins`` (tag -> plugin name, first seen) persists per file because TF2 writers attach
    the "scalars" metadata to the first event of a tag only.
    """
    event_pb2 = _event_pb2()
    start_status = event_pb2.SessionLog.START
    from_string = event_pb2.Event.FromString
    rec: list[int] = []
    tags: list[str] = []
    steps: list[int] = []
    walls: list[float] = []
    values: list[float] = []
    session_starts: list[tuple[int, int]] = []
    undecodable: list[int] = []
    first_wall: tuple[int, float] | None = None
    for r, s, n in zip(rec_ids.tolist(), starts.tolist(), lens.tolist(), strict=True):
        try:
            ev = from_string(buf[s : s + n])
        except Exception:  # a valid CRC around bytes that are not an Event
            undecodable.append(r)
            continue
        if first_wall is None:
            first_wall = (r, ev.wall_time)
        if ev.HasField("session_log") and ev.session_log.status == start_status:
            session_starts.append((r, ev.step))
        if not ev.HasField("summary"):
            continue
        for v in ev.summary.value:
            if v.HasField("metadata") and v.tag not in plugins:
                plugins[v.tag] = v.metadata.plugin_data.plugin_name
            kind = v.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = v.simple_value
            elif kind == "tensor" and plugins.get(v.tag) == "scalars":
                number = _tensor_scalar(v.tensor)
            else:
                continue
            if number is None:
                continue
            rec.append(r)
            tags.append(v.tag)
            steps.append(ev.step)
            walls.append(ev.wall_time)
            values.append(number)
    return _SlowResult(
        np.array(rec, dtype=np.int64),
        tags,
        np.array(steps, dtype=np.int64),
        np.array(walls, dtype=np.float64),
        np.array(values, dtype=np.float64),
        session_starts,
        undecodable,
        first_wall,
    )


# --------------------------------------------------------------------------------------------
# Per-file state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorruptRegion:
    """Where an event file is damaged, so the UI can say so instead of freezing the curve."""

    path: str
    offset: int
    after_step: int | None  # last step read before the damage in that file
    pending: bool = False  # at the end of the file: retried on the next call


@dataclass(frozen=True)
class LoadReport:
    """What a load found: event files, damaged records, and how much work the call did."""

    files: int
    corrupt_records: int
    corruptions: tuple[CorruptRegion, ...] = ()
    records_parsed: int = 0  # records decoded by this call (0 when nothing changed)
    bytes_parsed: int = 0
    from_cache: bool = False  # True when the call returned the remembered frame untouched


def _no_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros(0, np.uint32),
        np.zeros(0, np.int64),
        np.zeros(0, np.float64),
        np.zeros(0, np.float64),
    )


@dataclass
class _FileState:
    path: str
    dev: int = -1
    ino: int = -1
    size: int = 0
    mtime_ns: int = 0
    offset: int = 0
    n_records: int = 0
    n_rows: int = 0
    first_wall: float | None = None
    tags: list[str] = field(default_factory=list)
    tag_ids: dict[str, int] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )
    starts: list[tuple[int, int]] = field(default_factory=list)  # (row position, step)
    corrupt: list[tuple[int, int | None]] = field(default_factory=list)  # (offset, after_step)
    pending: int | None = None
    tail: bytes = b""  # bytes just before ``offset``: detects a file rewritten in place
    persisted_offset: int = 0
    records_parsed: int = 0  # total records decoded in this process (tests, diagnostics)
    generation: int = 0  # bumped when the file is read again from zero: old rows are void

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tag id, step, wall, value) of every row, the appended chunks joined once."""
        if not self.chunks:
            return _no_rows()
        if len(self.chunks) > 1:
            tag, step, wall, value = (np.concatenate(c) for c in zip(*self.chunks, strict=True))
            self.chunks = [(tag, step, wall, value)]
        return self.chunks[0]

    def rows_from(self, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tag id, step, wall, value) of rows ``start`` onwards, touching only the chunks that
        hold them, so an append costs what was appended."""
        picked: list[tuple[np.ndarray, ...]] = []
        end = self.n_rows
        for chunk in reversed(self.chunks):
            if end <= start:
                break
            begin = end - len(chunk[0])
            picked.append(tuple(c[max(0, start - begin) :] for c in chunk))
            end = begin
        if not picked:
            return _no_rows()
        if len(picked) == 1:
            return picked[0]  # type: ignore[return-value]
        tag, step, wall, value = (np.concatenate(c) for c in zip(*reversed(picked), strict=True))
        return tag, step, wall, value

    def last_step(self) -> int | None:
        for chunk in reversed(self.chunks):
            if len(chunk[1]):
                return int(chunk[1][-1])
        return None

    def tag_id(self, tag: str) -> int:
        tid = self.tag_ids.get(tag)
        if tid is None:
            tid = len(self.tags)
            self.tags.append(tag)
            self.tag_ids[tag] = tid
        return tid


def _reset(state: _FileState) -> None:
    fresh = _FileState(state.path)
    fresh.records_parsed = state.records_parsed
    fresh.generation = state.generation + 1
    state.__dict__.update(fresh.__dict__)


def _parse_block(state: _FileState, buf: bytes, at_eof: bool) -> int:
    """Decode complete records of ``buf`` (file bytes from ``state.offset``); returns bytes used."""
    arr = np.frombuffer(buf, np.uint8)
    framed = tfrecord.frame(arr, at_eof)
    starts, lens, good = framed.data_start, framed.data_len, framed.data_ok
    consumed = framed.consumed
    pending = None if framed.pending < 0 else framed.pending
    if len(starts) and not good[-1] and int(starts[-1] + lens[-1]) + 4 == consumed:
        # A bad payload with nothing valid after it may still be being written: retry later.
        consumed = int(starts[-1]) - 12
        pending = consumed if at_eof else None
        starts, lens, good = starts[:-1], lens[:-1], good[:-1]
    n = len(starts)
    rec_ids = np.arange(state.n_records, state.n_records + n, dtype=np.int64)
    valid = np.flatnonzero(good)
    v_starts, v_lens, v_rec = starts[valid], lens[valid], rec_ids[valid]

    fast = tfrecord.decode_scalars(arr, v_starts, v_lens)
    ok, f_step, f_wall, f_value, group, tag_bytes = fast
    taken = np.flatnonzero(ok)
    lut = np.zeros(max(len(tag_bytes), 1), dtype=np.uint32)
    not_utf8: list[int] = []
    for g, raw in enumerate(tag_bytes):
        try:
            lut[g] = state.tag_id(raw.decode("utf-8"))
        except UnicodeDecodeError:
            not_utf8.append(g)
    if not_utf8:  # protobuf rejects such a tag, so leave those records to it
        keep = ~np.isin(group, not_utf8)
        ok[taken[~keep]] = False
        taken, f_step, f_wall, f_value, group = (
            a[keep] for a in (taken, f_step, f_wall, f_value, group)
        )
    f_tag = lut[group]
    slow_idx = np.flatnonzero(~ok)
    slow = _slow_records(buf, v_rec[slow_idx], v_starts[slow_idx], v_lens[slow_idx], state.plugins)
    s_tag = np.array([state.tag_id(t) for t in slow.tags], dtype=np.uint32)
    f_rec = v_rec[taken]
    if len(slow.rec):  # interleave both paths back into record order
        rec = np.concatenate([f_rec, slow.rec])
        order = np.argsort(rec, kind="stable")
        rec = rec[order]
        tag = np.concatenate([f_tag, s_tag])[order]
        step = np.concatenate([f_step, slow.step])[order]
        wall = np.concatenate([f_wall, slow.wall])[order]
        value = np.concatenate([f_value, slow.value])[order]
    else:
        rec, tag, step, wall, value = f_rec, f_tag, f_step, f_wall, f_value

    if state.first_wall is None:
        firsts = [slow.first_wall] if slow.first_wall is not None else []
        if len(f_rec):
            firsts.append((int(f_rec[0]), float(f_wall[0])))
        if firsts:
            state.first_wall = min(firsts)[1]
    for r, s_step in slow.session_starts:
        state.starts.append((state.n_rows + int(np.searchsorted(rec, r)), s_step))

    # Damage, by file offset, with the last step read before it (for the UI).
    base = state.offset
    damage = framed.damaged[:, 0].tolist()
    damage += [int(starts[i]) - 12 for i in np.flatnonzero(~good)]
    damage += [int(starts[r - state.n_records]) - 12 for r in slow.undecodable]
    prior_step = state.last_step()
    for off in sorted(damage):
        rows_before = int(np.searchsorted(rec, np.searchsorted(starts, off + 12) + state.n_records))
        after = int(step[rows_before - 1]) if rows_before else prior_step
        state.corrupt.append((base + off, after))
    state.pending = None if pending is None else base + pending

    if len(rec):
        state.chunks.append((tag, step, wall, value))
        state.n_rows += len(rec)
    state.n_records += n
    state.records_parsed += n
    state.offset = base + consumed
    return consumed


def _fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _cache_path(event_path: str) -> str:
    # The name must not contain "tfevents": TensorBoard reads every such file as events.
    head, name = os.path.split(event_path)
    return os.path.join(head, "." + name.replace("tfevents", "tfev") + ".scalars.parquet")


def _read_fingerprints(fh: Any, offset: int) -> tuple[str, str]:
    fh.seek(0)
    head = fh.read(min(offset, _FINGERPRINT_BYTES))
    lo = max(0, offset - _FINGERPRINT_BYTES)
    fh.seek(lo)
    tail = fh.read(offset - lo)
    return _fingerprint(head), _fingerprint(tail)


def _load_persisted(state: _FileState, fh: Any, size: int) -> None:
    """Adopt the Parquet cache of this event file if it provably describes its first bytes."""
    path = _cache_path(state.path)
    try:
        safeio.check_file(path)  # a link or a FIFO planted as the cache is no cache
        meta_raw = pl.read_parquet_metadata(path).get(_CACHE_META_KEY)
        if meta_raw is None:
            return
        meta = json.loads(meta_raw)
        if meta.get("format") != _CACHE_FORMAT:
            return
        if meta["event_file"] != os.path.basename(state.path):
            return
        offset = int(meta["offset"])
        if offset <= 0 or offset > size:
            return
        if (meta["head"], meta["tail"]) != _read_fingerprints(fh, offset):
            return
        df = pl.read_parquet(path)
        tags = list(meta["tags"])
        if df.height != int(meta["n_rows"]) or len(set(tags)) != len(tags):
            return
        tag_ids = df["tag"].cast(pl.Enum(tags)).to_physical().to_numpy().astype(np.uint32)
        chunk = (
            tag_ids,
            df["step"].to_numpy().astype(np.int64),
            df["wall_time"].to_numpy().astype(np.float64),
            df["value"].to_numpy().astype(np.float64),
        )
        fh.seek(max(0, offset - 16))
        tail = fh.read(offset - max(0, offset - 16))
    except Exception:  # unreadable, foreign or half-written cache: the events decide
        return
    state.offset = offset
    state.persisted_offset = offset
    state.n_records = int(meta["n_records"])
    state.n_rows = df.height
    state.first_wall = meta["first_wall"]
    state.tags = tags
    state.tag_ids = {t: i for i, t in enumerate(tags)}
    state.plugins = dict(meta["plugins"])
    state.chunks = [chunk] if df.height else []
    state.starts = [(int(a), int(b)) for a, b in meta["starts"]]
    state.corrupt = [(int(a), None if b is None else int(b)) for a, b in meta["corrupt"]]
    state.tail = tail


def _persist(state: _FileState, fh: Any) -> None:
    """Queue the Parquet cache of this file for writing beside it, off the caller's path.

    Building and compressing the frame costs about as much as parsing the file did; the
    writer thread does it while the dashboard goes on (polars releases the GIL). What it
    writes is a snapshot: the arrays are never changed in place, and fingerprints of the bytes
    it describes go with it, so a file rewritten meanwhile simply does not match it.
    """
    if state.offset <= 0:
        return
    head, tail = _read_fingerprints(fh, state.offset)
    meta = {
        "format": _CACHE_FORMAT,
        "event_file": os.path.basename(state.path),
        "offset": state.offset,
        "head": head,
        "tail": tail,
        "n_records": state.n_records,
        "n_rows": state.n_rows,
        "first_wall": state.first_wall,
        "tags": list(state.tags),
        "plugins": dict(state.plugins),
        "starts": list(state.starts),
        "corrupt": list(state.corrupt),
    }
    state.persisted_offset = state.offset
    _writer().submit(_write_cache, _cache_path(state.path), list(state.tags), state.arrays(), meta)


@cache
def _writer() -> ThreadPoolExecutor:
    # One thread: writes of one file land in the order they were queued. Its pending work is
    # finished at interpreter exit, so a CLI that loads and quits still leaves its caches.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-cache")


def _write_cache(
    target: str,
    tags: list[str],
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    meta: dict[str, Any],
) -> None:
    # Building the frame holds the GIL; a page loading many runs at once would wait on it.
    # So wait until loads have paused for a moment (a burst of loads is seconds at most).
    while (quiet := time.monotonic() - _LAST_LOAD[0]) < _WRITE_WHEN_QUIET:
        time.sleep(_WRITE_WHEN_QUIET - quiet)
    tag, step, wall, value = rows
    df = _scalars_frame(tags, tag.astype(np.int64), step, wall, value)
    tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        df.write_parquet(
            tmp,
            compression="zstd",
            compression_level=1,
            statistics=False,
            metadata={_CACHE_META_KEY: json.dumps(meta)},
        )
        os.replace(tmp, target)
    except Exception:  # read-only folder, disk full...: the cache is only an optimisation
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def wait_for_cache_writes() -> None:
    """Block until every queued Parquet cache is on disk (tests, and tools about to exit)."""
    _writer().submit(lambda: None).result()


def _update_file(state: _FileState, st: os.stat_result) -> int:
    """Bring ``state`` up to date with the file; returns bytes parsed."""
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
        state.dev,
        state.ino,
        state.size,
        state.mtime_ns,
    ):
        return 0
    try:
        # No link, FIFO or device, nor a folder on the way that is a link (runstore.safeio).
        fh = safeio.open_file(state.path)  # closed below; open-read-close per poll
    except OSError:
        return 0
    parsed = 0
    try:
        fst = os.fstat(fh.fileno())
        size = fst.st_size
        if (fst.st_dev, fst.st_ino) != (state.dev, state.ino) or size < state.offset:
            _reset(state)  # replaced or shrunk: the old offsets mean nothing now
        elif state.offset > 0:
            lo = max(0, state.offset - 16)
            fh.seek(lo)
            if fh.read(state.offset - lo) != state.tail:
                _reset(state)  # rewritten in place
        state.dev, state.ino = fst.st_dev, fst.st_ino
        if state.offset == 0 and PERSIST_CACHE and size >= PERSIST_MIN_BYTES:
            _load_persisted(state, fh, size)
        fh.seek(state.offset)
        carry = b""
        while state.offset + len(carry) < size:
            want = max(_BLOCK, min(size - state.offset - len(carry), 2 * len(carry)))
            chunk = fh.read(min(want, size - state.offset - len(carry)))
            if not chunk:
                break
            buf = carry + chunk if carry else chunk
            at_eof = state.offset + len(buf) >= size
            used = _parse_block(state, buf, at_eof)
            parsed += used
            carry = buf[used:]
            if at_eof:
                break
        lo = max(0, state.offset - 16)
        fh.seek(lo)
        state.tail = fh.read(state.offset - lo)
        state.size, state.mtime_ns = size, fst.st_mtime_ns
        if PERSIST_CACHE and state.offset > max(state.persisted_offset, PERSIST_MIN_BYTES - 1):
            grown = state.offset - state.persisted_offset
            quiet = (time.time() - fst.st_mtime_ns / 1e9) > _QUIET_SECONDS
            if state.persisted_offset == 0 or grown >= _PERSIST_GROWTH * state.offset or quiet:
                _persist(state, fh)
    finally:
        fh.close()
    return parsed


# --------------------------------------------------------------------------------------------
# Per-run merge
# --------------------------------------------------------------------------------------------


@dataclass
class _RunState:
    key: tuple[Any, ...] = ()
    files: list[str] = field(default_factory=list)
    scalars: pl.DataFrame | None = None
    episodes: pl.DataFrame | None = None
    corrupt: int = 0
    corruptions: tuple[CorruptRegion, ...] = ()
    states: list[_FileState] = field(default_factory=list)
    # What ``scalars`` was built from, so rows appended to the newest file can be spliced in
    # instead of merging the whole run again: (path, generation, rows, starts) per file in
    # timeline order, the newest file's tag count, and per tag (``names`` order) the row where
    # its block ends and its last step.
    layout: tuple[tuple[str, int, int, int], ...] = ()
    newest_tags: int = 0
    names: list[str] = field(default_factory=list)
    tag_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tag_last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


_LOCK = threading.RLock()
_FILES: dict[str, _FileState] = {}
_RUNS: OrderedDict[str, _RunState] = OrderedDict()
#: Rows held in ``_FILES`` and in the merged frames of ``_RUNS``, kept as running totals so a
#: page loading a thousand runs does not sum them all on every load.
_HELD = {"files": 0, "runs": 0}


def clear_cache() -> None:
    """Forget everything remembered in this process (the Parquet caches stay on disk, queued
    ones written first)."""
    wait_for_cache_writes()
    with _LOCK:
        _FILES.clear()
        _RUNS.clear()
        _HELD.update(files=0, runs=0)


def _is_event_file(name: str) -> bool:
    # TensorBoard's own rule (io_wrapper.IsTensorFlowEventsFile): "tfevents" in the name.
    return "tfevents" in name and not name.endswith(".tmp")


def _scan(root: str) -> list[tuple[str, os.stat_result]]:
    """Event files under ``root`` with their stat, found without following symlinks."""
    found: list[tuple[str, os.stat_result]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif _is_event_file(entry.name) and entry.is_file(follow_symlinks=False):
                            found.append((entry.path, entry.stat(follow_symlinks=False)))
                    except OSError:
                        continue
        except OSError:
            continue
    found.sort()
    return found


def _order(states: list[_FileState]) -> list[_FileState]:
    return sorted(
        states, key=lambda s: (s.first_wall if s.first_wall is not None else math.inf, s.path)
    )


def _merge(
    states: list[_FileState], only: tuple[str, ...] | None, dedup: bool
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One timeline from several files: (tags, tag id, step, wall, value, seq), superseded
    rows removed; with ``dedup`` also one row per (tag, step), the last written."""
    states = _order(states)
    names = sorted({t for s in states for t in s.tags if only is None or t in only})
    gid = {t: i for i, t in enumerate(names)}
    parts: list[tuple[np.ndarray, ...]] = []
    start_q: list[int] = []
    start_s: list[int] = []
    base = 0
    for rank, s in enumerate(states):
        tag, step, wall, value = s.arrays()
        lut = np.array([gid.get(t, -1) for t in s.tags] or [-1], dtype=np.int64)
        g = lut[tag.astype(np.int64)] if len(tag) else np.zeros(0, np.int64)
        seq = np.arange(base, base + len(tag), dtype=np.int64)
        if only is not None:
            keep = g >= 0
            g, step, wall, value, seq = g[keep], step[keep], wall[keep], value[keep], seq[keep]
        parts.append((g, step, wall, value, seq, np.full(len(g), rank, dtype=np.int64)))
        for row_pos, s_step in s.starts:
            start_q.append(base + row_pos)
            start_s.append(s_step)
        base += len(tag)
    if parts:
        g, step, wall, value, seq, rank = (np.concatenate(c) for c in zip(*parts, strict=True))
    else:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        g, step, wall, value, seq, rank = empty_i, empty_i, empty_f, empty_f, empty_i, empty_i
    keep = np.ones(len(g), dtype=bool)
    if start_q and len(g):
        # Row (seq, step) is superseded by a START (q, S) written after it with S <= step.
        order = np.argsort(start_s, kind="stable")
        s_sorted = np.asarray(start_s, dtype=np.int64)[order]
        q_max = np.maximum.accumulate(np.asarray(start_q, dtype=np.int64)[order])
        at = np.searchsorted(s_sorted, step, side="right") - 1
        latest = np.where(at >= 0, q_max[np.maximum(at, 0)], -1)
        keep &= latest <= seq
    if len(states) > 1 and len(g) and names:
        # A later file that logs a tag from step S on replaces earlier data of that tag >= S.
        big = np.iinfo(np.int64).max
        first = np.full((len(states), len(names)), big, dtype=np.int64)
        np.minimum.at(first, (rank, g), step)
        later = np.full_like(first, big)
        later[:-1] = np.minimum.accumulate(first[::-1], axis=0)[::-1][1:]
        keep &= step < later[rank, g]
    if not keep.all():
        g, step, wall, value, seq = g[keep], step[keep], wall[keep], value[keep], seq[keep]
    if dedup and len(g):
        # Usually each tag's steps already rise in write order: then a stable sort on the tag
        # alone (radix sort for 16-bit keys) gives tag-then-step order with nothing to drop.
        key = g.astype(np.uint16) if len(names) <= 1 << 16 else g
        order = np.argsort(key, kind="stable")
        sg, ss = g[order], step[order]
        same = sg[1:] == sg[:-1]
        if not (ss[1:][same] > ss[:-1][same]).all():
            order = np.lexsort((seq, step, g))
        g, step, wall, value, seq = g[order], step[order], wall[order], value[order], seq[order]
        last = np.ones(len(g), dtype=bool)
        last[:-1] = (g[1:] != g[:-1]) | (step[1:] != step[:-1])
        if not last.all():
            g, step, wall, value, seq = g[last], step[last], wall[last], value[last], seq[last]
    return names, g, step, wall, value, seq


_FEW_ROWS = 1000


def _scalars_frame(
    names: list[str], g: np.ndarray, step: np.ndarray, wall: np.ndarray, value: np.ndarray
) -> pl.DataFrame:
    if len(g) <= _FEW_ROWS:  # a gather has ~50 µs of set-up (more when its pool is idle)
        tag = pl.Series("tag", [names[i] for i in g.tolist()], dtype=pl.String)
    else:
        tag = pl.Series("tag", names, dtype=pl.String).gather(g)
    return pl.DataFrame(
        [
            tag,
            pl.Series("step", step, dtype=pl.Int64),
            pl.Series("wall_time", wall, dtype=pl.Float64),
            pl.Series("value", value, dtype=pl.Float64),
        ]
    )


def _layout(ordered: list[_FileState]) -> tuple[tuple[str, int, int, int], ...]:
    return tuple((s.path, s.generation, s.n_rows, len(s.starts)) for s in ordered)


def _splice(run: _RunState, ordered: list[_FileState]) -> pl.DataFrame | None:
    """``run.scalars`` with the rows appended to the newest file since, or None when a full
    merge is needed.

    The common live case: one process appends to the newest event file, each tag at steps
    above what it logged before. Then no earlier row is superseded or duplicated, and the new
    rows go at the end of their tag's block. The frame is stitched from zero-copy slices of
    the old one and the new rows, so the cost follows the new rows, not the run's length.
    Anything else (another file changed, a file re-read, a new tag, a SessionLog.START, a step
    that does not rise) falls back to ``_merge``.
    """
    layout = _layout(ordered)
    if run.scalars is None or len(layout) != len(run.layout) or not layout:
        return None
    if layout[:-1] != run.layout[:-1]:
        return None
    path, generation, rows, starts = run.layout[-1]
    newest = ordered[-1]
    if (newest.path, newest.generation, len(newest.starts)) != (path, generation, starts):
        return None
    tag, step, wall, value = newest.rows_from(rows)
    if len(tag) == 0:
        return run.scalars
    if int(tag.max()) >= run.newest_tags:
        return None
    gid = {t: i for i, t in enumerate(run.names)}
    g = np.array([gid[t] for t in newest.tags[: run.newest_tags]], dtype=np.int64)[tag]
    order = np.argsort(g, kind="stable")
    g, step, wall, value = g[order], step[order], wall[order], value[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    if not (step[1:][~first[1:]] > step[:-1][~first[1:]]).all():
        return None
    if not (step[first] > run.tag_last[g[first]]).all():
        return None
    added = _scalars_frame(run.names, g, step, wall, value)
    bounds = np.flatnonzero(first).tolist() + [len(g)]
    pieces: list[pl.DataFrame] = []
    at = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        end = int(run.tag_end[g[lo]])
        pieces += [run.scalars.slice(at, end - at), added.slice(lo, hi - lo)]
        at = end
    pieces.append(run.scalars.slice(at))
    frame = pl.concat(pieces, rechunk=False)
    if frame.n_chunks() > 64:  # keep later filters fast; amortised over many polls
        frame = frame.rechunk()
    run.tag_end = run.tag_end + np.cumsum(np.bincount(g, minlength=len(run.names)))
    last = np.ones(len(g), dtype=bool)
    last[:-1] = first[1:]
    run.tag_last[g[last]] = step[last]
    return frame


def _merged(ordered: list[_FileState]) -> tuple[pl.DataFrame, list[str], np.ndarray, np.ndarray]:
    """A full merge: the frame, its tag names, and per tag the block end and last step."""
    names, g, step, wall, value, _ = _merge(ordered, None, dedup=True)
    counts = np.bincount(g, minlength=len(names)) if len(g) else np.zeros(len(names), np.int64)
    tag_end = np.cumsum(counts).astype(np.int64)
    tag_last = np.full(len(names), np.iinfo(np.int64).min, dtype=np.int64)
    has = counts > 0
    tag_last[has] = step[tag_end[has] - 1]
    return _scalars_frame(names, g, step, wall, value), names, tag_end, tag_last


def _refresh(run_dir: str | Path) -> tuple[_RunState, LoadReport]:
    _LAST_LOAD[0] = time.monotonic()
    root = os.path.abspath(os.fspath(run_dir))
    found = _scan(root)
    key = tuple((p, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) for p, st in found)
    run = _RUNS.get(root)
    if run is not None and run.key == key and run.scalars is not None:
        _RUNS.move_to_end(root)
        report = LoadReport(len(found), run.corrupt, run.corruptions, 0, 0, True)
        return run, report
    records = 0
    parsed = 0
    states: list[_FileState] = []
    for path, st in found:
        state = _FILES.get(path)
        if state is None:
            state = _FILES[path] = _FileState(path)
        before, rows_before = state.records_parsed, state.n_rows
        parsed += _update_file(state, st)
        records += state.records_parsed - before
        _HELD["files"] += state.n_rows - rows_before
        states.append(state)
    ordered = _order(states)
    frame = _splice(run, ordered) if run is not None else None
    if run is None or frame is None:
        frame, names, tag_end, tag_last = _merged(ordered)
        if run is None:
            run = _RunState()
        run.names, run.tag_end, run.tag_last = names, tag_end, tag_last
    regions = []
    for s in states:
        regions += [CorruptRegion(s.path, off, after) for off, after in s.corrupt]
        if s.pending is not None:
            regions.append(CorruptRegion(s.path, s.pending, s.last_step(), pending=True))
    _HELD["runs"] += frame.height - (run.scalars.height if run.scalars is not None else 0)
    run.key, run.files, run.scalars, run.episodes = key, [p for p, _ in found], frame, None
    run.corrupt, run.corruptions, run.states = len(regions), tuple(regions), states
    run.layout = _layout(ordered)
    run.newest_tags = len(ordered[-1].tags) if ordered else 0
    _RUNS[root] = run
    _RUNS.move_to_end(root)
    # Files no longer under the run folder are forgotten.
    old = {p for p in _FILES if p.startswith(root + os.sep)} - set(run.files)
    for p in old:
        _HELD["files"] -= _FILES.pop(p).n_rows
    _evict()
    return run, LoadReport(len(found), run.corrupt, run.corruptions, records, parsed, False)


def _evict() -> None:
    while _HELD["files"] + _HELD["runs"] > MAX_CACHED_ROWS and len(_RUNS) > 1:
        _, run = _RUNS.popitem(last=False)
        _HELD["runs"] -= run.scalars.height if run.scalars is not None else 0
        still = {p for r in _RUNS.values() for p in r.files}
        for p in run.files:
            if p not in still and p in _FILES:
                _HELD["files"] -= _FILES.pop(p).n_rows


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
    with _LOCK:
        run, report = _refresh(run_dir)
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
    with _LOCK:
        run, _ = _refresh(run_dir)
        if run.episodes is None:
            run.episodes = _episodes_from_tags(run.states)
            if run.episodes is None:
                run.episodes = _episodes_from_monitor(Path(run_dir))
        return run.episodes


def _episodes_from_tags(states: list[_FileState]) -> pl.DataFrame | None:
    names, g, step, wall, value, seq = _merge(
        states, (EPISODE_RETURN_TAG, EPISODE_LENGTH_TAG), dedup=False
    )
    if EPISODE_RETURN_TAG not in names:
        return None
    df = pl.DataFrame({"g": g, "step": step, "wall_time": wall, "value": value, "seq": seq}).sort(
        "seq"
    )
    occurrence = pl.int_range(pl.len()).over("step")  # pairs episodes that share a step
    # Values that are not finite are dropped per tag, after pairing (so the episodes after
    # one stay paired with their own lengths): an episode whose return is NaN or inf has no
    # point to draw and goes; a length that is not finite, or too large for an integer, is
    # null and its episode stays. A strict cast of such a length failed the whole Run page.
    returns = (
        df.filter(pl.col("g") == names.index(EPISODE_RETURN_TAG))
        .with_columns(k=occurrence)
        .filter(pl.col("value").is_finite())
        .select("step", "k", "wall_time", "seq", episode_return="value")
    )
    length = pl.col("value").round()
    lengths = (
        df.filter(pl.col("g") == (names.index(EPISODE_LENGTH_TAG) if len(names) > 1 else -1))
        .with_columns(k=occurrence)
        .select(
            "step",
            "k",
            episode_length=pl.when(length.is_finite() & (length.abs() < _MAX_LENGTH))
            .then(length)
            .otherwise(None)
            .cast(pl.Int64),
        )
    )
    out = returns.join(lengths, on=["step", "k"], how="left").sort("step", "seq")
    return out.select(list(EPISODES_SCHEMA)).cast(EPISODES_SCHEMA)


def _episodes_from_monitor(root: Path) -> pl.DataFrame:
    rows: list[tuple[float, float, int]] = []
    try:
        files = sorted(p for p in root.rglob("*monitor.csv") if p.is_file())
    except OSError:
        files = []
    for path in files:
        rows += _read_monitor(path)
    if not rows:
        return pl.DataFrame(schema=EPISODES_SCHEMA)
    rows.sort(key=lambda r: r[0])
    wall = np.array([r[0] for r in rows], dtype=np.float64)
    ret = np.array([r[1] for r in rows], dtype=np.float64)
    length = np.array([r[2] for r in rows], dtype=np.int64)
    return pl.DataFrame(
        {
            "step": np.cumsum(length),
            "wall_time": wall,
            "episode_return": ret,
            "episode_length": length,
        },
        schema=EPISODES_SCHEMA,
    )


def _read_monitor(path: Path) -> list[tuple[float, float, int]]:
    """Rows (absolute wall time, return, length) of one SB3 Monitor file; a line still being
    written (no newline yet) or a damaged line is skipped."""
    import csv
    import io

    try:
        text = safeio.read_text(path, limit=MONITOR_LIMIT)
    except OSError:  # missing, too big, or refused (a link, a FIFO): no rows from it
        return []
    lines = text.splitlines(keepends=True)
    t_start = 0.0
    if lines and lines[0].startswith("#"):
        try:  # the bounded reader: a header nested deep or with 1e999 is no header
            t_start = float(safeio.parse_json(lines[0][1:]).get("t_start", 0.0))
        except (ValueError, AttributeError, TypeError):
            t_start = 0.0
        lines = lines[1:]
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    out: list[tuple[float, float, int]] = []
    reader = csv.DictReader(io.StringIO("".join(lines)))
    for rec in reader:
        try:
            t, r, length = float(rec["t"]), float(rec["r"]), float(rec["l"])
        except (KeyError, TypeError, ValueError):
            continue
        # A row with a value that is not finite (or a length no integer holds) is damaged:
        # int(inf) raised OverflowError, which nothing caught.
        wall = t_start + t
        if math.isfinite(wall + r) and math.isfinite(length) and abs(length) < _MAX_LENGTH:
            out.append((wall, r, int(length)))
    return out
