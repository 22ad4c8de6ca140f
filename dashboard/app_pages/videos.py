"""Videos: every run's journey videos and evaluation clips, filtered by run and game, the
clips sorted as chosen, each run's video sizes; titles and deletion through the runner."""

from __future__ import annotations

import streamlit as st

from dashboard import clip_data, fmt, video_data
from dashboard.components.clips import clip_player
from dashboard.components.journey import journey_card
from dashboard.components.video_actions import video_actions
from runstore.units import format_bytes, format_steps

PER_PAGE = 12
COLUMNS = 3
JOURNEY_COLUMNS = 2

st.title("Videos")
rows = clip_data.gallery()
journeys = video_data.journeys()
if not rows and not journeys:
    st.info(
        "No clips yet. Runs record an evaluation clip every `video_every` steps (Atari runs "
        "evaluate every 250,000 steps by default); the Run page records one on demand."
    )
    st.stop()

runs = sorted({r.run_name for r in rows} | {j.run_name for j in journeys})
games = sorted({r.game for r in rows} | {j.game for j in journeys})
left, right = st.columns(2)
picked_runs = left.multiselect("Runs", runs, key="videos_runs", placeholder="all runs")
picked_games = right.multiselect("Games", games, key="videos_games", placeholder="all games")


def picked(row: clip_data.ClipRow | video_data.JourneyRow) -> bool:
    return (not picked_runs or row.run_name in picked_runs) and (
        not picked_games or row.game in picked_games
    )


shown_journeys = [j for j in journeys if picked(j)]
if shown_journeys:
    st.subheader("Journeys")
    for start in range(0, len(shown_journeys), JOURNEY_COLUMNS):
        chunk = shown_journeys[start : start + JOURNEY_COLUMNS]
        for col, journey in zip(st.columns(JOURNEY_COLUMNS), chunk, strict=False):
            with col:
                titles = video_data.video_titles(journey.run_id)
                journey_card(journey, titles.get(journey.path.name, ""))

st.subheader("Clips")
order = st.selectbox("Sort", list(video_data.SORTS), key="videos_sort")
shown = video_data.sort_clips([r for r in rows if picked(r)], order)
pages = max(1, -(-len(shown) // PER_PAGE))
page = st.number_input("Page", 1, pages, 1, key="videos_page") if pages > 1 else 1
st.caption(f"{len(shown)} clip(s), {order}")
chunk = shown[(page - 1) * PER_PAGE : page * PER_PAGE]
for start in range(0, len(chunk), COLUMNS):
    for col, clip in zip(st.columns(COLUMNS), chunk[start : start + COLUMNS], strict=False):
        with col:
            title = video_data.video_titles(clip.run_id).get(clip.path.name, "")
            heading = (
                f"**{fmt.plain(clip.run_name)}** · {clip.game} · step {format_steps(clip.step)}"
            )
            clip_player(  # streamed by the clip server, checked by runstore.safeio
                clip,
                "Download",
                key=f"dl_{clip.run_id}_{clip.path.name}",
                title=f"**{fmt.plain(title)}** · {heading}" if title else heading,
                save_as=title,
            )
            video_actions(clip.run_id, clip.path, title)

sizes = video_data.video_sizes()
if sizes:
    st.subheader("Video sizes")
    st.dataframe(
        [
            {
                "run": r.run_name,
                "clips": r.clips,
                "journeys": r.journeys,
                "size": format_bytes(r.size),
                "bytes": r.size,
                "id": r.run_id,
            }
            for r in sizes
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption("Each run's videos/ folder (clips, time-lapse, journeys and their files).")
