"""Altair charts of one sweep's study: optimisation history, parallel coordinates of the
params against the objective, and parameter importances. Pure functions of plain tables
(dashboard/sweep_data.py builds them), so they are tested without a page."""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import polars as pl

OBJECTIVE_AXIS = "objective"


def history_chart(history: pl.DataFrame, metric: str) -> alt.LayerChart:
    """Each complete trial's value, and the best value reached so far as a step line."""
    base = alt.Chart(history.to_pandas()).encode(
        x=alt.X("number:Q", title="trial", axis=alt.Axis(tickMinStep=1))
    )
    points = base.mark_circle(size=60, opacity=0.7).encode(
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("number:Q", title="trial"), alt.Tooltip("value:Q", format=".3f")],
    )
    best = base.mark_line(interpolate="step-after", color="#d62728").encode(
        y="best:Q", tooltip=[alt.Tooltip("best:Q", title="best so far", format=".3f")]
    )
    return alt.layer(points, best).properties(height=280, title="Optimisation history")


def _normalise(values: list[Any]) -> tuple[list[float | None], bool]:
    """Values scaled to [0, 1] on their own axis: numbers by range (log range when they span
    more than two decades and are all positive), anything else by its rank among the
    distinct values. Returns the scaled values and whether the axis is logarithmic."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if not present:
        return [None] * len(values), False
    if not numeric:
        order = sorted({repr(v) for v in present})
        span = max(1, len(order) - 1)
        return [None if v is None else order.index(repr(v)) / span for v in values], False
    nums = [float(v) for v in present]
    log = min(nums) > 0 and max(nums) / min(nums) > 100
    key = (lambda x: math.log10(x)) if log else (lambda x: x)
    low, high = key(min(nums)), key(max(nums))
    span = high - low
    return [
        None if v is None else (0.5 if span == 0 else (key(float(v)) - low) / span) for v in values
    ], log


def parallel_frame(trials: pl.DataFrame, params: list[str]) -> pl.DataFrame:
    """Long form for the parallel-coordinates chart: one row per (trial, axis), with the
    normalised position and the raw value as text (complete trials only: they have a value)."""
    done = trials.filter(pl.col("state") == "complete").sort("number")
    rows: dict[str, list[Any]] = {"trial": [], "axis": [], "order": [], "norm": [], "raw": []}
    if done.is_empty():
        return pl.DataFrame(rows, schema_overrides={"norm": pl.Float64})
    values = done["value"].to_list()
    for order, axis in enumerate([*params, OBJECTIVE_AXIS]):
        column = values if axis == OBJECTIVE_AXIS else done[axis].to_list()
        scaled, _log = _normalise(column)
        for trial, raw, norm in zip(done["number"].to_list(), column, scaled, strict=True):
            rows["trial"].append(trial)
            rows["axis"].append(axis)
            rows["order"].append(order)
            rows["norm"].append(norm)
            rows["raw"].append("" if raw is None else f"{raw:.4g}" if _is_num(raw) else str(raw))
    frame = pl.DataFrame(rows, schema_overrides={"norm": pl.Float64})
    objective = done.select(trial="number", objective="value")
    return frame.join(objective, on="trial", how="left")


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parallel_chart(frame: pl.DataFrame, params: list[str], metric: str) -> alt.LayerChart:
    """One line per complete trial across the params' axes and the objective, each axis
    normalised to its own range, coloured by the objective."""
    axes = [*params, OBJECTIVE_AXIS]
    data = frame.to_pandas()
    # Each axis labelled by its key's last part (learning_rate, not hyperparams.learning_rate):
    # full dotted keys overlap and Vega hides every other one; the tooltip keeps the full key.
    short = "split(datum.label, '.')[length(split(datum.label, '.')) - 1]"
    x = alt.X(
        "axis:N",
        sort=axes,
        title=None,
        axis=alt.Axis(labelAngle=0, labelLimit=160, labelOverlap=False, labelExpr=short),
    )
    lines = (
        alt.Chart(data)
        .mark_line(opacity=0.8)
        .encode(
            x=x,
            y=alt.Y("norm:Q", title="normalised", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("objective:Q", title=metric, scale=alt.Scale(scheme="viridis")),
            detail="trial:N",
            order="order:Q",
            tooltip=["trial:N", "axis:N", "raw:N", alt.Tooltip("objective:Q", format=".3f")],
        )
    )
    rules = alt.Chart(data).mark_rule(color="#888").encode(x=x)
    return alt.layer(rules, lines).properties(height=320, title="Params against the objective")


def importance_height(found: dict[str, float]) -> int:
    return 80 + 40 * len(found)


def importance_chart(found: dict[str, float]) -> alt.Chart:
    """Optuna's importances as horizontal bars, most important first."""
    frame = pl.DataFrame({"param": list(found), "importance": list(found.values())})
    return (
        alt.Chart(frame.to_pandas())
        .mark_bar()
        .encode(
            x=alt.X("importance:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("param:N", sort="-x", title=None),
            tooltip=["param:N", alt.Tooltip("importance:Q", format=".3f")],
        )
        .properties(height=importance_height(found), title="Parameter importances")
    )
