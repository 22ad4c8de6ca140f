"""A run's finished episodes: from our ``episode/*`` scalars, else from SB3 Monitor files."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from runstore import safeio, tags
from runstore.metrics.filestate import FileState
from runstore.metrics.merge import merge_timeline

EPISODES_SCHEMA: dict[str, Any] = {
    "step": pl.Int64,
    "wall_time": pl.Float64,
    "episode_return": pl.Float64,
    "episode_length": pl.Int64,
}
#: An episode length beyond this (2**53, where floats stop holding every integer) is damage.
_MAX_LENGTH = float(2**53)
#: SB3 Monitor files: one short line per episode; more than this is not a Monitor file.
MONITOR_LIMIT = 256 * 2**20


def from_tags(states: list[FileState]) -> pl.DataFrame | None:
    names, g, step, wall, value, seq = merge_timeline(
        states, (tags.EPISODE_RETURN, tags.EPISODE_LENGTH), dedup=False
    )
    if tags.EPISODE_RETURN not in names:
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
        df.filter(pl.col("g") == names.index(tags.EPISODE_RETURN))
        .with_columns(k=occurrence)
        .filter(pl.col("value").is_finite())
        .select("step", "k", "wall_time", "seq", episode_return="value")
    )
    length = pl.col("value").round()
    lengths = (
        df.filter(pl.col("g") == (names.index(tags.EPISODE_LENGTH) if len(names) > 1 else -1))
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


def from_monitor(root: Path) -> pl.DataFrame:
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
