"""Per event file: how far it has been read, and the rows read so far.

A poll reads only the bytes appended since the last one. What is remembered per file (byte
offset, device and inode, size, mtime, the 16 bytes just before the offset) tells an append
from a file replaced, shrunk or rewritten in place; those are read again from zero (and their
``generation`` bumped, so a merged frame built on the old rows is not spliced onto). Damage is
recorded by file offset, with the last step read before it, for the UI.

Bounded whatever the file holds: a file is read in blocks of ``_BLOCK`` bytes, and what is
kept between blocks is at most one record (``tfrecord.MAX_RECORD_BYTES`` + 16 bytes; a longer
length header is damage) or the last 11 bytes of a damaged stretch. So reading one file holds
at most about ``2 * _BLOCK + 2 * MAX_RECORD_BYTES`` (96 MiB) of its bytes at a time, plus index
arrays for the records of one block and the rows decoded, whether it is 1 KiB or a 2 GB
sparse file. Damage that nothing valid follows is scanned on block by block (runs of zeros a
page at a time, a sparse file's holes skipped) and not read again: the scan goes on from where
it stopped when the file grows.

Damage at the end of a file (nothing valid after it yet: a bad last record, or bytes that are
no record) may be a write in flight, so it is "pending" while the file may still be growing,
and damage once it has stopped: its mtime is ``SETTLED_SECONDS`` or more in the past. A live
trainer's file is rewritten at every log dump (seconds apart); writers append whole records,
so a live file never ends in 12 or more bytes of non-record for long.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from runstore import safeio, tfrecord
from runstore.metrics import cache
from runstore.metrics.protobuf import SlowResult, slow_records

#: Event files are read in blocks this large, so a huge file never sits in memory whole.
_BLOCK = 32 * 1024 * 1024
#: Damage at the end of a file is pending until the file has not changed for this long.
SETTLED_SECONDS = 30.0
#: Bytes kept from a damaged stretch with nothing valid in it: a header may start in them.
_HEADER_TAIL = 11

Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (tag id, step, wall, value)


def settled(mtime_ns: int, now: float | None = None) -> bool:
    """A file last changed at ``mtime_ns`` has stopped growing: damage at its end is damage."""
    now = time.time() if now is None else now
    return now - mtime_ns / 1e9 >= SETTLED_SECONDS


def _no_rows() -> Rows:
    return (
        np.zeros(0, np.uint32),
        np.zeros(0, np.int64),
        np.zeros(0, np.float64),
        np.zeros(0, np.float64),
    )


@dataclass
class FileState:
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
    chunks: list[Rows] = field(default_factory=list)
    starts: list[tuple[int, int]] = field(default_factory=list)  # (row position, step)
    corrupt: list[tuple[int, int | None]] = field(default_factory=list)  # (offset, after_step)
    pending: int | None = None  # a bad last record, retried from its header on the next read
    open_damage: int | None = None  # damage nothing valid follows yet; ``offset`` scans on
    tail: bytes = b""  # bytes just before ``offset``: detects a file rewritten in place
    persisted_offset: int = 0
    records_parsed: int = 0  # total records decoded in this process (tests, diagnostics)
    generation: int = 0  # bumped when the file is read again from zero: old rows are void

    def arrays(self) -> Rows:
        """(tag id, step, wall, value) of every row, the appended chunks joined once."""
        if not self.chunks:
            return _no_rows()
        if len(self.chunks) > 1:
            tag, step, wall, value = (np.concatenate(c) for c in zip(*self.chunks, strict=True))
            self.chunks = [(tag, step, wall, value)]
        return self.chunks[0]

    def rows_from(self, start: int) -> Rows:
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

    def covered(self) -> int:
        """Bytes accounted for by records and closed damage (what a cache may describe)."""
        return self.offset if self.open_damage is None else self.open_damage

    def trailing(self) -> int | None:
        """Where the damage at the end of the file starts, if it ends in damage."""
        return self.pending if self.open_damage is None else self.open_damage

    def cut_short(self) -> int | None:
        """Where a record cut short at the file's end starts, if the file ends in one: bytes
        after the last whole record that are no damage (yet). A writer mid-record leaves
        that; a file that has stopped growing with it was cut (``_regions`` in ``load``)."""
        if self.trailing() is None and self.offset < self.size:
            return self.offset
        return None

    def settled(self, now: float | None = None) -> bool:
        """The file has stopped growing: unchanged for ``SETTLED_SECONDS`` (by its mtime)."""
        return settled(self.mtime_ns, now)

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


def _reset(state: FileState) -> None:
    fresh = FileState(state.path)
    fresh.records_parsed = state.records_parsed
    fresh.generation = state.generation + 1
    state.__dict__.update(fresh.__dict__)


def _fast_rows(
    state: FileState, arr: np.ndarray, starts: np.ndarray, lens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The compiled decoder's rows: (taken per record, record positions taken, tag id, step,
    wall, value). A tag that is not UTF-8 leaves its records to protobuf, which rejects it."""
    ok, f_step, f_wall, f_value, group, tag_bytes = tfrecord.decode_scalars(arr, starts, lens)
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
    return ok, taken, lut[group], f_step, f_wall, f_value


def _note_damage(
    state: FileState,
    framed: tfrecord.Framed,
    starts: np.ndarray,
    good: np.ndarray,
    slow: SlowResult,
    rec: np.ndarray,
    step: np.ndarray,
) -> None:
    """Damage, by file offset, with the last step read before it (for the UI)."""
    damage = framed.damaged[:, 0].tolist()
    damage += [int(starts[i]) - 12 for i in np.flatnonzero(~good)]
    damage += [int(starts[r - state.n_records]) - 12 for r in slow.undecodable]
    prior_step = state.last_step()
    for off in sorted(damage):
        rows_before = int(np.searchsorted(rec, np.searchsorted(starts, off + 12) + state.n_records))
        after = int(step[rows_before - 1]) if rows_before else prior_step
        state.corrupt.append((state.offset + off, after))


