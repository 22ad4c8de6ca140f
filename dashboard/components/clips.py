"""Clips on the pages: one clip with its caption and download button (``clip_player``, used
by the Videos page and the Run page), and the Run page's clips section: the run's clips on a
step slider, its time-lapse, exports, and the buttons that ask the runner for a new clip or a
time-lapse.

Call ``render_run_clips(run_id)`` from a page; it reads through ``dashboard.clip_data`` only.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from dashboard import auth, clip_data, fmt, video_data
from dashboard.components.video_actions import video_actions
from runstore import safeio
from runstore.units import format_steps
from runstore.video_files import download_name

FOREIGN_ZIP_WARNING = (
    "Model zips are Python pickles: loading one can run code. Only load a zip written by this "
    "trainer (the best model or a checkpoint of a run here) or by someone you trust. Imports go "
    "through the command line on purpose: `python -m training.record RUN_DIR --foreign-zip "
    "FILE --trust-foreign-zip`."
)


def render_run_clips(run_id: str) -> None:
    clips = clip_data.run_clips(run_id)
    if not clips:
        st.info(
            "No clips yet. Evaluation clips appear every `video_every` steps (set `eval_every` "
            "in the config), or record one from a checkpoint below."
        )
    else:
        labels = {
            i: f"{format_steps(c.step)}{' (recorded)' if c.kind == 'record' else ''}"
            for i, c in enumerate(clips)
        }
        index = (
            st.select_slider(
                "Clip at step",
                options=list(range(len(clips))),
                value=len(clips) - 1,
                format_func=labels.__getitem__,
                key=f"clips_step_{run_id}",
            )
            if len(clips) > 1
            else 0
        )
        clip = clips[index]
        clip_player(clip, "Download this clip", key=f"clip_dl_{run_id}_{clip.step}_{clip.kind}")
    _timelapse(run_id, bool(clips))
    _record(run_id)
    _exports(run_id)


def clip_player(
    clip: clip_data.ClipRow,
    download_label: str,
    *,
    key: str,
    title: str = "",
    save_as: str = "",
) -> None:
    """One clip: the video (or why it was refused), ``title`` (markdown) if given, its caption,
    and a download button under a clip that plays, saved as ``save_as`` (a title the user
    gave the clip, slugified, with the extension) when given."""
    played = play(clip.path, clip.problem)
    if title:
        st.markdown(title)
    st.caption(clip_caption(clip))
    if played is not None:
        download_clip(
            download_label,
            clip.path,
            played,
            file_name=download_name(clip.path.name, save_as, prefix=clip.run_name),
            key=key,
            save_as=save_as,
        )


def download_clip(
    label: str, path: Path, url: str, *, file_name: str, key: str, save_as: str = ""
) -> None:
    """Download a clip that plays: from the clip server (``url``, as an attachment, any size,
    saved as ``save_as`` slugified when given: a video's title), else a button whose bytes
    are read when clicked (up to ``clip_data.MAX_VIDEO_BYTES``) saved as ``file_name``."""
    if url:
        st.link_button(label, clip_data.download_url(url, save_as))
    else:
        download_button(
            label, path, clip_data.MAX_VIDEO_BYTES, file_name=file_name, mime="video/mp4", key=key
        )


def show_video(path: Path, problem: str = "") -> bool:
    """Play a clip, or say why it was refused.

    The browser streams it from the clip server (``dashboard/clip_server.py``) by a signed URL
    made for this page, after the clip passed ``runstore.safeio``'s check; nothing of it is
    held in memory. Never ``st.video(path)``: Streamlit would open the path itself, following
    a planted link, and hold the whole file in memory. When the clip server could not start,
    the clip is played from bytes read through ``runstore.safeio`` (up to
    ``clip_data.MAX_VIDEO_BYTES``), and the page says so. ``problem`` is a refusal found while
    listing (the clip or its sidecar); a clip whose sidecar alone was refused still plays.
    """
    return play(path, problem) is not None


def play(path: Path, problem: str = "") -> str | None:
    """``show_video``: None when refused; else the clip's URL ("" when played from bytes)."""
    if problem:
        st.warning(problem)
    server = clip_data.clip_server()
    try:
        if isinstance(server, str):
            data: str | bytes = clip_data.video_bytes(path)
        else:
            data = clip_data.clip_url(server, path)
    except OSError as exc:
        if not problem:
            st.warning(safeio.problem(exc, f"videos/{path.name}"))
        return None
    st.video(data, format="video/mp4")
    if isinstance(server, str):
        st.caption(
            f"Played from memory (clips up to {clip_data.MAX_VIDEO_BYTES // 2**20} MiB): the "
            f"clip server did not start ({server})."
        )
        return ""
    return str(data)


def download_button(
    label: str, path: Path, limit: int, *, file_name: str, mime: str, key: str
) -> None:
    """A download whose file is read when clicked, through ``runstore.safeio`` (a link planted
    after the page was drawn is refused then too)."""
    st.download_button(
        label,
        data=partial(clip_data.file_bytes, path, limit),
        file_name=file_name,
        mime=mime,
        key=key,
    )


def clip_caption(clip: clip_data.ClipRow) -> str:
    score = "" if clip.score is None else f" · evaluation return {clip.score:g}"
    source = f" · recorded from {clip.checkpoint}" if clip.kind == "record" else ""
    return f"{clip.run_name} · step {format_steps(clip.step)}{score}{source}"


def _timelapse(run_id: str, have_clips: bool) -> None:
    st.subheader("Time-lapse")
    path = clip_data.timelapse(run_id)
    played = play(path) if path is not None else None
    if path is not None and played is not None:
        title = video_data.video_titles(run_id).get(path.name, "")
        if title:
            st.markdown(f"**{fmt.plain(title)}**")
        download_clip(
            "Download the time-lapse",
            path,
            played,
            file_name=download_name(path.name, title, prefix=run_id),
            key=f"timelapse_dl_{run_id}",
            save_as=title,
        )
        video_actions(run_id, path, title)
    job = clip_data.media_job(run_id)
    if job == "timelapse":
        st.caption("The runner is stitching the time-lapse…")
    elif have_clips and auth.control_allowed():
        label = "Remake the time-lapse" if path else "Make a time-lapse"
        if st.button(label, key=f"timelapse_{run_id}"):
            clip_data.request_timelapse(run_id)
            st.toast("Time-lapse requested: the runner stitches it in the background.")


def _record(run_id: str) -> None:
    names = clip_data.checkpoint_names(run_id)
    if not names or not auth.control_allowed():
        return
    st.subheader("Record a clip")
    if clip_data.media_job(run_id) == "record":
        st.caption("The runner is recording a clip…")
        return
    cols = st.columns([2, 1, 1])
    checkpoint = cols[0].selectbox("From", names, key=f"record_ckpt_{run_id}")
    episodes = cols[1].number_input(
        "Games",
        min_value=1,
        max_value=clip_data.MAX_RECORD_EPISODES,
        value=1,
        key=f"record_n_{run_id}",
    )
    if cols[2].button("Record", key=f"record_{run_id}"):
        clip_data.request_record(run_id, checkpoint, int(episodes))
        st.toast("Clip requested: it appears here when the runner has recorded it.")
    if st.button("Continue from here (new run from these weights)", key=f"continue_{run_id}"):
        path = clip_data.continue_from(run_id, checkpoint)
        st.success(f"Queued {path.name}: a new run that starts from {checkpoint}.")


def _exports(run_id: str) -> None:
    best = clip_data.best_model(run_id)
    if best is None:
        return
    st.subheader("Export")
    try:
        clip_data.check_file(best)
    except OSError as exc:
        st.warning(safeio.problem(exc, "checkpoints/best.zip"))
        return
    download_button(
        "Download the best model (zip)",
        best,
        clip_data.MAX_MODEL_BYTES,
        file_name=f"{run_id}-best.zip",
        mime="application/zip",
        key=f"best_dl_{run_id}",
    )
    st.caption(FOREIGN_ZIP_WARNING)
