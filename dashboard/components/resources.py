"""A run's own resource use over its steps: the ``system/*`` scalars its trainer samples
(training/system_sampler.py) every few seconds into TensorBoard.

``render_resources(run_id)`` draws them for the Run page (one small chart per measure, the
GPU ones only where the run had a GPU).
"""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from analysis.run_charts import SYSTEM_TAGS
from dashboard import data
from runstore import tags

MAX_POINTS = 1500


def system_scalars(scalars: pl.DataFrame) -> pl.DataFrame:
    """Only the system/* rows, sorted by tag and step."""
    if scalars.height == 0:
        return scalars
    return scalars.filter(pl.col("tag").str.starts_with(tags.SYSTEM_PREFIX)).sort("tag", "step")


def _chart(df: pl.DataFrame, title: str) -> alt.Chart:
    if df.height > MAX_POINTS:  # keep every n-th point: a resource curve needs no more
        df = df.gather_every(df.height // MAX_POINTS + 1)
    return (
        alt.Chart(df.select("step", "value"))
        .mark_line()
        .encode(
            x=alt.X("step:Q", title="steps"),
            y=alt.Y("value:Q", title=None),
            tooltip=["step:Q", "value:Q"],
        )
        .properties(title=title, height=160)
    )


def render_resources(run_id: str) -> None:
    """Charts of the run's CPU, memory and (where it had one) GPU use against its steps."""
    df = system_scalars(data.run_scalars(run_id))
    if df.height == 0:
        st.caption(
            "No resource samples yet: the trainer records CPU, memory and GPU use every few "
            "seconds once training has started."
        )
        return
    present = [(tag, title) for tag, title in SYSTEM_TAGS if df.filter(pl.col("tag") == tag).height]
    cols = st.columns(len(present))
    for col, (tag, title) in zip(cols, present, strict=True):
        col.altair_chart(_chart(df.filter(pl.col("tag") == tag), title), width="stretch")
    if not any(tag.startswith(tags.SYSTEM_GPU_PREFIX) for tag, _ in present):
        st.caption("No GPU figures: this run used no GPU, or NVML is not available here.")
