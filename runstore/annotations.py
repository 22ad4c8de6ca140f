"""Tags, a note and the archived flag of a run (issue 17, "Organising runs"): the rules for
what a user may write, and the ``annotate`` request that carries a change to the runner.

run.json has one writer, the runner, so the dashboard and the CLI never edit these fields
themselves: they write an ``annotate`` request (``write_annotate_request``) whose params are
checked here first, and the runner checks them here again (``parse_change``: the request file
could have been written by anyone) before applying them (``apply_change``). Every change sets
a value or adds or removes tags, so a request applied twice leaves the run as applying it once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstore.models import RunRecord
from runstore.store import RunStore

ACTION = "annotate"
MAX_TAGS = 20
MAX_TAG_LENGTH = 32
MAX_NOTE_LENGTH = 2000
#: The params an ``annotate`` request may carry; each one absent leaves its field as it is.
PARAMS = ("tags", "add_tags", "remove_tags", "note", "archived")
#: Characters that would let a note mislead on a page or in a terminal: controls other than a
#: newline or a tab, bidi overrides and isolates (they reorder what is shown), lone surrogates.
_NOTE_REFUSED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class AnnotationError(ValueError):
    """A tag, note or request param that cannot be stored, in words that say the fix."""


@dataclass(frozen=True)
class Change:
    """A checked ``annotate`` request: None (or empty) for what it leaves as it is."""

    tags: tuple[str, ...] | None = None  # the whole new list
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    note: str | None = None
    archived: bool | None = None

    def params(self) -> dict[str, Any]:
        """The request file's params (only what the change sets)."""
        out: dict[str, Any] = {}
        if self.tags is not None:
            out["tags"] = list(self.tags)
        if self.add_tags:
            out["add_tags"] = list(self.add_tags)
        if self.remove_tags:
            out["remove_tags"] = list(self.remove_tags)
        if self.note is not None:
            out["note"] = self.note
        if self.archived is not None:
            out["archived"] = self.archived
        return out


def normalise_tag(tag: str) -> str:
    """One tag as stored: trimmed, lower case (``Baseline`` and ``baseline`` filter as one),
    inner spaces as ``-``. AnnotationError for one that is too long or has a character a tag
    cannot hold (a comma separates tags; controls and invisible characters mislead)."""
    if not isinstance(tag, str):
        raise AnnotationError(f"a tag must be text, not {type(tag).__name__}")
    text = "-".join(tag.split()).lower()
    shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_TAG_LENGTH:
        raise AnnotationError(
            f"tag {shown[:MAX_TAG_LENGTH] + '…'!r} is {len(text)} characters long; "
            f"use at most {MAX_TAG_LENGTH} (put longer text in the note)"
        )
    if "," in text:
        raise AnnotationError(f"tag {shown!r} contains a comma, which separates tags; split it")
    if not text.isprintable():
        raise AnnotationError(
            f"tag {shown!r} contains a control or invisible character; "
            "use letters, digits and punctuation"
        )
    return text


def normalise_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as stored: each normalised (``normalise_tag``), empty ones dropped, each once, in
    the order given; AnnotationError for more than MAX_TAGS."""
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise AnnotationError("tags must be a list of text")
    found: list[str] = []
    for tag in tags:
        text = normalise_tag(tag)
        if text and text not in found:
            found.append(text)
    if len(found) > MAX_TAGS:
        raise AnnotationError(
            f"{len(found)} tags given; a run holds at most {MAX_TAGS}: drop some, or use the note"
        )
    return tuple(found)


def parse_tags(text: str) -> tuple[str, ...]:
    """Tags typed as one line (the Run page's field, the CLI): separated by commas."""
    return normalise_tags(text.split(","))


def check_note(note: str) -> str:
    """A note as stored: line ends as ``\\n``, trailing space trimmed; AnnotationError for one
    longer than MAX_NOTE_LENGTH or holding a control or direction-changing character."""
    if not isinstance(note, str):
        raise AnnotationError(f"the note must be text, not {type(note).__name__}")
    text = note.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if len(text) > MAX_NOTE_LENGTH:
        raise AnnotationError(
            f"the note is {len(text):,} characters long; shorten it to at most "
            f"{MAX_NOTE_LENGTH:,} (keep long write-ups in a file beside the runs folder)"
        )
    if bad := _NOTE_REFUSED.search(text):
        code = ord(bad.group())
        raise AnnotationError(
            f"the note contains the control or direction-changing character U+{code:04X} "
            f"at position {bad.start() + 1}; remove it"
        )
    return text


def parse_change(params: dict[str, Any]) -> Change:
    """The change an ``annotate`` request's params ask for, checked; AnnotationError for an
    unknown param, a bad value, or params that ask for nothing."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise AnnotationError(
            f"unknown annotate param(s) {', '.join(map(repr, unknown))}; known: {', '.join(PARAMS)}"
        )
    archived = params.get("archived")
    if archived is not None and not isinstance(archived, bool):
        raise AnnotationError("archived must be true or false")
    change = Change(
        tags=normalise_tags(params["tags"]) if params.get("tags") is not None else None,
        add_tags=normalise_tags(params.get("add_tags") or ()),
        remove_tags=normalise_tags(params.get("remove_tags") or ()),
        note=check_note(params["note"]) if params.get("note") is not None else None,
        archived=archived,
    )
    if not change.params():
        raise AnnotationError(
            "the request changes nothing: give tags, tags to add or remove, a note, or archived"
        )
    return change


def write_annotate_request(
    store: RunStore, run_id: str, change: Change, source: str = "cli"
) -> Path:
    """Ask the runner to apply ``change`` to the run (checked here first, so a bad value is an
    error for whoever typed it, and no file is written)."""
    checked = parse_change(change.params())
    return store.write_request(run_id, ACTION, source=source, params=checked.params())


def apply_change(record: RunRecord, change: Change, source: str) -> list[tuple[str, str]]:
    """Apply a checked change to run.json's copy; the events it recorded (kind, detail),
    none when the run already was as asked (a request applied again). AnnotationError when
    the tags it adds would pass MAX_TAGS; nothing is changed then."""
    tags = list(record.tags if change.tags is None else change.tags)
    tags += [t for t in change.add_tags if t not in tags]
    tags = [t for t in tags if t not in change.remove_tags]
    if len(tags) > MAX_TAGS:
        raise AnnotationError(
            f"the run would hold {len(tags)} tags; at most {MAX_TAGS}: remove some first"
        )
    done = []
    if tags != record.tags:
        record.tags = tags
        done.append(("tagged", f"{', '.join(tags) or 'none'} (by {source})"))
    if change.note is not None and change.note != record.note:
        record.note = change.note
        what = f"{len(change.note):,} characters" if change.note else "cleared"
        done.append(("note", f"{what} (by {source})"))
    if change.archived is not None and change.archived != record.archived:
        record.archived = change.archived
        kind = "archived" if change.archived else "unarchived"
        done.append((kind, f"by {source}"))
    for kind, detail in done:
        record.record(kind, detail)
    return done


__all__ = [
    "ACTION",
    "MAX_NOTE_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "AnnotationError",
    "Change",
    "apply_change",
    "check_note",
    "normalise_tags",
    "parse_change",
    "parse_tags",
    "write_annotate_request",
]
