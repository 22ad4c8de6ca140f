"""How well and how soon a run learned, from its logged scalars: the evaluation curve, the
final and best evaluation, time to a return threshold, the area under the evaluation curve,
and what the run cost in CPU, GPU and memory.

One definition of each, used by the reports and open to the pages: a report's numbers are
these functions of the run store's frames, so a test recomputes them from the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from runstore import tags

#: The columns of ``eval_curve``: one row per evaluation.
EVAL_COLUMNS = {
    "mean": tags.EVAL_MEAN_RETURN,
    "std": tags.EVAL_STD_RETURN,
    "min": tags.EVAL_MIN_RETURN,
    "max": tags.EVAL_MAX_RETURN,
}
#: Default thresholds, as fractions of the best evaluation the runs reached.
DEFAULT_FRACTIONS = (0.5, 0.9, 1.0)


def eval_curve(scalars: pl.DataFrame) -> pl.DataFrame:
    """[step, wall_time, mean, std, min, max] of a run's evaluations, by step. A step logged
    twice (a resumed run evaluates again at its checkpoint's step) keeps its last value."""
    columns = {"step": pl.Int64, "wall_time": pl.Float64} | dict.fromkeys(EVAL_COLUMNS, pl.Float64)
    if scalars.is_empty():
        return pl.DataFrame(schema=columns)
    wanted = scalars.filter(pl.col("tag").is_in(list(EVAL_COLUMNS.values())))
    if wanted.is_empty():
        return pl.DataFrame(schema=columns)
    last = (
        wanted.sort("wall_time")
        .group_by("step", "tag")
        .agg(pl.col("value").last(), pl.col("wall_time").last())
    )
    wide = last.pivot(on="tag", index="step", values="value").join(
        last.group_by("step").agg(pl.col("wall_time").max()), on="step"
    )
    out = wide.select(
        pl.col("step").cast(pl.Int64),
        pl.col("wall_time").cast(pl.Float64),
        *[
            (pl.col(tag) if tag in wide.columns else pl.lit(None)).cast(pl.Float64).alias(name)
            for name, tag in EVAL_COLUMNS.items()
        ],
    )
    return out.filter(pl.col("mean").is_not_null()).sort("step").select(columns.keys())


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the mean return over its episodes and their spread."""

    step: int
    mean: float
    std: float | None
    low: float | None  # the worst episode
    high: float | None  # the best episode


def _evaluation(row: dict) -> Evaluation:
    return Evaluation(int(row["step"]), row["mean"], row["std"], row["min"], row["max"])


def final_and_best(curve: pl.DataFrame) -> tuple[Evaluation | None, Evaluation | None]:
    """The last evaluation and the best one (highest mean; the earliest of equals, which is
    the one ``best.zip`` was saved at)."""
    if curve.is_empty():
        return None, None
    rows = curve.to_dicts()
    best = max(rows, key=lambda r: (r["mean"], -r["step"]))
    return _evaluation(rows[-1]), _evaluation(best)


@dataclass(frozen=True)
class Reached:
    """When a curve first reached a return: steps, and seconds since ``start``."""

    threshold: float
    step: int | None  # None: never reached
    seconds: float | None


def time_to_threshold(
    curve: pl.DataFrame, thresholds: Sequence[float], start: float | None = None, y: str = "mean"
) -> list[Reached]:
    """The first point of ``curve`` (columns step, wall_time and ``y``) at or above each
    threshold. Seconds count from ``start`` (the run's first logged point; the curve's first
    point when None), so time paused is included: it is the wall time a user waited."""
    ordered = curve.sort("step")
    steps = ordered["step"].to_numpy()
    walls = ordered["wall_time"].to_numpy().astype(np.float64)
    values = ordered[y].to_numpy().astype(np.float64)
    origin = start if start is not None else (float(walls[0]) if walls.size else 0.0)
    out = []
    for threshold in thresholds:
        hits = np.flatnonzero(values >= threshold)
        if hits.size:
            i = int(hits[0])
            out.append(Reached(float(threshold), int(steps[i]), float(walls[i] - origin)))
        else:
            out.append(Reached(float(threshold), None, None))
    return out


def default_thresholds(best: float, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[float]:
    """Thresholds at fractions of the best return reached (for a positive best; a negative
    best, as in Pong, is approached from below, so the fractions count up from it)."""
    if best >= 0:
        return [best * f for f in fractions]
    return [best / f for f in fractions]


def returns_per_bin(episodes: pl.DataFrame, bin_steps: int) -> pl.DataFrame:
    """Training return per stretch of ``bin_steps`` steps: [upto, mean, games], one row per
    stretch with a finished game, ``upto`` its last step (100k: games ending in (0, 100k]).
    The learning curve papers print (mean return per 100k steps), from ``load_episodes``."""
    if episodes.is_empty():
        return pl.DataFrame(schema={"upto": pl.Int64, "mean": pl.Float64, "games": pl.UInt32})
    upto = ((pl.col("step") - 1) // bin_steps + 1) * bin_steps
    return (
        episodes.group_by(upto.cast(pl.Int64).alias("upto"))
        .agg(pl.col("episode_return").mean().alias("mean"), pl.len().alias("games"))
        .sort("upto")
    )


def mean_over_training(curve: pl.DataFrame, y: str = "mean") -> float | None:
    """Sample efficiency: the area under the evaluation curve (trapezoids over steps) divided
    by the steps it spans, so runs of different lengths compare. It is the mean return an
    agent had over its training; a run that learns sooner scores higher at the same final
    return. None with fewer than two evaluations."""
    if curve.height < 2:
        return None
    ordered = curve.sort("step")
    x = ordered["step"].to_numpy().astype(np.float64)
    v = ordered[y].to_numpy().astype(np.float64)
    span = x[-1] - x[0]
    if span <= 0:
        return None
    return float(np.trapezoid(v, x) / span)


@dataclass(frozen=True)
class Usage:
    """What a run cost, from its ``system/*`` scalars (sampled every few seconds)."""

    wall_hours: float  # from the first to the last sample
    cpu_hours: float  # core-hours: the integral of cpu_percent / 100
    peak_rss_mb: float | None
    gpu_hours: float | None  # the integral of the GPU's utilisation / 100; None without NVML
    peak_gpu_mem_mb: float | None
    gpu_energy_wh: float | None  # the integral of the GPU board power; None without it


def _series(scalars: pl.DataFrame, tag: str) -> tuple[np.ndarray, np.ndarray]:
    rows = scalars.filter(pl.col("tag") == tag).sort("wall_time")
    return rows["wall_time"].to_numpy().astype(np.float64), rows["value"].to_numpy()


def _hours(t: np.ndarray, v: np.ndarray, scale: float) -> float:
    """The integral of v / scale over t, in hours: samples more than a minute apart (the
    run was paused or stopped between them) count as one sample interval, not the gap."""
    if t.size < 2:
        return 0.0
    dt = np.diff(t)
    typical = float(np.median(dt))
    dt = np.where(dt > max(60.0, 4 * typical), typical, dt)
    mid = (v[1:] + v[:-1]) / 2
    return float(np.sum(mid * dt) / scale / 3600)


def usage(scalars: pl.DataFrame) -> Usage | None:
    """The run's resource use; None when it logged no system samples."""
    if scalars.is_empty():
        return None
    t, cpu = _series(scalars, tags.SYSTEM_CPU_PERCENT)
    if t.size == 0:
        return None
    _, rss = _series(scalars, tags.SYSTEM_RSS_MB)
    tg, gpu = _series(scalars, tags.SYSTEM_GPU_UTIL)
    _, gpu_mem = _series(scalars, tags.SYSTEM_GPU_MEM_MB)
    tp, power = _series(scalars, tags.SYSTEM_GPU_POWER_W)
    return Usage(
        wall_hours=float(t[-1] - t[0]) / 3600,
        cpu_hours=_hours(t, cpu.astype(np.float64), 100.0),
        peak_rss_mb=float(rss.max()) if rss.size else None,
        gpu_hours=_hours(tg, gpu.astype(np.float64), 100.0) if tg.size else None,
        peak_gpu_mem_mb=float(gpu_mem.max()) if gpu_mem.size else None,
        gpu_energy_wh=_hours(tp, power.astype(np.float64), 1.0) if tp.size else None,
    )
