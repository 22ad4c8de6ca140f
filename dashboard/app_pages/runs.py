"""Runs: every run with its state and progress, the queue, and per-run controls; search,
filters (tags among them) and the archive view (issue 17).

Sorting is the table's own: click a column's header. Each column holds a typed value (steps
and returns as numbers, the ETA in seconds, the start as a time), so it sorts by value; it
sorts the page shown (``PAGE_SIZE`` runs), so narrow a long list with the search first."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import streamlit as st

from dashboard import data, fmt, run_search
from dashboard.components import annotations, controls
from dashboard.presets import PRESETS
from runstore.models import RunState

REFRESH_SECONDS = 2.0
PAGE_SIZE = data.PAGE_SIZE

st.title("Runs")


def table(rows: list[data.RunRow], show_archived: bool = False) -> pl.DataFrame:
    """The table's columns, each typed so that sorting by it sorts by value."""
    columns = {
        "name": [r.name for r in rows],
        "state": [r.state_text for r in rows],
        "tags": [annotations.tags_text(r.tags) for r in rows],
        "game": [r.env for r in rows],
        "algo": [r.algo.upper() for r in rows],
        "progress": [r.progress for r in rows],
        "steps": [r.timesteps for r in rows],
        "of steps": [r.total_timesteps for r in rows],
        "steps/s": [r.fps for r in rows],
        "ETA": [r.eta_seconds for r in rows],
        "latest return": [r.last_return for r in rows],
        "best return": [r.best_return for r in rows],
        "started": [datetime.fromtimestamp(r.started_at) if r.started_at else None for r in rows],
        "note": [annotations.short_note(r.note) for r in rows],
        "sweep": [r.sweep for r in rows],
        "id": [r.id for r in rows],
    }
    if any(r.node for r in rows):  # runs on a Ray cluster: which node each is on
        columns["node"] = [r.node for r in rows]
    if show_archived:
        columns["archived"] = [r.archived for r in rows]
    return pl.DataFrame(
        columns,
        schema_overrides={
            "steps": pl.Int64,
            "of steps": pl.Int64,
            "steps/s": pl.Float64,
            "ETA": pl.Float64,
            "latest return": pl.Float64,
            "best return": pl.Float64,
            "started": pl.Datetime("us"),
        },
    )


COLUMNS = {
    "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
    "steps": st.column_config.NumberColumn("steps", format="compact"),
    "of steps": st.column_config.NumberColumn("of steps", format="compact"),
    "steps/s": st.column_config.NumberColumn("steps/s", format="%.0f"),
    "ETA": st.column_config.NumberColumn("ETA", format="duration"),
    "latest return": st.column_config.NumberColumn(format="%.1f"),
    "best return": st.column_config.NumberColumn(format="%.1f"),
    "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
}


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
    s1, s2, s3 = st.columns([3, 2, 1])
    query = s1.text_input(
        "Search",
        key="runs_search",
        placeholder="words in a name, tag, note or config value (all must match)",
    )
    # A chosen tag no run carries any more stays a choice (the widget keeps its value).
    chosen_tags = st.session_state.get("runs_filter_tag") or []
    tag_choices = sorted({*run_search.all_tags(rows), *chosen_tags})
    tags = s2.multiselect("Tag", tag_choices, key="runs_filter_tag", placeholder="all")
    show_archived = s3.toggle("Show archived", key="runs_show_archived")
    shown = run_search.visible(rows, show_archived)
    if hidden := len(rows) - len(shown):
        s3.caption(f"{hidden} archived hidden")
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
    # The search last, on what the other filters left: it may read configs (once per file).
    chosen = [
        r
        for r in run_search.with_tags(shown, tags)
        if (not states or r.state.value in states)
        and (not games or r.env in games)
        and (not algos or r.algo in algos)
        and (not sweep_ids or r.sweep_id in sweep_ids)
    ]
    return run_search.search(chosen, query, data.config_words)


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
            "search, filter, or turn the page (a column's header sorts the page shown)."
        )
    show_archived = bool(st.session_state.get("runs_show_archived"))
    st.dataframe(
        table(shown, show_archived).to_pandas().style.map(fmt.state_css, subset=["state"]),
        hide_index=True,
        width="stretch",
        column_config=COLUMNS,
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
    row = next(r for r in shown if r.id == selected)
    controls.run_controls(row, "runs")
    annotations.archive_button(row, "runs")


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
