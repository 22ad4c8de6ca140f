"""Compare: several runs on one chart, smoothed like TensorBoard, seeds grouped into a mean
with a 95% bootstrap band, Atari scores human-normalised; the groups' final scores and their
statistics; the keys their configs differ in; export; TensorBoard beside it."""

from __future__ import annotations

import hashlib

import polars as pl
import streamlit as st

from analysis.compare_charts import chart_png, chart_svg, compare_chart
from analysis.compare_data import (
    DEFAULT_METRICS,
    EPISODES_METRIC,
    X_MODES,
    X_WALL,
    RunInfo,
    can_normalize,
    downsample,
    grouped_run_ids,
    metric_series,
    seed_groups,
    selection_table,
    to_csv,
    to_parquet,
)
from analysis.config_diff import config_diff
from analysis.downsample import DEFAULT_POINTS
from analysis.group_stats import final_scores, groups_of
from analysis.seeds import group_key
from analysis.smoothing import MAX_SMOOTHING
from dashboard import data
from dashboard.components.group_stats import final_scores_section
from dashboard.components.report_button import report_button
from dashboard.components.tensorboard import tensorboard_panel
from runstore.metrics import EPISODE_RETURN_TAG, load_episodes, load_scalars

st.title("Compare")
#: Runs whose tags are read to offer them (newest first, after the filters): the page's cost
#: stays that of this many runs in a folder of thousands; the filters narrow it.
MAX_CANDIDATES = 100

rows, _ = data.run_index()  # name, state, game, algorithm: no status, no metrics
if not rows:
    st.info("No runs yet: start one on the New run page, or drop a YAML file into runs/queue/.")
    st.stop()

# -- which runs -------------------------------------------------------------------------------
c_game, c_algo, c_state, c_sweep = st.columns(4)
games = c_game.multiselect("Game", sorted({r.env for r in rows}), key="cmp_games")
algos = c_algo.multiselect("Algorithm", sorted({r.algo for r in rows}), key="cmp_algos")
states = c_state.multiselect("State", sorted({r.state.value for r in rows}), key="cmp_states")
in_sweeps = c_sweep.multiselect(
    "Sweep", sorted({r.sweep_id for r in rows if r.sweep_id}, reverse=True), key="cmp_sweeps"
)
matching = [
    r
    for r in rows
    if (not games or r.env in games)
    and (not algos or r.algo in algos)
    and (not states or r.state.value in states)
    and (not in_sweeps or r.sweep_id in in_sweeps)
]
candidates = matching[:MAX_CANDIDATES]
if len(matching) > MAX_CANDIDATES:
    st.caption(
        f"The newest {MAX_CANDIDATES} of {len(matching)} matching runs are offered; "
        "filter by game, algorithm or state to reach the others."
    )


@st.cache_data(show_spinner=False, max_entries=2000)
def _tags(run_dir: str, key: object) -> list[str]:
    """The scalar tags of a run (small to cache; keyed by its event files' sizes and mtimes)."""
    return sorted(load_scalars(run_dir)["tag"].unique().to_list())


@st.cache_data(show_spinner=False, max_entries=500)
def _series(run_dir: str, key: object, metric: str) -> pl.DataFrame:
    """[step, wall_time, value] of one metric of one run."""
    episodes = load_episodes(run_dir) if metric == EPISODES_METRIC else pl.DataFrame()
    scalars = pl.DataFrame() if metric == EPISODES_METRIC else load_scalars(run_dir)
    return metric_series(metric, scalars, episodes)


rs = data.store()
keys = {r.id: data.tree_stamp(rs.paths(r.id).tb) for r in candidates}
tags = {r.id: _tags(str(rs.paths(r.id).dir), keys[r.id]) for r in candidates}
all_tags = sorted({t for run_tags in tags.values() for t in run_tags})
metrics = [EPISODES_METRIC, *all_tags]
default_metric = next((m for m in DEFAULT_METRICS if m in all_tags), EPISODES_METRIC)
metric = st.selectbox(
    "Metric (TensorBoard tag)",
    metrics,
    index=metrics.index(default_metric),
    key="cmp_metric",
    help="'episode return (every episode)' is every finished episode's score, not SB3's "
    "100-episode mean (rollout/ep_rew_mean).",
)


def _has(run_id: str) -> bool:
    if metric != EPISODES_METRIC:
        return metric in tags[run_id]
    return EPISODE_RETURN_TAG in tags[run_id] or bool(
        _series(str(rs.paths(run_id).dir), keys[run_id], metric).height
    )


with_data = [r for r in candidates if _has(r.id)]
if not with_data:
    st.info(f"None of the {len(candidates)} matching runs has logged {metric!r} yet.")
    st.stop()

infos: dict[str, RunInfo] = {}
for r in with_data:
    config = data.read_config(r.id)
    seed = config.seed if config else None
    infos[r.id] = RunInfo(
        id=r.id,
        label=f"{r.name} s{seed} #{r.id[-4:]}" if seed is not None else f"{r.name} #{r.id[-4:]}",
        env=r.env,
        algo=r.algo,
        seed=seed,
        group=group_key(config) if config else r.id,
        name=r.name,
    )
