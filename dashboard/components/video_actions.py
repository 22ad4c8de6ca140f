"""Rename and delete one video (a clip, the time-lapse or a journey), for a user who may act:
a title field with a Rename button, and a Delete button that asks for a tick first. Each
writes one ``video`` request (``dashboard.video_data``); the runner stores the title or
deletes the file, and the page shows it on a later rerun."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import auth, video_data
from runstore.video_files import MAX_TITLE_LENGTH, VideoRequestError


def video_actions(run_id: str, path: Path, title: str) -> None:
    """The Rename and Delete controls of the video ``path`` of ``run_id``, in an expander;
    nothing for a viewer who may only look."""
    if not auth.control_allowed():
        return
    name = path.name
    key = f"{run_id}_{name}"
    with st.expander("Rename or delete"):
        text = st.text_input(
            "Title",
            value=title,
            max_chars=MAX_TITLE_LENGTH,
            key=f"video_title_{key}",
            help="Shown instead of the file's name, and used as the download's file name; "
            "empty removes it. The file keeps its name.",
        )
        if st.button("Rename", key=f"video_rename_{key}"):
            try:
                video_data.request_rename(run_id, name, text)
            except VideoRequestError as exc:
                st.error(f"Not renamed: {exc}")
            else:
                st.toast("Rename requested: the runner stores the title.")
        sure = st.checkbox("Really delete", key=f"video_sure_{key}")
        if st.button("Delete", key=f"video_delete_{key}", type="primary"):
            if not sure:
                st.warning("Tick “Really delete” first: the file is gone for good.")
            else:
                video_data.request_delete(run_id, name)
                st.toast(f"Delete of {name} requested: the runner removes it.")
