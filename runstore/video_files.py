"""Deleting a run's videos and giving them titles (issue 18): which files a ``video`` request
may name, what a title may hold, and carrying a deletion out.

run.json has one writer (the runner) and the runner is the one process that deletes in a run
folder, so the Videos page and the CLI never touch a video themselves: they write a ``video``
request (``write_video_request``), checked here first, and the runner checks it here again
(``parse_video_change``: a request file could have been written by anyone) before it acts.

- A request names a video by its bare file name, one ``runstore.videos`` lists: a clip
  (``step-N.mp4``, ``step-N-record.mp4``), the time-lapse (``timelapse.mp4``) or a journey
  (``journey-<label>.mp4``). Never a path, never any other file.
- Rename is a display title kept in run.json (``RunRecord.video_titles``), never a file
  rename: file names are the store's contract, and every listing parses them.
- Delete removes the mp4 only when it is a plain file (``lstat``: a link is never followed
  nor removed); a journey's companions (chapters, description, thumbnail, sidecar) go with
  it; a clip's sidecar stays, as a clean-up leaves it (what the clip scored). Its title goes.

A change sets a value or removes a file, so a request applied twice leaves the run as once.
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstore.models import RunRecord
from runstore.paths import slugify
from runstore.store import RunStore
from runstore.videos import TIMELAPSE, journey_file, parse_clip_name, parse_journey_name

ACTION = "video"
OPS = ("delete", "rename")
#: The params a ``video`` request may carry.
PARAMS = ("op", "name", "title")
MAX_TITLE_LENGTH = 100
#: What a journey's mp4 takes with it when deleted (``runstore.videos.journey_file``).
JOURNEY_COMPANIONS = (".json", ".chapters.txt", ".description.txt", ".png")


class VideoRequestError(ValueError):
    """A video name, title or request param that cannot be used, in words that say the fix."""


@dataclass(frozen=True)
class VideoChange:
    """A checked ``video`` request: delete ``name``, or set its title ("" removes it)."""

    op: str
    name: str
    title: str = ""

    def params(self) -> dict[str, Any]:
        """The request file's params."""
        out: dict[str, Any] = {"op": self.op, "name": self.name}
        if self.op == "rename":
            out["title"] = self.title
        return out


def video_kind(name: str) -> str | None:
    """``clip``, ``timelapse`` or ``journey`` for a video's file name, else None."""
    if parse_clip_name(name) is not None:
        return "clip"
    if name == TIMELAPSE:
        return "timelapse"
    if parse_journey_name(name) is not None:
        return "journey"
    return None


def check_video_name(name: object) -> str:
    """``name`` when it is the bare file name of a video the store lists; VideoRequestError
    for a path (``../x.mp4``, ``videos/step-1.mp4``), any other file (``run.json``) or
    anything that is not text."""
    if not isinstance(name, str):
        raise VideoRequestError(f"the video's name must be text, not {type(name).__name__}")
    shown = repr(name[:80].encode("utf-8", "backslashreplace").decode("utf-8"))
    if "/" in name or "\\" in name or "\x00" in name or name in ("", ".", ".."):
        raise VideoRequestError(
            f"{shown} is not a file name: give the video's bare name as listed "
            "(e.g. step-000500000.mp4, timelapse.mp4, journey-60s.mp4), never a path"
        )
    if video_kind(name) is None:
        raise VideoRequestError(
            f"{shown} is not a video of a run: only a clip (step-N.mp4, step-N-record.mp4), "
            "the time-lapse (timelapse.mp4) or a journey (journey-<length>.mp4) can be "
            "renamed or deleted"
        )
    return name


def check_title(title: object) -> str:
    """A title as stored: trimmed; "" (no title). VideoRequestError for one longer than
    MAX_TITLE_LENGTH or holding a control, invisible or direction-changing character (a
    title is shown on pages and becomes a download's file name)."""
    if not isinstance(title, str):
        raise VideoRequestError(f"the title must be text, not {type(title).__name__}")
    text = title.strip()
    if len(text) > MAX_TITLE_LENGTH:
        raise VideoRequestError(
            f"the title is {len(text)} characters long; shorten it to at most {MAX_TITLE_LENGTH}"
        )
    for position, ch in enumerate(text, 1):
        if not ch.isprintable():
            raise VideoRequestError(
                f"the title contains the control, invisible or direction-changing character "
                f"U+{ord(ch):04X} at position {position}; remove it (one line of plain text)"
            )
    return text


def parse_video_change(params: dict[str, Any]) -> VideoChange:
    """The change a ``video`` request's params ask for, checked; VideoRequestError for an
    unknown param or op, a bad name or a bad title."""
    if not isinstance(params, dict):
        raise VideoRequestError("a video request's params must be an object")
    unknown = sorted(str(k) for k in set(params) - set(PARAMS))
    if unknown:
        raise VideoRequestError(
            f"unknown video param(s) {', '.join(map(repr, unknown))}; known: {', '.join(PARAMS)}"
        )
    op = params.get("op")
    if op not in OPS:
        raise VideoRequestError(f"op {op!r} is not one of {', '.join(OPS)}")
    name = check_video_name(params.get("name"))
    if op == "delete":
        if "title" in params:
            raise VideoRequestError("a delete takes no title; give op rename to set one")
        return VideoChange(op, name)
    if "title" not in params:
        raise VideoRequestError('a rename needs a title ("" removes the title)')
    return VideoChange(op, name, check_title(params["title"]))


