"""The Run page's Journey tab: make an "AI learns to play" video of the run (length, size,
rate), follow the job's progress and cancel it, and watch, read and download the journeys
made so far (video, chapters, description, thumbnail); and one journey as the Videos page
lists it (``journey_card``)."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, clip_data, fmt, journey_data, video_data
from dashboard.components.clips import download_button, download_clip, play
from dashboard.components.video_actions import video_actions
from runstore.units import format_bytes
from runstore.videos import JOURNEY_FPS, JOURNEY_SIZES, Journey, parse_journey_length


def render_journeys(run_id: str) -> None:
    _job(run_id)
    journeys = journey_data.run_journeys(run_id)
    if not journeys:
        st.caption(
            "No journey video yet: one tells the run's story from its clips (the start, first "
            "points, each new best, human level, the best game, the final agent, and all four "
            "side by side), with the learning curve beside the game and YouTube chapters."
        )
    for journey in journeys:
        _journey(run_id, journey)


@st.fragment(run_every=2.0)
def _job(run_id: str) -> None:
    job = clip_data.media_job(run_id)
    if job == "journey":
        doc = journey_data.progress(run_id) or {}
        done, total = int(doc.get("done") or 0), int(doc.get("total") or 0)
        phase = {"recording": "Recording more gameplay from checkpoints", "composing": "Composing"}
        words = phase.get(str(doc.get("phase")), "Starting")
        st.progress(min(1.0, done / total) if total else 0.0, text=f"{words}: {done} of {total}")
        if auth.control_allowed() and st.button("Cancel", key=f"journey_cancel_{run_id}"):
            journey_data.cancel(run_id)
            st.toast("Cancel requested: the runner stops the job; nothing is kept.")
        return
    if not auth.control_allowed():
        return
    st.subheader("Make a journey video")
    if job is not None:
        st.caption(f"The runner is making a {job} for this run; a journey can start after it.")
        return
    cols = st.columns([2, 1, 1])
    length = cols[0].selectbox(
        "Length",
        journey_data.LENGTHS,
        index=journey_data.LENGTHS.index("10m"),
        accept_new_options=True,
        key=f"journey_length_{run_id}",
        help="10 s to 6 h; type another, e.g. 90s or 1h30m",
    )
    size = cols[1].selectbox(
        "Size",
        sorted(JOURNEY_SIZES, reverse=True),
        key=f"journey_size_{run_id}",
        format_func=lambda h: f"{h}p",
    )
    fps = cols[2].selectbox("Frame rate", JOURNEY_FPS, key=f"journey_fps_{run_id}")
    record = st.checkbox(
        "Record more gameplay from checkpoints when the clips are too short",
        value=True,
        key=f"journey_record_{run_id}",
        help="Without it, a journey longer than the run's clips plays some of them twice.",
    )
    if st.button("Make journey video", key=f"journey_make_{run_id}"):
        try:
            seconds = parse_journey_length(str(length))
        except ValueError as exc:
            st.error(str(exc))
            return
        journey_data.request_journey(run_id, seconds, int(size), int(fps), record)
        st.toast("Journey requested: the runner composes it in the background.")


def _journey(run_id: str, journey: Journey) -> None:
    meta = journey.meta
    size = journey.path.stat().st_size if journey.path.exists() else 0
    what = f"{meta.width}x{meta.height} · {meta.fps:g} fps · " if meta else ""
    title = video_data.video_titles(run_id).get(journey.path.name, "")
    named = (
        f"{fmt.plain(title)}** (journey, {journey.label})"
        if title
        else f"Journey, {journey.label}**"
    )
    st.markdown(f"**{named} · {what}{format_bytes(size)}")
    played = play(journey.path, journey.problem)
    if played is not None:
        download_clip(
            "Download the video",
            journey.path,
            played,
            file_name=video_data.save_as(title, journey.path.name, run_id),
            key=f"journey_dl_{run_id}_{journey.label}",
            save_as=title,
        )
    left, right = st.columns(2)
    chapters = journey_data.text(journey.companion(".chapters.txt"))
    if chapters:
        left.markdown("Chapters")
        left.code(chapters, language=None)
    thumb = journey_data.image(journey.companion(".png"))
    if thumb:
        right.image(thumb, caption="Thumbnail (1280x720)")
    for suffix, label, mime in (
        (".description.txt", "description", "text/plain"),
        (".chapters.txt", "chapters", "text/plain"),
        (".png", "thumbnail", "image/png"),
    ):
        path = journey.companion(suffix)
        download_button(
            f"Download the {label}",
            path,
            journey_data.MAX_TEXT_BYTES if mime == "text/plain" else journey_data.MAX_IMAGE_BYTES,
            file_name=video_data.save_as(title, path.name, run_id),
            mime=mime,
            key=f"journey_{label}_{run_id}_{journey.label}",
        )
    video_actions(run_id, journey.path, title)


def journey_card(row: video_data.JourneyRow, title: str = "") -> None:
    """One journey on the Videos page: its thumbnail, title (else "Journey, <length>"), run,
    length, frame size and file size; the video (streamed by the clip server) and its
    download; the chapters in an expander; downloads of the description and the chapters,
    named by the title when it has one; and Rename and Delete for a user who may act."""
    heading = fmt.plain(title) if title else f"Journey, {row.label}"
    length = fmt.duration(row.seconds) if row.seconds is not None else row.label
    frame = f" · {row.width}x{row.height} · {row.fps:g} fps" if row.width and row.height else ""
    st.markdown(f"**{heading}** · {fmt.plain(row.run_name)} · {row.game}")
    st.caption(f"Journey · {length}{frame} · {format_bytes(row.size)}")
    thumb = journey_data.image(row.companion(".png"))  # bounded, never through a link
    if thumb:
        st.image(thumb, caption="Thumbnail")
    played = play(row.path, row.problem)
    key = f"{row.run_id}_{row.label}"
    if played is not None:
        download_clip(
            "Download the video",
            row.path,
            played,
            file_name=video_data.save_as(title, row.path.name, row.run_id),
            key=f"videos_journey_dl_{key}",
            save_as=title,
        )
    if row.chapters:
        with st.expander("Chapters"):
            st.code(row.chapters, language=None)
    for suffix, label in ((".description.txt", "description"), (".chapters.txt", "chapters")):
        path = row.companion(suffix)
        download_button(
            f"Download the {label}",
            path,
            journey_data.MAX_TEXT_BYTES,
            file_name=video_data.save_as(title, path.name, row.run_id),
            mime="text/plain",
            key=f"videos_journey_{label}_{key}",
        )
    video_actions(row.run_id, row.path, title)
