"""The Compare chart (Altair) and its PNG/SVG export: functions from frames to a chart, no
Streamlit. Export renders with vl-convert (Vega bundled in a Python wheel: works offline, no
browser, no Node)."""

from __future__ import annotations

import json

import altair as alt
import polars as pl

from analysis.compare_data import X_RELATIVE, X_STEPS, X_WALL, x_column

_X_TITLES = {X_STEPS: "steps", X_WALL: "wall time", X_RELATIVE: "hours since the run's start"}


def _with_x(df: pl.DataFrame, x_mode: str, source: str) -> pl.DataFrame:
    if x_mode == X_WALL:
        return df.with_columns(x=(pl.col(source) * 1000).cast(pl.Int64).cast(pl.Datetime("ms")))
    if x_mode == X_RELATIVE:
        return df.with_columns(x=pl.col(source) / 3600.0)
    return df.with_columns(x=pl.col(source).cast(pl.Float64))


def compare_chart(
    runs: pl.DataFrame,
    groups: pl.DataFrame | None,
    x_mode: str,
    y_title: str,
    show_raw: bool = True,
    height: int = 420,
) -> alt.LayerChart:
    """Runs as smoothed lines (raw points faint underneath), seed groups as a mean line over
    their 95% band with the IQM dashed. ``runs`` is a downsampled ``selection_table``;
    ``groups`` a ``seed_groups`` frame (x in steps or seconds; not drawn against wall time,
    where seeds run at different times of day)."""
    x_type = "T" if x_mode == X_WALL else "Q"
    x_enc = alt.X(f"x:{x_type}", title=_X_TITLES[x_mode])
    df = _with_x(runs, x_mode, x_column(x_mode)).with_columns(series=pl.col("run"))
    df = df.select("x", "series", "run", "step", "wall_time", "value", "y", "smoothed")
    base = alt.Chart(df).encode(x=x_enc, color=alt.Color("series:N", title=None))
    layers: list[alt.Chart] = []
    if show_raw:
        layers.append(base.mark_circle(size=12, opacity=0.3).encode(y=alt.Y("y:Q", title=y_title)))
    layers.append(base.mark_line(strokeWidth=1.8).encode(y=alt.Y("smoothed:Q", title=y_title)))
    nearest = alt.selection_point(nearest=True, on="pointerover", empty=False, clear="pointerout")
    layers.append(
        base.mark_circle(size=60)
        .encode(
            y="smoothed:Q",
            opacity=alt.condition(nearest, alt.value(1.0), alt.value(0.0)),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("step:Q", format=","),
                alt.Tooltip("value:Q", title="logged value", format=".6g"),
                alt.Tooltip("y:Q", title="drawn value", format=".6g"),
                alt.Tooltip("smoothed:Q", format=".6g"),
            ],
        )
        .add_params(nearest)
    )
    if groups is not None and groups.height and x_mode != X_WALL:
        g = groups.with_columns(series=pl.col("group"))
        if x_mode == X_RELATIVE:
            g = g.with_columns(x=pl.col("x") / 3600.0)
        gbase = alt.Chart(g).encode(x=x_enc, color=alt.Color("series:N", title=None))
        layers.append(gbase.mark_area(opacity=0.2).encode(y="low:Q", y2="high:Q"))
        layers.append(
            gbase.mark_line(strokeWidth=3).encode(
                y="mean:Q",
                tooltip=[
                    alt.Tooltip("group:N"),
                    alt.Tooltip("x:Q", title=_X_TITLES[x_mode], format=",.4g"),
                    alt.Tooltip("mean:Q", format=".6g"),
                    alt.Tooltip("low:Q", title="95% CI low", format=".6g"),
                    alt.Tooltip("high:Q", title="95% CI high", format=".6g"),
                    alt.Tooltip("iqm:Q", title="IQM", format=".6g"),
                ],
            )
        )
        layers.append(gbase.mark_line(strokeDash=[6, 4], strokeWidth=2).encode(y="iqm:Q"))
    return alt.layer(*layers).properties(height=height)


def chart_spec(chart: alt.TopLevelMixin, width: int = 800) -> str:
    """The Vega-Lite JSON of a chart with all its rows inline (Altair's 5,000-row guard off:
    the data was already downsampled). A NaN in the rows (a group's IQM below four seeds)
    becomes null: Altair writes it as the bare word NaN, which is not JSON, and vl-convert
    refuses the whole spec."""
    with alt.data_transformers.disable_max_rows():
        text = chart.properties(width=width).to_json()
    return json.dumps(json.loads(text, parse_constant=lambda _: None))


def chart_svg(chart: alt.TopLevelMixin, width: int = 800) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_svg(chart_spec(chart, width)).encode("utf-8")


def chart_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(chart_spec(chart), scale=scale)
