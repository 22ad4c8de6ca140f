"""Videos: every evaluation clip across runs, newest first, filtered by run and game."""

from __future__ import annotations

import streamlit as st

from dashboard import clip_data
from dashboard.components.clips import clip_player
from runstore.units import format_steps

PER_PAGE = 12
COLUMNS = 3

st.title("Videos")
rows = clip_data.gallery()
if not rows:
    st.info(
        "No clips yet. Runs record an evaluation clip every `video_every` steps (Atari runs "
        "evaluate every 250,000 steps by default); the Run page records one on demand."
    )
    st.stop()

runs = sorted({r.run_name for r in rows})
games = sorted({r.game for r in rows})
left, right = st.columns(2)
picked_runs = left.multiselect("Runs", runs, key="videos_runs", placeholder="all runs")
picked_games = right.multiselect("Games", games, key="videos_games", placeholder="all games")
shown = [
    r
    for r in rows
    if (not picked_runs or r.run_name in picked_runs)
    and (not picked_games or r.game in picked_games)
]
pages = max(1, -(-len(shown) // PER_PAGE))
page = st.number_input("Page", 1, pages, 1, key="videos_page") if pages > 1 else 1
st.caption(f"{len(shown)} clip(s), newest first")
chunk = shown[(page - 1) * PER_PAGE : page * PER_PAGE]
for start in range(0, len(chunk), COLUMNS):
    for col, clip in zip(st.columns(COLUMNS), chunk[start : start + COLUMNS], strict=False):
        with col:
            clip_player(  # streamed by the clip server, checked by runstore.safeio
                clip,
                "Download",
                key=f"dl_{clip.run_id}_{clip.path.name}",
                title=f"**{clip.run_name}** · {clip.game} · step {format_steps(clip.step)}",
            )
