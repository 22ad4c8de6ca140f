"""Run: one run's live curves, timeline, config and lineage, checkpoints, log and failure
diagnosis."""

from __future__ import annotations

import time

import streamlit as st

from analysis import run_charts
from dashboard import data, fmt
from dashboard.components import controls
from dashboard.components.annotations import render_annotations
from dashboard.components.clips import render_run_clips
from dashboard.components.diagnosis import render_diagnosis
from dashboard.components.journey import render_journeys
from dashboard.components.lineage import render_lineage
from dashboard.components.report_button import report_button
from dashboard.components.resources import render_resources
from dashboard.components.storage import render_run_size
from dashboard.components.trust import render_trust
from runstore.config import read_stored_config
from runstore.models import RunState
from runstore.timeline import build_timeline
from runstore.units import format_steps

REFRESH_SECONDS = 3.0


def stored_config_warnings(text: str) -> tuple[str, ...]:
    """What the tolerant reader of config.yaml warns about (keys this version does not know,
    a newer format); an invalid config is shown by the Runs row's problem instead."""
    try:
        return read_stored_config(text.encode("utf-8")).warnings if text else ()
    except ValueError:  # ConfigError
        return ()


# The selector offers the newest runs (one run.json each); any other opens by its link.
choices = data.newest_runs(data.RUN_CHOICES)
if not choices:
    st.title("Run")
    st.info("No runs yet: start one from **New run**; its curves appear here while it trains.")
    st.page_link("app_pages/new_run.py", label="New run", icon=":material/add_circle:")
    st.stop()

wanted = data.safe_run_id(st.query_params.get("run"))
if wanted and data.read_run(wanted) is None:
    st.error(f"Run `{wanted}`: its run.json is damaged, so it cannot be shown; another run is.")
    wanted = None
if wanted and st.session_state.get("run_selected") != wanted:
    st.session_state["run_selected"] = wanted
selected = data.safe_run_id(st.session_state.get("run_selected"))
record = data.read_run(selected) if selected else None
if record is not None and all(r.id != record.id for r in choices):
    choices = [*choices, record]  # an older run, opened by its link
elif record is None:
    st.session_state["run_selected"] = choices[0].id
ids = [r.id for r in choices]
names = {r.id: f"{r.name} — {data.state_text(r.state, r.pruned_at)} ({r.id})" for r in choices}
run_id = st.selectbox("Run", ids, format_func=names.__getitem__, key="run_selected")
st.query_params["run"] = run_id


@st.fragment(run_every=REFRESH_SECONDS)
def header() -> None:
    row = data.get_row(run_id)
    if row is None:
        st.warning("This run is gone (deleted).")
        return
    st.title(row.name)
    st.markdown(
        f"{fmt.state_badge(row.state, row.pruned_at)} &nbsp; `{row.env}` · {row.algo.upper()} · "
        f"{row.device or 'device not known yet'}"
        + (f" · sweep trial `{row.sweep}`" if row.sweep else "")
        + (f" · cluster node {row.node}" if row.node else "")
    )
    st.progress(
        row.progress,
        text=f"{format_steps(row.timesteps)} / {format_steps(row.total_timesteps)} steps",
    )
    m = st.columns(5)
    m[0].metric("steps/s", fmt.number(row.fps, 0) or "—")
    m[1].metric("ETA", fmt.duration(row.eta_seconds) or "—")
    m[2].metric("latest return", fmt.number(row.last_return) or "—")
    m[3].metric("best return", fmt.number(row.best_return) or "—")
    m[4].metric("started", fmt.clock(row.started_at) or "—")
    if row.state in (RunState.FAILED, RunState.LOST):
        record = data.read_run(run_id)
        status = data.read_status(run_id)
        diagnosis = (record.diagnosis if record else None) or (status.diagnosis if status else None)
        render_diagnosis(diagnosis, row.reason)
    elif row.state == RunState.RUNNING and row.heartbeat_at:
        age = time.time() - row.heartbeat_at
        if age > 30:
            st.warning(f"No progress report for {fmt.duration(age)}: the run may be stuck.")
    controls.run_controls(row, "run")


@st.fragment(run_every=REFRESH_SECONDS)
def curves(x: str, smoothing: float) -> None:
    episodes = data.run_episodes(run_id)
    scalars = data.run_scalars(run_id)
    damage = data.metric_problems(run_id)
    if damage:
        st.warning(
            "Event files are damaged; the curves skip what cannot be read: " + "; ".join(damage)
        )
    if episodes.height:
        st.altair_chart(run_charts.return_chart(episodes, x, smoothing), width="stretch")
    else:
        st.caption("No finished episode yet: the return chart appears after the first one.")
    tags = run_charts.available_tags(scalars)
    if not tags:
        st.caption("Training metrics appear after the first update.")
        return
    cols = st.columns(2)
    for i, (tag, title) in enumerate(tags):
        with cols[i % 2]:
            st.altair_chart(
                run_charts.scalar_chart(scalars, tag, title, x, smoothing), width="stretch"
            )


header()
render_trust(run_id)
render_annotations(run_id)  # tags, note, archive (issue 17)
c1, c2 = st.columns([1, 2])
x = c1.radio("x axis", [run_charts.X_STEPS, run_charts.X_TIME], horizontal=True, key="run_x")
smoothing = c2.slider(
    "Smoothing",
    0.0,
    0.99,
    0.8,
    0.01,
    key="run_smoothing",
    help="TensorBoard's exponential moving average: 0 shows the raw values.",
)
curves(x, smoothing)
report_button([run_id], key="run_report")

timeline_tab, clips_tab, journey_tab, system_tab, config_tab, ckpt_tab, log_tab = st.tabs(
    ["Timeline", "Clips", "Journey", "System", "Config", "Checkpoints", "Log"]
)
with clips_tab:
    render_run_clips(run_id)
with journey_tab:
    render_journeys(run_id)
with system_tab:
    render_resources(run_id)
with timeline_tab:
    record = data.read_run(run_id)
    row = data.get_row(run_id)
    if record is not None and row is not None:
        events = build_timeline(
            record,
            data.store().paths(run_id).checkpoints,
            data.run_episodes(run_id),
            data.run_scalars(run_id),
            row.total_timesteps,
        )
        for ev in reversed(events):
            st.text(f"{fmt.clock(ev.at):>19}  {ev.text}")
with config_tab:
    config = data.config_text(run_id)
    if config.problem:
        st.warning(config.problem)
    for warning in stored_config_warnings(config.text):
        st.warning(warning)
    st.code(config.text or "(no config.yaml)", language="yaml")
    st.subheader("Lineage")
    render_lineage(run_id)
with ckpt_tab:
    render_run_size(run_id)
    ckpts = data.list_checkpoints(run_id)
    if not ckpts:
        st.caption("No checkpoint yet.")
    for c in ckpts:
        ok = "complete" if c.complete else "incomplete (skipped on resume)"
        saved = fmt.clock(c.saved_at)
        st.text(f"{c.name}  step {c.step:,}  {fmt.size(c.size_bytes)}  {saved}  {ok}")
with log_tab:
    log = data.log_tail(run_id)
    if log.problem:
        st.warning(log.problem)
    st.code(log.text or "(the training process wrote nothing yet)", language=None)