def write_video_request(
    store: RunStore, run_id: str, change: VideoChange, source: str = "cli"
) -> Path:
    """Ask the runner to delete or rename a video (checked here first, so a bad value is an
    error for whoever typed it, and no file is written)."""
    checked = parse_video_change(change.params())
    return store.write_request(run_id, ACTION, source=source, params=checked.params())


def titles(record: RunRecord | None) -> dict[str, str]:
    """The run's video titles that hold to the rules: a run.json copied from elsewhere may
    say anything, and what does not pass is not shown."""
    if record is None:
        return {}
    out = {}
    for name, title in record.video_titles.items():
        with contextlib.suppress(VideoRequestError):
            if video_kind(name) is not None and (text := check_title(title)):
                out[name] = text
    return out


def set_title(record: RunRecord, name: str, title: str) -> bool:
    """Set (or, with "", remove) a video's title in run.json's copy; whether it changed."""
    if record.video_titles.get(name, "") == title:
        return False
    if title:
        record.video_titles[name] = title
    else:
        record.video_titles.pop(name, None)
    return True


def download_name(name: str, title: str = "", prefix: str = "") -> str:
    """The file name a download is saved as: the title slugified with the video's extension
    (``My best run!`` -> ``my-best-run.mp4``), else ``prefix-name``; a companion keeps its
    own suffix (``journey-60s.chapters.txt`` -> ``my-best-run.chapters.txt``)."""
    if title:
        stem = name.split(".", 1)
        return f"{slugify(title)}.{stem[1]}" if len(stem) == 2 else slugify(title)
    return f"{prefix}-{name}" if prefix else name


@dataclass(frozen=True)
class Deleted:
    """What deleting a video did: the files removed, the bytes freed, what was left alone."""

    removed: tuple[str, ...] = ()
    freed: int = 0
    problems: tuple[str, ...] = ()


def _plain_file_size(path: Path) -> int | None:
    """The size of ``path`` when it is a plain file (``lstat``: a link is only a link)."""
    mode_size = os.lstat(path)
    return mode_size.st_size if stat_mod.S_ISREG(mode_size.st_mode) else None


def is_video_file(videos_dir: Path, name: str) -> bool:
    """``videos/name`` is there as a plain file (never through a link)."""
    try:
        return _plain_file_size(videos_dir / name) is not None
    except OSError:
        return False


def companions(videos_dir: Path, name: str) -> list[Path]:
    """The files that go with a video when it is deleted: a journey's four; none for a clip
    (its sidecar stays) or the time-lapse (its small ``timelapse.json`` stays likewise)."""
    label = parse_journey_name(name)
    if label is None:
        return []
    return [journey_file(videos_dir, label, suffix) for suffix in JOURNEY_COMPANIONS]


def delete_video(videos_dir: Path, name: str) -> Deleted:
    """Delete the video ``name`` (checked with ``check_video_name``) and its companions; the
    runner only, for a run no media job writes to. VideoRequestError, with nothing removed,
    when ``videos/`` is not a plain folder, or the mp4 is missing, a link or not a plain
    file. A companion that is not a plain file is left alone and named in ``problems``."""
    name = check_video_name(name)
    try:
        if not stat_mod.S_ISDIR(os.lstat(videos_dir).st_mode):
            raise VideoRequestError("videos/ is not a plain folder (a link?); nothing deleted")
    except FileNotFoundError:
        raise VideoRequestError(f"there is no videos/{name} (deleted already?)") from None
    path = videos_dir / name
    try:
        size = _plain_file_size(path)
    except FileNotFoundError:
        raise VideoRequestError(f"there is no videos/{name} (deleted already?)") from None
    if size is None:
        what = "a symbolic link" if path.is_symlink() else "not a plain file"
        raise VideoRequestError(f"videos/{name} is {what}; left alone")
    os.unlink(path)
    removed, freed, problems = [name], size, []
    for extra in companions(videos_dir, name):
        try:
            extra_size = _plain_file_size(extra)
            if extra_size is None:
                problems.append(f"videos/{extra.name} is not a plain file; left alone")
                continue
            os.unlink(extra)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"videos/{extra.name}: {exc.strerror or exc}")
            continue
        removed.append(extra.name)
        freed += extra_size
    return Deleted(tuple(removed), freed, tuple(problems))


def drop_missing_titles(record: RunRecord, videos_dir: Path) -> bool:
    """Forget the titles of videos no longer there (a clean-up deleted them), and any key
    that names no video; whether any went. A video made again under the same name then
    starts with no title."""
    gone = [
        n
        for n in record.video_titles
        if video_kind(n) is None or not os.path.lexists(videos_dir / n)
    ]
    for name in gone:
        del record.video_titles[name]
    return bool(gone)


__all__ = [
    "ACTION",
    "MAX_TITLE_LENGTH",
    "OPS",
    "Deleted",
    "VideoChange",
    "VideoRequestError",
    "check_title",
    "check_video_name",
    "companions",
    "delete_video",
    "download_name",
    "drop_missing_titles",
    "is_video_file",
    "parse_video_change",
    "set_title",
    "titles",
    "video_kind",
    "write_video_request",
]