chosen_ids = st.multiselect(
    "Runs",
    list(infos),
    default=list(infos)[:5],
    format_func=lambda run_id: f"{infos[run_id].label}  ({run_id})",
    # A new set of candidates (filters changed) starts from fresh defaults, not from an
    # earlier pick that no longer applies.
    key="cmp_runs_" + hashlib.sha1(" ".join(infos).encode()).hexdigest()[:10],
)
chosen = [infos[i] for i in chosen_ids]
if not chosen:
    st.info("Pick one or more runs.")
    st.stop()

# -- how to draw them -------------------------------------------------------------------------
c_x, c_smooth = st.columns([1, 2])
x_mode = c_x.radio("x axis", X_MODES, horizontal=True, key="cmp_x")
smoothing = c_smooth.slider(
    "Smoothing (TensorBoard's)", 0.0, MAX_SMOOTHING, 0.6, step=0.001, key="cmp_smoothing"
)
c_raw, c_group, c_norm = st.columns(3)
show_raw = c_raw.checkbox("Raw points", value=True, key="cmp_raw")
group = c_group.checkbox(
    "Group seeds",
    value=False,
    key="cmp_group",
    help="Runs whose resolved configs differ only by seed (and name): mean with a 95% "
    "bootstrap confidence band, and the interquartile mean (dashed) from 4 seeds on.",
    disabled=x_mode == X_WALL,
)
normalizable, why_not = can_normalize(metric, chosen)
normalize = c_norm.checkbox(
    "Human-normalised score",
    value=False,
    key="cmp_norm",
    disabled=not normalizable,
    help="(score - random) / (human - random) with the Atari-57 reference scores: 0 is a "
    "random agent, 1 a human tester." + (f" Not available: {why_not}." if why_not else ""),
)
normalize = normalize and normalizable

series = {i.id: _series(str(rs.paths(i.id).dir), keys[i.id], metric) for i in chosen}
table = selection_table(chosen, series, metric, smoothing, normalize)
groups = seed_groups(table, chosen, x_mode) if group and x_mode != X_WALL else None
grouped_ids = grouped_run_ids(chosen, groups)
show_members = bool(grouped_ids) and st.checkbox(
    "Show grouped runs too", value=False, key="cmp_members"
)
drawn = table if show_members else table.filter(~pl.col("run_id").is_in(sorted(grouped_ids)))
drawn = downsample(drawn, x_mode, DEFAULT_POINTS, by="smoothed" if smoothing > 0 else "y")
y_title = f"{metric} (human-normalised)" if normalize else metric
chart = compare_chart(drawn, groups, x_mode, y_title, show_raw=show_raw)
st.altair_chart(chart, width="stretch", key="cmp_chart")
st.caption(
    f"{table.height:,} points in the selection; drawn from at most {DEFAULT_POINTS:,} per run "
    "(largest-triangle-three-buckets), each drawn point a logged value."
    + (" Groups: mean line, 95% bootstrap band, IQM dashed." if groups is not None else "")
    + (" Seed groups need steps or relative time on x." if group and x_mode == X_WALL else "")
)
if group and groups is not None and groups.height == 0:
    st.caption("No two chosen runs differ only by seed, so nothing is grouped.")

# -- final scores by seed group ---------------------------------------------------------------
if group:
    scored = groups_of(chosen, final_scores(table, episodes=metric == EPISODES_METRIC))
    if len(scored) >= 2:
        with st.expander("Final scores by group", expanded=True):
            final_scores_section(scored, metric)

# -- how their configs differ -----------------------------------------------------------------
if len(chosen) >= 2:
    configs = {i.label: c.model_dump(mode="json") for i in chosen if (c := data.read_config(i.id))}
    diff = config_diff(configs)
    differ = f"{diff.height} key differs" if diff.height == 1 else f"{diff.height} keys differ"
    with st.expander(f"Config diff: {differ}", expanded=False):
        if diff.height:
            st.dataframe(diff, hide_index=True, width="stretch", key="cmp_config_diff")
        else:
            st.caption("The chosen runs' resolved configs are the same.")

# -- a report to hand on ----------------------------------------------------------------------
report_button([i.id for i in chosen], key="cmp_report", group_seeds=group)

# -- export -----------------------------------------------------------------------------------
stem = "compare-" + metric.replace("/", "_").replace(" ", "_")
exports = [  # (label, what, file extension, MIME type); the charts render when clicked
    ("Data (CSV)", to_csv(table), "csv", "text/csv"),
    ("Data (Parquet)", to_parquet(table), "parquet", "application/vnd.apache.parquet"),
    ("Chart (PNG)", lambda: chart_png(chart), "png", "image/png"),
    ("Chart (SVG)", lambda: chart_svg(chart), "svg", "image/svg+xml"),
]
for col, (label, what, ext, mime) in zip(st.columns(len(exports)), exports, strict=True):
    col.download_button(label, what, f"{stem}.{ext}", mime, key=f"cmp_{ext}", on_click="ignore")


# -- TensorBoard beside the dashboard ---------------------------------------------------------
tensorboard_panel(str(rs.root))
