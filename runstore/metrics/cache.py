"""The Parquet copy of what was parsed from an event file, so a fresh process starts fast.

Written beside each event file over ``PERSIST_MIN_BYTES`` by a background thread, named so
that TensorBoard does not take it for events. The event file stays the source of truth: the
cache carries fingerprints of the bytes it describes (the first and last 4 KiB before its
offset), and one that is stale, foreign, half-written or unreadable is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import polars as pl

from runstore import safeio
from runstore.metrics.frame import scalars_frame

if TYPE_CHECKING:
    from runstore.metrics.filestate import FileState, Rows

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

_CACHE_FORMAT = "retro-ml.scalars.v1"
_CACHE_META_KEY = "retro_ml_scalars"
_FINGERPRINT_BYTES = 4096


class _LoadClock:
    """When the last load started (``time.monotonic()``), process-wide on purpose: the writer
    thread yields the GIL to every load in this process, whichever session started it."""

    last = 0.0


def note_load() -> None:
    """A load starts now: queued cache writes wait until loads pause."""
    _LoadClock.last = time.monotonic()


def _fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _cache_path(event_path: str) -> str:
    # The name must not contain "tfevents": TensorBoard reads every such file as events.
    head, name = os.path.split(event_path)
    return os.path.join(head, "." + name.replace("tfevents", "tfev") + ".scalars.parquet")


def _read_fingerprints(fh: BinaryIO, offset: int) -> tuple[str, str]:
    fh.seek(0)
    head = fh.read(min(offset, _FINGERPRINT_BYTES))
    lo = max(0, offset - _FINGERPRINT_BYTES)
    fh.seek(lo)
    tail = fh.read(offset - lo)
    return _fingerprint(head), _fingerprint(tail)


def adopt(state: FileState, fh: BinaryIO, size: int) -> None:
    """Start ``state`` (read from zero) from the file's cache, where it has one worth reading."""
    if PERSIST_CACHE and size >= PERSIST_MIN_BYTES:
        _load_persisted(state, fh, size)


def _load_persisted(state: FileState, fh: BinaryIO, size: int) -> None:
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


def persist_when_due(state: FileState, fh: BinaryIO, mtime_ns: int) -> None:
    """Queue a new cache of the file once it is big enough and has grown enough (or gone
    quiet) since the last one."""
    covered = state.covered()  # open damage at the end is scanned again by a fresh process
    if PERSIST_CACHE and covered > max(state.persisted_offset, PERSIST_MIN_BYTES - 1):
        grown = covered - state.persisted_offset
        quiet = (time.time() - mtime_ns / 1e9) > _QUIET_SECONDS
        if state.persisted_offset == 0 or grown >= _PERSIST_GROWTH * covered or quiet:
            _persist(state, fh)


def _persist(state: FileState, fh: BinaryIO) -> None:
    """Queue the Parquet cache of this file for writing beside it, off the caller's path.

    Building and compressing the frame costs about as much as parsing the file did; the
    writer thread does it while the dashboard goes on (polars releases the GIL). What it
    writes is a snapshot: the arrays are never changed in place, and fingerprints of the bytes
    it describes go with it, so a file rewritten meanwhile simply does not match it.
    """
    covered = state.covered()
    if covered <= 0:
        return
    head, tail = _read_fingerprints(fh, covered)
    meta = {
        "format": _CACHE_FORMAT,
        "event_file": os.path.basename(state.path),
        "offset": covered,
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
    state.persisted_offset = covered
    _writer().submit(_write_cache, _cache_path(state.path), list(state.tags), state.arrays(), meta)


@cache
def _writer() -> ThreadPoolExecutor:
    # One thread: writes of one file land in the order they were queued. Its pending work is
    # finished at interpreter exit, so a CLI that loads and quits still leaves its caches.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-cache")


def _write_cache(target: str, tags: list[str], rows: Rows, meta: dict[str, Any]) -> None:
    # Building the frame holds the GIL; a page loading many runs at once would wait on it.
    # So wait until loads have paused for a moment (a burst of loads is seconds at most).
    while (quiet := time.monotonic() - _LoadClock.last) < _WRITE_WHEN_QUIET:
        time.sleep(_WRITE_WHEN_QUIET - quiet)
    tag, step, wall, value = rows
    df = scalars_frame(tags, tag.astype(np.int64), step, wall, value)
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
