"""Altair charts of a run's metrics: functions from a polars frame to a chart (no Streamlit),
so they can be tested and reused by other pages."""

from __future__ import annotations

import altair as alt
import polars as pl

from analysis.downsample import DEFAULT_POINTS, lttb_indices
from analysis.smoothing import ema_smooth
from runstore import tags

X_STEPS = "steps"
X_TIME = "wall time"
MAX_POINTS = DEFAULT_POINTS

# (tag, title) of the SB3 scalars the Run page draws, in display order; missing ones are skipped.
TRAINING_TAGS = [
    ("train/loss", "Loss"),
    ("train/policy_gradient_loss", "Policy gradient loss"),
    ("train/value_loss", "Value loss"),
    ("train/entropy_loss", "Entropy loss"),
    ("train/approx_kl", "Approx KL"),
    ("train/clip_fraction", "Clip fraction"),
    ("train/explained_variance", "Explained variance"),
    ("train/learning_rate", "Learning rate"),
    ("rollout/exploration_rate", "Exploration rate"),
    ("time/fps", "Steps per second (fps)"),
]

# (tag, title) of the run's own resource use (training/system_sampler.py); GPU ones only where
# there is a GPU.
SYSTEM_TAGS = [
    (tags.SYSTEM_CPU_PERCENT, "CPU % (100 = one core)"),
    (tags.SYSTEM_RSS_MB, "Memory (RSS, MB)"),
    (tags.SYSTEM_GPU_UTIL, "GPU utilisation %"),
    (tags.SYSTEM_GPU_MEM_MB, "GPU memory (MB)"),
    (tags.SYSTEM_GPU_POWER_W, "GPU board power (W)"),
]


def with_x(df: pl.DataFrame, x: str) -> tuple[pl.DataFrame, str]:
    """Add the x column (steps, or minutes since the first point) and return its title."""
    if x == X_TIME:
        start = df["wall_time"].min() if df.height else 0.0
        return df.with_columns(((pl.col("wall_time") - start) / 60).alias("x")), "minutes"
    return df.with_columns(pl.col("step").cast(pl.Float64).alias("x")), "steps"


def _thin(df: pl.DataFrame, y: str) -> pl.DataFrame:
    """At most MAX_POINTS real points per series (LTTB), so a long run draws fast."""
    if df.height <= MAX_POINTS:
        return df
    keep = lttb_indices(df["x"].to_numpy(), df[y].to_numpy(), MAX_POINTS)
    return df[keep]


def return_chart(episodes: pl.DataFrame, x: str = X_STEPS, smoothing: float = 0.6) -> alt.Chart:
    """Episodic return: every episode as a faint point, the smoothed curve as a line."""
    df, title = with_x(episodes.sort("step"), x)
    df = df.with_columns(pl.Series("smoothed", ema_smooth(df["episode_return"], smoothing))).select(
        "x", "episode_return", "smoothed"
    )
    df = _thin(df, "smoothed")
    base = alt.Chart(df).encode(x=alt.X("x:Q", title=title))
    points = base.mark_circle(size=14, opacity=0.35).encode(
        y=alt.Y("episode_return:Q", title="episode return"),
        tooltip=[alt.Tooltip("x:Q", title=title), alt.Tooltip("episode_return:Q", title="return")],
    )
    line = base.mark_line(strokeWidth=2.5).encode(y="smoothed:Q")
    return (points + line).properties(title="Episodic return", height=320)


def scalar_chart(
    scalars: pl.DataFrame, tag: str, title: str, x: str = X_STEPS, smoothing: float = 0.0
) -> alt.Chart:
    """One scalar tag: the raw line faint, the smoothed line on top."""
    df = scalars.filter(pl.col("tag") == tag).sort("step")
    df, x_title = with_x(df, x)
    df = df.with_columns(pl.Series("smoothed", ema_smooth(df["value"], smoothing)))
    df = _thin(df.select("x", "value", "smoothed"), "smoothed")
    base = alt.Chart(df).encode(x=alt.X("x:Q", title=x_title))
    raw = base.mark_line(opacity=0.3).encode(y=alt.Y("value:Q", title=None))
    smooth = base.mark_line().encode(
        y="smoothed:Q", tooltip=[alt.Tooltip("x:Q", title=x_title), "value:Q"]
    )
    return (raw + smooth).properties(title=title, height=200)


def available_tags(scalars: pl.DataFrame) -> list[tuple[str, str]]:
    """The TRAINING_TAGS present in a run, in display order."""
    present = set(scalars["tag"].unique().to_list()) if scalars.height else set()
    return [(tag, title) for tag, title in TRAINING_TAGS if tag in present]


def eval_chart(curve: pl.DataFrame, x: str = X_STEPS) -> alt.Chart:
    """Evaluations (``analysis.learning.eval_curve``): the mean return of each as a point on a
    line, the band from its worst to its best episode behind it."""
    df, title = with_x(curve.sort("step"), x)
    df = df.select("x", "mean", "std", "min", "max")
    base = alt.Chart(df).encode(x=alt.X("x:Q", title=title))
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("min:Q", title="evaluation return"), y2="max:Q"
    )
    line = base.mark_line(point=True, strokeWidth=2.5).encode(
        y="mean:Q",
        tooltip=[
            alt.Tooltip("x:Q", title=title),
            alt.Tooltip("mean:Q", title="mean return"),
            alt.Tooltip("std:Q", title="std"),
            alt.Tooltip("min:Q", title="worst episode"),
            alt.Tooltip("max:Q", title="best episode"),
        ],
    )
    return (band + line).properties(
        title="Evaluation return (mean, worst to best episode)", height=260
    )
