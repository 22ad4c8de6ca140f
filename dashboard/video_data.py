"""The Videos page's data: every run's journey videos, the clip gallery's sort orders, each
run's video sizes, the titles users gave videos, and the ``video`` requests that delete one or
set its title (the runner does both: ``runner/video_files.py``).

Loaders read through ``runstore`` and are keyed by the stamps of what they read (a run's
``videos/`` folder, its config.yaml, its run.json), like ``dashboard.clip_data``: a new or
deleted video shows on the next rerun, and an unchanged folder costs a ``stat`` per file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import actions, auth, data
from dashboard.clip_data import ClipRow, game_name
from dashboard.journey_data import MAX_TEXT_BYTES
from runstore import safeio
from runstore.disk import tree_bytes
from runstore.store import RunStore
from runstore.video_files import (
    ACTION,
    VideoChange,
    download_name,
    parse_video_change,
    titles,
)
from runstore.videos import journey_file, list_clips, list_journeys

#: The clip gallery's orders: label -> (key, reversed). Newest first is the default.
SORTS: dict[str, tuple[Callable[[ClipRow], object], bool]] = {
    "newest first": (lambda r: (r.created_at, r.step), True),
    "oldest first": (lambda r: (r.created_at, r.step), False),
    "highest score": (lambda r: (r.score is not None, r.score or 0.0, r.created_at), True),
    "run name": (lambda r: (r.run_name.lower(), r.step, r.kind), False),
    "largest file": (lambda r: (r.size, r.created_at), True),
}


@dataclass(frozen=True)
class JourneyRow:
    """One journey video as the Videos page shows it (plain values, cheap to cache)."""

    run_id: str
    run_name: str
    env: str
    label: str
    path: Path
    seconds: float | None  # None: its sidecar is missing or damaged
    width: int
    height: int
    fps: float
    size: int  # bytes of the mp4
    chapters: str  # the .chapters.txt text; "" when missing or refused
    created_at: float
    problem: str = ""  # the sidecar was refused or damaged, in words

    @property
    def game(self) -> str:
        return game_name(self.env)

    def companion(self, suffix: str) -> Path:
        """``journey-<label><suffix>`` beside the mp4 (``runstore.videos.journey_file``)."""
        return journey_file(self.path.parent, self.label, suffix)


@dataclass(frozen=True)
class VideoSizeRow:
    """One run's videos: how many clips and journeys, and the bytes of its ``videos/``."""

    run_id: str
    run_name: str
    clips: int
    journeys: int
    size: int


def sort_clips(rows: list[ClipRow], order: str) -> list[ClipRow]:
    """``rows`` in one of ``SORTS`` (an unknown order: newest first); a clip with no score
    goes after every scored one under "highest score"."""
    key, reverse = SORTS.get(order, SORTS["newest first"])
    return sorted(rows, key=key, reverse=reverse)  # type: ignore[arg-type]


def _lstat_size(path: Path) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except OSError:
        return 0


def _text(path: Path) -> str:
    """A journey's chapters through ``runstore.safeio`` (never a link), "" if unreadable."""
    try:
        return safeio.read_bytes(path, limit=MAX_TEXT_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


@st.cache_data(show_spinner=False, max_entries=2000)
def _run_journeys(root: str, run_id: str, videos_key: object, cfg_key: object) -> list[JourneyRow]:
    paths = RunStore(root).paths(run_id)
    config = data.read_config(run_id)
    rows = []
    for journey in list_journeys(paths.videos):
        meta = journey.meta
        rows.append(
            JourneyRow(
                run_id=run_id,
                run_name=(meta.run_name if meta and meta.run_name else "")
                or (config.display_name if config else run_id),
                env=(meta.env if meta and meta.env else "") or (config.env if config else "?"),
                label=journey.label,
                path=journey.path,
                seconds=meta.seconds if meta else None,
                width=meta.width if meta else 0,
                height=meta.height if meta else 0,
                fps=meta.fps if meta else 0.0,
                size=_lstat_size(journey.path),
                chapters=_text(journey.companion(".chapters.txt")),
                created_at=(meta.created_at if meta and meta.created_at else 0.0)
                or _mtime(journey.path),
                problem=journey.problem,
            )
        )
    return rows


def _mtime(path: Path) -> float:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def run_journeys(run_id: str) -> list[JourneyRow]:
    """One run's journey videos, longest first."""
    rs = data.store()
    try:
        paths = rs.paths(run_id)
    except ValueError:
        return []
    try:
        return _run_journeys(
            str(rs.root), run_id, data.tree_stamp(paths.videos), data.stamp(paths.config)
        )
    except OSError:
        return []


def journeys() -> list[JourneyRow]:
    """Every run's journey videos, newest first."""
    rows = [row for run_id in data.store().run_ids() for row in run_journeys(run_id)]
    return sorted(rows, key=lambda r: r.created_at, reverse=True)


@st.cache_data(show_spinner=False, max_entries=2000)
def _video_size(root: str, run_id: str, run_name: str, videos_key: object) -> VideoSizeRow:
    videos = RunStore(root).paths(run_id).videos
    return VideoSizeRow(
        run_id=run_id,
        run_name=run_name,
        clips=len(list_clips(videos)),
        journeys=len(list_journeys(videos)),
        size=tree_bytes(videos),
    )


def video_sizes() -> list[VideoSizeRow]:
    """Each run that has videos: its clips, journeys and the bytes of its ``videos/``
    folder (``runstore.disk``: links counted as themselves), largest first."""
    rs = data.store()
    rows = []
    for run_id in rs.run_ids():
        try:
            videos = rs.paths(run_id).videos
            key = data.tree_stamp(videos)
        except (ValueError, OSError):
            continue
        if not key:
            continue
        config = data.read_config(run_id)
        name = config.display_name if config else run_id
        rows.append(_video_size(str(rs.root), run_id, name, key))
    return sorted(rows, key=lambda r: (-r.size, r.run_name))


def video_titles(run_id: str) -> dict[str, str]:
    """The titles users gave the run's videos (file name -> title), from run.json; only
    those that hold to the rules (``runstore.video_files.titles``)."""
    return titles(data.read_run(run_id))


def save_as(title: str, name: str, run_id: str) -> str:
    """A download's file name: the title slugified with the file's extension, else
    ``<run id>-<name>`` (``runstore.video_files.download_name``)."""
    return download_name(name, title, prefix=run_id)


# -- requests (the runner deletes the file or stores the title) -----------------------------


def request_rename(run_id: str, name: str, title: str) -> Path:
    """Ask the runner to set a video's title ("" removes it); VideoRequestError for a bad
    title or name (nothing written)."""
    auth.require_control()  # before the title is checked: a refused browser learns nothing
    change = parse_video_change(VideoChange("rename", name, title).params())
    return actions.request(run_id, ACTION, change.params())


def request_delete(run_id: str, name: str) -> Path:
    """Ask the runner to delete a video (a journey with its chapters, description and
    thumbnail; a clip's small sidecar stays)."""
    auth.require_control()
    change = parse_video_change(VideoChange("delete", name).params())
    return actions.request(run_id, ACTION, change.params())