def _parse_block(state: FileState, buf: bytes, at_eof: bool) -> int:
    """Decode complete records of ``buf`` (file bytes from ``state.offset``); returns bytes used."""
    arr = np.frombuffer(buf, np.uint8)
    framed = tfrecord.frame(arr, at_eof)
    starts, lens, good = framed.data_start, framed.data_len, framed.data_ok
    consumed = framed.consumed
    pending = None
    if (
        framed.open_damage < 0
        and len(starts)
        and not good[-1]
        and int(starts[-1] + lens[-1]) + 4 == consumed
    ):
        # A bad payload with nothing valid after it may still be being written: retry later.
        consumed = int(starts[-1]) - 12
        pending = consumed if at_eof else None
        starts, lens, good = starts[:-1], lens[:-1], good[:-1]
    n = len(starts)
    rec_ids = np.arange(state.n_records, state.n_records + n, dtype=np.int64)
    valid = np.flatnonzero(good)
    v_starts, v_lens, v_rec = starts[valid], lens[valid], rec_ids[valid]

    ok, taken, f_tag, f_step, f_wall, f_value = _fast_rows(state, arr, v_starts, v_lens)
    slow_idx = np.flatnonzero(~ok)
    slow = slow_records(buf, v_rec[slow_idx], v_starts[slow_idx], v_lens[slow_idx], state.plugins)
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
    _note_damage(state, framed, starts, good, slow, rec, step)
    state.pending = None if pending is None else state.offset + pending

    if len(rec):
        state.chunks.append((tag, step, wall, value))
        state.n_rows += len(rec)
    state.n_records += n
    state.records_parsed += n
    if framed.open_damage >= 0:
        # Offsets up to len(buf) - 12 hold no header: the scan goes on from the next one.
        state.open_damage = state.offset + framed.open_damage
        consumed = max(framed.open_damage + 1, len(buf) - _HEADER_TAIL)
    state.offset += consumed
    return consumed


def _scan_damage(state: FileState, buf: bytes, at_eof: bool) -> int:
    """Go on through open damage: to the next valid header (the damage closes, and records are
    read from there), or through ``buf`` but its last 11 bytes; returns bytes used."""
    at = tfrecord.resync(np.frombuffer(buf, np.uint8))
    if at < 0:
        used = max(0, len(buf) - _HEADER_TAIL)
        state.offset += used
        return used
    assert state.open_damage is not None
    state.corrupt.append((state.open_damage, state.last_step()))
    state.open_damage = None
    state.offset += at
    return at + _parse_block(state, buf[at:], at_eof)


def _read_tail(state: FileState, fh: BinaryIO) -> bytes:
    """The (up to) 16 bytes just before ``state.offset``."""
    lo = max(0, state.offset - 16)
    fh.seek(lo)
    return fh.read(state.offset - lo)


def _skip_hole(state: FileState, fh: BinaryIO, size: int) -> None:
    """Seek to where the damage scan goes on, past a hole: the unwritten stretch of a sparse
    file (``truncate -s 1G``) reads as zeros, which hold no header, so only the 11 bytes
    before the next data need a look."""
    at = state.offset
    try:
        at = os.lseek(fh.fileno(), state.offset, os.SEEK_DATA)
    except OSError as e:  # ENXIO: a hole to the end; else no SEEK_DATA here: read it all
        if e.errno == errno.ENXIO:
            at = size
    except AttributeError:  # a platform without SEEK_DATA
        pass
    state.offset = max(state.offset, at - _HEADER_TAIL)
    fh.seek(state.offset)


def _read_appended(state: FileState, fh: BinaryIO, size: int) -> int:
    """Parse the file from ``state.offset`` to ``size`` block by block; returns bytes used."""
    fh.seek(state.offset)
    parsed = 0
    carry = b""  # a record cut by the block's end: at most one record
    while state.offset + len(carry) < size:
        if state.open_damage is not None:
            carry = b""  # the scan reads on from ``state.offset`` (11 bytes back)
            _skip_hole(state, fh, size)
        want = max(_BLOCK, 2 * len(carry))
        chunk = fh.read(min(want, size - state.offset - len(carry)))
        if not chunk:
            break
        buf = carry + chunk if carry else chunk
        at_eof = state.offset + len(buf) >= size
        if state.open_damage is not None:
            used = _scan_damage(state, buf, at_eof)
        else:
            used = _parse_block(state, buf, at_eof)
        parsed += used
        carry = buf[used:]
        if at_eof:
            break
    return parsed


def update_file(state: FileState, st: os.stat_result) -> int:
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
    try:
        fst = os.fstat(fh.fileno())
        size = fst.st_size
        if (fst.st_dev, fst.st_ino) != (state.dev, state.ino) or size < state.offset:
            _reset(state)  # replaced or shrunk: the old offsets mean nothing now
        elif state.offset > 0 and _read_tail(state, fh) != state.tail:
            _reset(state)  # rewritten in place
        state.dev, state.ino = fst.st_dev, fst.st_ino
        if state.offset == 0:
            cache.adopt(state, fh, size)
        parsed = _read_appended(state, fh, size)
        state.tail = _read_tail(state, fh)
        state.size, state.mtime_ns = size, fst.st_mtime_ns
        cache.persist_when_due(state, fh, fst.st_mtime_ns)
    finally:
        fh.close()
    return parsed
