"""A run's tags, note and archived flag on the Run and Runs pages (issue 17): shown to every
viewer, edited by a user who may act (``auth``), as an ``annotate`` request the runner applies
to run.json (``runstore.annotations`` holds the rules and checks them before a file is
written, so a bad tag is an error here, with its fix, and nothing is sent)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from dashboard import actions, auth, data
from runstore.annotations import (
    MAX_NOTE_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    AnnotationError,
    Change,
    check_note,
    parse_tags,
    write_annotate_request,
)
from runstore.models import RunRecord
from runstore.store import printable

#: The note's first characters shown in the Runs table.
SHORT_NOTE = 60


def tags_text(tags: tuple[str, ...] | list[str]) -> str:
    """Tags for a table cell or a caption (run.json of an imported folder may say anything:
    escaped, each cut to the longest a tag may be)."""
    return ", ".join(printable(t)[:MAX_TAG_LENGTH] for t in tags)


def tags_markdown(tags: tuple[str, ...] | list[str]) -> str:
    """Tags for a caption, each a code span, so a tag is shown as typed and never read as
    Markdown (a link, emphasis)."""
    shown = (printable(t)[:MAX_TAG_LENGTH].replace("`", "'") for t in tags)
    return " ".join(f"`{t}`" for t in shown)


def short_note(note: str) -> str:
    """The note's first line, cut to SHORT_NOTE characters, for a table cell."""
    first = printable(note.strip().split("\n", 1)[0])
    more = len(first) > SHORT_NOTE or "\n" in note.strip()
    return first[:SHORT_NOTE] + ("…" if more else "")


def request_annotation(run_id: str, change: Change) -> Path:
    """Write the request (the server-side LAN check first; the runner checks it again)."""
    auth.require_control()
    return write_annotate_request(data.store(), run_id, change, source=actions.SOURCE)


def _send(run_id: str, change: Change, what: str) -> None:
    try:
        request_annotation(run_id, change)
    except (PermissionError, ValueError) as exc:  # AnnotationError is a ValueError
        st.error(str(exc))
    else:
        st.toast(f"{what} requested; the runner stores it within a second")
        if not data.runner_alive():
            st.warning("No runner is alive: the request waits until one starts.")


def archive_button(row: data.RunRow, page: str) -> None:
    """Archive (or unarchive) the run; nothing for a viewer who may not act."""
    if not auth.control_allowed():
        return
    label = "Unarchive" if row.archived else "Archive"
    if st.button(
        label,
        key=f"{page}_archive_{row.id}",
        help="An archived run is hidden from the Runs page unless Show archived is on; "
        "nothing is deleted.",
    ):
        _send(row.id, Change(archived=not row.archived), label.lower())


def _form_key(record: RunRecord) -> str:
    """A key that changes with the stored tags and note, so the form shows what run.json
    holds now (a change from the CLI, say) rather than what was typed into an older one."""
    digest = hashlib.sha256(repr((record.tags, record.note)).encode("utf-8", "replace"))
    return f"annotate_{record.id}_{digest.hexdigest()[:8]}"


def render_annotations(run_id: str) -> None:
    """The Run page's section: tags, note and archived, and for a user who may act, a form
    to change them and the Archive button."""
    record = data.read_run(run_id)
    row = data.get_row(run_id)
    if record is None or row is None:
        return
    if record.archived:
        st.caption("Archived: hidden from the Runs page unless Show archived is on.")
    if record.tags:
        st.caption("Tags: " + tags_markdown(record.tags))
    if record.note:
        st.text("\n".join(printable(line) for line in record.note.split("\n")))
    if not auth.control_allowed():
        st.caption(
            "Read-only here: tags and the note can be changed from this machine (or with the "
            f"password), or with `python -m runner tag {run_id} TAG`."
        )
        return
    key = _form_key(record)
    with st.expander("Edit tags and note"), st.form(key):
        tags = st.text_input(
            "Tags",
            value=", ".join(record.tags),
            key=f"{key}_tags",
            help=f"Separated by commas; at most {MAX_TAGS}, {MAX_TAG_LENGTH} characters each. "
            "Stored in lower case, spaces as -.",
        )
        note = st.text_area(
            "Note",
            value=record.note,
            key=f"{key}_note",
            help=f"Free text, at most {MAX_NOTE_LENGTH:,} characters.",
        )
        saved = st.form_submit_button("Save tags and note", key=f"annotate_save_{run_id}")
    if saved:
        try:
            new_tags, new_note = parse_tags(tags), check_note(note)
        except AnnotationError as exc:
            st.error(f"Not saved: {exc}")
        else:
            change = Change(
                tags=new_tags if list(new_tags) != record.tags else None,
                note=new_note if new_note != record.note else None,
            )
            if change.params():
                _send(run_id, change, "tags and note")
            else:
                st.info("Nothing changed.")
    archive_button(row, "run")
