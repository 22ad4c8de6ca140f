"""One timeline from a run's event files, and the cheap splice of a live run's appended rows.

Several event files in one run folder (a resumed run) form one timeline, ordered by the wall
time of each file's first event, then by name. Data written by an earlier file is superseded
by a later one: explicitly by ``SessionLog.START`` at step S (everything earlier with step >=
S goes, as TensorBoard purges it), and implicitly per tag (a later file that logs tag T from
step S on replaces the earlier file's T at steps >= S). Then one value is kept per (tag,
step): the last one written.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from runstore.metrics.filestate import FileState
from runstore.metrics.frame import scalars_frame

if TYPE_CHECKING:
    from runstore.metrics.load import RunState

#: (tags, tag id, step, wall, value, seq): rows in timeline order, tag ids index ``tags``.
Timeline = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Layout = tuple[tuple[str, int, int, int], ...]


def order(states: list[FileState]) -> list[FileState]:
    """Timeline order: by the wall time of each file's first event, then by path."""
    return sorted(
        states, key=lambda s: (s.first_wall if s.first_wall is not None else math.inf, s.path)
    )


def _concat(
    states: list[FileState], names: list[str], only: tuple[str, ...] | None
) -> tuple[tuple[np.ndarray, ...], list[int], list[int]]:
    """Every file's rows end to end: (tag id, step, wall, value, seq, file rank), and the row
    position (seq) and step of each SessionLog.START."""
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
        return tuple(np.concatenate(c) for c in zip(*parts, strict=True)), start_q, start_s
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
    return (empty_i, empty_i, empty_f, empty_f, empty_i, empty_i), start_q, start_s


def _current(
    g: np.ndarray,
    step: np.ndarray,
    seq: np.ndarray,
    rank: np.ndarray,
    starts: tuple[list[int], list[int]],
    shape: tuple[int, int],
) -> np.ndarray:
    """Which rows no later write supersedes; ``shape`` is (files, tags)."""
    start_q, start_s = starts
    keep = np.ones(len(g), dtype=bool)
    if start_q and len(g):
        # Row (seq, step) is superseded by a START (q, S) written after it with S <= step.
        by_step = np.argsort(start_s, kind="stable")
        s_sorted = np.asarray(start_s, dtype=np.int64)[by_step]
        q_max = np.maximum.accumulate(np.asarray(start_q, dtype=np.int64)[by_step])
        at = np.searchsorted(s_sorted, step, side="right") - 1
        latest = np.where(at >= 0, q_max[np.maximum(at, 0)], -1)
        keep &= latest <= seq
    if shape[0] > 1 and len(g) and shape[1]:
        # A later file that logs a tag from step S on replaces earlier data of that tag >= S.
        big = np.iinfo(np.int64).max
        first = np.full(shape, big, dtype=np.int64)
        np.minimum.at(first, (rank, g), step)
        later = np.full_like(first, big)
        later[:-1] = np.minimum.accumulate(first[::-1], axis=0)[::-1][1:]
        keep &= step < later[rank, g]
    return keep


def _last_per_step(n_names: int, *rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """``rows`` (tag id, step, wall, value, seq) sorted by tag then step, one row per (tag,
    step): the last written."""
    g, step, wall, value, seq = rows
    # Usually each tag's steps already rise in write order: then a stable sort on the tag
    # alone (radix sort for 16-bit keys) gives tag-then-step order with nothing to drop.
    key = g.astype(np.uint16) if n_names <= 1 << 16 else g
    by_tag = np.argsort(key, kind="stable")
    sg, ss = g[by_tag], step[by_tag]
    same = sg[1:] == sg[:-1]
    if not (ss[1:][same] > ss[:-1][same]).all():
        by_tag = np.lexsort((seq, step, g))
    g, step, wall, value, seq = g[by_tag], step[by_tag], wall[by_tag], value[by_tag], seq[by_tag]
    last = np.ones(len(g), dtype=bool)
    last[:-1] = (g[1:] != g[:-1]) | (step[1:] != step[:-1])
    if not last.all():
        g, step, wall, value, seq = g[last], step[last], wall[last], value[last], seq[last]
    return g, step, wall, value, seq


def merge_timeline(states: list[FileState], only: tuple[str, ...] | None, dedup: bool) -> Timeline:
    """One timeline from several files: (tags, tag id, step, wall, value, seq), superseded
    rows removed; with ``dedup`` also one row per (tag, step), the last written."""
    states = order(states)
    names = sorted({t for s in states for t in s.tags if only is None or t in only})
    (g, step, wall, value, seq, rank), start_q, start_s = _concat(states, names, only)
    keep = _current(g, step, seq, rank, (start_q, start_s), (len(states), len(names)))
    if not keep.all():
        g, step, wall, value, seq = g[keep], step[keep], wall[keep], value[keep], seq[keep]
    if dedup and len(g):
        g, step, wall, value, seq = _last_per_step(len(names), g, step, wall, value, seq)
    return names, g, step, wall, value, seq


def layout(ordered: list[FileState]) -> Layout:
    """What a merged frame was built from: (path, generation, rows, starts) per file."""
    return tuple((s.path, s.generation, s.n_rows, len(s.starts)) for s in ordered)


def splice(run: RunState, ordered: list[FileState]) -> pl.DataFrame | None:
    """``run.scalars`` with the rows appended to the newest file since, or None when a full
    merge is needed.

    The common live case: one process appends to the newest event file, each tag at steps
    above what it logged before. Then no earlier row is superseded or duplicated, and the new
    rows go at the end of their tag's block. The frame is stitched from zero-copy slices of
    the old one and the new rows, so the cost follows the new rows, not the run's length.
    Anything else (another file changed, a file re-read, a new tag, a SessionLog.START, a step
    that does not rise) falls back to ``merged``.
    """
    now = layout(ordered)
    if run.scalars is None or len(now) != len(run.layout) or not now:
        return None
    if now[:-1] != run.layout[:-1]:
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
    by_tag = np.argsort(g, kind="stable")
    g, step, wall, value = g[by_tag], step[by_tag], wall[by_tag], value[by_tag]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    if not (step[1:][~first[1:]] > step[:-1][~first[1:]]).all():
        return None
    if not (step[first] > run.tag_last[g[first]]).all():
        return None
    return _stitch(run, g, scalars_frame(run.names, g, step, wall, value), first, step)


def _stitch(
    run: RunState, g: np.ndarray, added: pl.DataFrame, first: np.ndarray, step: np.ndarray
) -> pl.DataFrame:
    """``run.scalars`` with each tag's new rows (``added``, grouped by tag id ``g``, ``first``
    marking each group's first row) after the end of that tag's block."""
    assert run.scalars is not None
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


def merged(ordered: list[FileState]) -> tuple[pl.DataFrame, list[str], np.ndarray, np.ndarray]:
    """A full merge: the frame, its tag names, and per tag the block end and last step."""
    names, g, step, wall, value, _ = merge_timeline(ordered, None, dedup=True)
    counts = np.bincount(g, minlength=len(names)) if len(g) else np.zeros(len(names), np.int64)
    tag_end = np.cumsum(counts).astype(np.int64)
    tag_last = np.full(len(names), np.iinfo(np.int64).min, dtype=np.int64)
    has = counts > 0
    tag_last[has] = step[tag_end[has] - 1]
    return scalars_frame(names, g, step, wall, value), names, tag_end, tag_last
