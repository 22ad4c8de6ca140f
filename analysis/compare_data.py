"""The data behind the Compare page: one tidy table of the chosen metric for the chosen runs,
smoothed, optionally human-normalised, downsampled for drawing, and grouped by seed.

Pure functions of polars frames (no Streamlit), so the page stays thin and this is tested
directly. The full-resolution table is what the page exports; only drawing is downsampled.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.atari_scores import human_normalized, reference_scores
from analysis.downsample import lttb_indices
from analysis.seeds import aggregate_seeds, unique_label
from analysis.smoothing import ema_smooth
from runstore.metrics import EPISODE_RETURN_TAG

X_STEPS = "steps"
X_WALL = "wall time"
X_RELATIVE = "relative time"
X_MODES = (X_STEPS, X_WALL, X_RELATIVE)
#: The metric built from every finished episode (load_episodes) rather than a logged scalar.
EPISODES_METRIC = "episode return (every episode)"
#: Metrics that are game scores, so a human-normalised score makes sense for them.
SCORE_METRICS = frozenset(
    {EPISODES_METRIC, EPISODE_RETURN_TAG, "rollout/ep_rew_mean", "eval/mean_reward"}
)
DEFAULT_METRICS = (EPISODES_METRIC, "rollout/ep_rew_mean")

TABLE_SCHEMA = {
    "run_id": pl.String,
    "run": pl.String,
    "env": pl.String,
    "algo": pl.String,
    "seed": pl.Int64,
    "metric": pl.String,
    "step": pl.Int64,
    "wall_time": pl.Float64,
    "relative_s": pl.Float64,
    "value": pl.Float64,
    "y": pl.Float64,
    "smoothed": pl.Float64,
}


@dataclass(frozen=True)
class RunInfo:
    """What Compare needs to know about a run besides its metrics."""

    id: str
    label: str
    env: str
    algo: str
    seed: int | None
    group: str  # runs with equal group keys differ only by seed (seeds.group_key)
    name: str = ""  # the run's display name (a seed group is labelled by it)


def metric_series(metric: str, scalars: pl.DataFrame, episodes: pl.DataFrame) -> pl.DataFrame:
    """[step, wall_time, value] of one metric of a run, in step order."""
    if metric == EPISODES_METRIC:
        return episodes.select("step", "wall_time", value="episode_return")
    return scalars.filter(pl.col("tag") == metric).select("step", "wall_time", "value")


def can_normalize(metric: str, runs: Sequence[RunInfo]) -> tuple[bool, str]:
    """Whether the human-normalised score applies, and why not when it does not."""
    if metric not in SCORE_METRICS:
        return False, f"{metric!r} is not a game score"
    missing = [r.label for r in runs if reference_scores(r.env) is None]
    if missing:
        return False, "no published human/random scores for: " + ", ".join(missing)
    return bool(runs), "pick runs first" if not runs else ""


def selection_table(
    runs: Sequence[RunInfo],
    series: Mapping[str, pl.DataFrame],
    metric: str,
    smoothing: float,
    normalize: bool = False,
) -> pl.DataFrame:
    """The full-resolution table of the selection (see TABLE_SCHEMA).

    ``value`` is the logged value, ``y`` what is drawn (``value``, or its human-normalised
    score), ``smoothed`` TensorBoard's EMA of ``y``; ``relative_s`` is seconds since the run's
    first point of this metric.
    """
    parts = []
    for run in runs:
        df = series.get(run.id)
        if df is None or df.height == 0:
            continue
        df = df.sort("step", maintain_order=True)
        value = df["value"].to_numpy().astype(np.float64)
        y = human_normalized(run.env, value) if normalize else value
        parts.append(
            df.with_columns(
                run_id=pl.lit(run.id),
                run=pl.lit(run.label),
                env=pl.lit(run.env),
                algo=pl.lit(run.algo),
                seed=pl.lit(run.seed, dtype=pl.Int64),
                metric=pl.lit(metric),
                relative_s=pl.col("wall_time") - pl.col("wall_time").min(),
                y=pl.Series(y),
                smoothed=pl.Series(ema_smooth(y, smoothing)),
            )
        )
    if not parts:
        return pl.DataFrame(schema=TABLE_SCHEMA)
    return pl.concat(parts, how="diagonal").select(list(TABLE_SCHEMA)).cast(TABLE_SCHEMA)


def x_column(x_mode: str) -> str:
    if x_mode not in X_MODES:
        raise ValueError(f"x must be one of {', '.join(X_MODES)}, not {x_mode!r}")
    return {X_STEPS: "step", X_WALL: "wall_time", X_RELATIVE: "relative_s"}[x_mode]


def downsample(
    table: pl.DataFrame, x_mode: str, max_points: int, by: str = "smoothed"
) -> pl.DataFrame:
    """At most ``max_points`` rows per run, chosen by LTTB on (x, ``by``); rows stay exact."""
    x = x_column(x_mode)
    parts = []
    for _, df in table.group_by("run_id", maintain_order=True):
        df = df.sort(x, maintain_order=True)
        keep = lttb_indices(df[x].to_numpy(), df[by].to_numpy(), max_points)
        parts.append(df[keep])
    return pl.concat(parts) if parts else table


def seed_groups(
    table: pl.DataFrame, runs: Sequence[RunInfo], x_mode: str, n_points: int = 400
) -> pl.DataFrame:
    """Mean, 95% bootstrap band and IQM (4+ seeds) of the smoothed curves of every group of
    two or more runs that differ only by seed: [group, n_seeds, x, mean, low, high, iqm].

    Wall-clock x is replaced by relative time: seeds run at different times of day.
    """
    x = x_column(X_RELATIVE if x_mode == X_WALL else x_mode)
    members: dict[str, list[RunInfo]] = {}
    present = set(table["run_id"].unique().to_list()) if table.height else set()
    for run in runs:
        if run.id in present:
            members.setdefault(run.group, []).append(run)
    frames, seen = [], set()
    for group in (g for g in members.values() if len(g) >= 2):
        curves = []
        for run in group:
            df = table.filter(pl.col("run_id") == run.id).sort(x, maintain_order=True)
            curves.append((df[x].to_numpy(), df["smoothed"].to_numpy()))
        agg = aggregate_seeds(curves, n_points=n_points)
        if len(agg.x) == 0:
            continue
        # Named like groups_of's groups (the first run's name), so a legend and a table agree
        label = unique_label(f"{group[0].name or group[0].label} ({agg.n_seeds} seeds)", seen)
        frames.append(
            pl.DataFrame(
                {
                    "group": [label] * len(agg.x),
                    "n_seeds": [agg.n_seeds] * len(agg.x),
                    "x": agg.x,
                    "mean": agg.mean,
                    "low": agg.low,
                    "high": agg.high,
                    "iqm": agg.iqm if agg.iqm is not None else np.full(len(agg.x), np.nan),
                }
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "group": pl.String,
                "n_seeds": pl.Int64,
                "x": pl.Float64,
                "mean": pl.Float64,
                "low": pl.Float64,
                "high": pl.Float64,
                "iqm": pl.Float64,
            }
        )
    return pl.concat(frames)


def grouped_run_ids(runs: Sequence[RunInfo], groups: pl.DataFrame | None) -> set[str]:
    """The runs drawn as their seed group's mean (groups of two or more runs), so a chart
    can leave their own lines out; none when no group was drawn."""
    if groups is None or groups.is_empty():
        return set()
    counts = Counter(r.group for r in runs)
    return {r.id for r in runs if counts[r.group] >= 2}


def to_csv(table: pl.DataFrame) -> bytes:
    return table.write_csv().encode("utf-8")


def to_parquet(table: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    table.write_parquet(buf)
    return buf.getvalue()
