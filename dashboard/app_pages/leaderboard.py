"""Leaderboard: the best evaluation score per game across all runs, with a clip of it."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import clip_data
from dashboard.components.clips import show_video
from runstore.units import format_steps

st.title("Leaderboard")
st.caption(
    "Best mean evaluation return per game (whole games, real points, deterministic actions "
    "unless a run's config says otherwise)."
)
rows = clip_data.leaderboard()
if not rows:
    st.info("No evaluations yet: runs with `eval_every` set report their scores here.")
    st.stop()

table = pl.DataFrame(
    {
        "Game": [r.game for r in rows],
        "Best eval return": [r.best_eval_return for r in rows],
        "Run": [r.run_name for r in rows],
        "Algorithm": [r.algo for r in rows],
        "At step": [format_steps(r.at_step) for r in rows],
        "Trained steps": [format_steps(r.timesteps) for r in rows],
        "Run id": [r.run_id for r in rows],
    }
)
st.dataframe(table, hide_index=True, width="stretch")
for row in rows:
    with st.expander(f"{row.game}: {row.best_eval_return:g} — {row.run_name}"):
        if row.clip is not None:
            show_video(row.clip)  # streamed by the clip server, never st.video(path)
        else:
            st.caption("No clip of this run yet.")
        st.page_link("app_pages/run.py", label="Open the run", query_params={"run": row.run_id})
