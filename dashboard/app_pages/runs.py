"""Runs: every run with its state and progress, the queue, and per-run controls."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import data, fmt
from dashboard.components import controls
from dashboard.presets import PRESETS
from runstore.models import RunState
from runstore.units import format_steps

REFRESH_SECONDS = 2.0
PAGE_SIZE = data.PAGE_SIZE

st.title("Runs")


def table(rows: list[data.RunRow]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "name": [r.name for r in rows],
            "state": [r.state_text for r in rows],
            "game": [r.env for r in rows],
            "algo": [r.algo.upper() for r in rows],
            "progress": [r.progress for r in rows],
            "steps": [
                f"{format_steps(r.timesteps)} / {format_steps(r.total_timesteps)}" for r in rows
            ],
            "steps/s": [r.fps for r in rows],
            "ETA": [fmt.duration(r.eta_seconds) for r in rows],
            "latest return": [r.last_return for r in rows],
            "best return": [r.best_return for r in rows],
            "started": [fmt.clock(r.started_at) for r in rows],
            "sweep": [r.sweep for r in rows],
            "id": [r.id for r in rows],
        },
        schema_overrides={
            "steps/s": pl.Float64,
            "latest return": pl.Float64,
            "best return": pl.Float64,
        },
    )


def empty_state() -> None:
    st.info(
        "No runs yet. Pick a preset below to open the New run form, or drop a run config "
        f"(YAML) into `{data.store().queue_dir}`: the runner picks it up within a second."
    )
    cols = st.columns(len(PRESETS))
    for col, (name, preset) in zip(cols, PRESETS.items(), strict=True):
        with col:
            st.markdown(f"**{name}**  \n{preset.blurb}")
            if st.button(f"Use {name}", key=f"runs_preset_{preset.key}"):
                st.session_state["new_run_preset"] = name
                st.switch_page(controls.NEW_RUN_PAGE)


def filters(rows: list[data.IndexEntry]) -> list[data.IndexEntry]:
    c1, c2, c3, c4 = st.columns(4)
    states = c1.multiselect(
        "State", [s.value for s in RunState], key="runs_filter_state", placeholder="all"
    )
    games = c2.multiselect(
        "Game", sorted({r.env for r in rows}), key="runs_filter_game", placeholder="all"
    )
    algos = c3.multiselect(
        "Algorithm", sorted({r.algo for r in rows}), key="runs_filter_algo", placeholder="all"
    )
    sweep_ids = c4.multiselect(
        "Sweep",
        sorted({r.sweep_id for r in rows if r.sweep_id}, reverse=True),
        key="runs_filter_sweep",
        placeholder="all",
    )
    return [
        r
        for r in rows
        if (not states or r.state.value in states)
        and (not games or r.env in games)
        and (not algos or r.algo in algos)
        and (not sweep_ids or r.sweep_id in sweep_ids)
    ]


@st.fragment(run_every=REFRESH_SECONDS)
def live_runs() -> None:
    index, unreadable = data.run_index()
    for run_id in unreadable:
        st.error(
            f"Run `{run_id}`: its run.json is damaged (or a link), so it cannot be shown or "
            "controlled. Restore run.json or delete the folder; `python -m runner ls` lists it."
        )
    if not index and not data.queue_items():
        empty_state()
        return
    matching = filters(index)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = 1
    if pages > 1:
        page = int(
            st.number_input(
                f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="runs_page"
            )
        )
    first = (min(page, pages) - 1) * PAGE_SIZE
    shown = data.rows_of([e.id for e in matching[first : first + PAGE_SIZE]])
    if len(matching) > PAGE_SIZE:
        st.caption(
            f"Runs {first + 1}-{first + len(shown)} of {len(matching)} (newest first); "
            "filter by state, game or algorithm, or turn the page."
        )
    st.dataframe(
        table(shown).to_pandas().style.map(fmt.state_css, subset=["state"]),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
            "steps/s": st.column_config.NumberColumn("steps/s", format="%.0f"),
            "latest return": st.column_config.NumberColumn(format="%.1f"),
            "best return": st.column_config.NumberColumn(format="%.1f"),
        },
        key="runs_table",
    )
    if not shown:
        st.caption("No run matches the filters.")
        return
    ids = [r.id for r in shown]
    labels = {r.id: f"{r.name} — {r.state_text} ({r.id})" for r in shown}
    if st.session_state.get("runs_selected") not in ids:
        st.session_state["runs_selected"] = ids[0]
    selected = st.selectbox(
        "Run", ids, format_func=labels.__getitem__, key="runs_selected", label_visibility="hidden"
    )
    controls.run_controls(next(r for r in shown if r.id == selected), "runs")


@st.fragment(run_every=REFRESH_SECONDS * 2)
def queue() -> None:
    waiting = data.queue_items()
    rejected = data.rejected_items()
    st.subheader("Queue")
    if waiting:
        for item in waiting:
            st.text(f"{item.name} — waiting {fmt.duration(item.waiting_seconds)}")
            if item.problem:
                st.error(item.problem)
    else:
        st.caption(
            "Empty. Configs dropped into the queue folder are picked up by the runner within a "
            "second; valid ones become queued runs above."
        )
    if rejected:
        st.subheader("Rejected configs")
        for item in rejected:
            with st.expander(f"{item.name} — {fmt.clock(item.rejected_at)}"):
                st.code(item.error, language=None)


live_runs()
queue()
