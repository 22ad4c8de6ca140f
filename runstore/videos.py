"""Clips of a run: names, the sidecar that says what a clip shows, and listing.

A clip is ``videos/step-000500000.mp4`` (an evaluation during training) or
``videos/step-000500000-record.mp4`` (recorded on demand from a checkpoint), each with a
``.json`` sidecar written after the mp4 is in place (so a listed clip is always complete).
The time-lapse of a run is ``videos/timelapse.mp4``. Writers: the training process and the
short processes the runner starts for it (``training.record``, ``training.timelapse``).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from runstore import safeio
from runstore.atomic import atomic_write_json
from runstore.models import Int64, MaybeFloat, Timestamp, finite

_CLIP = re.compile(r"^step-(\d{9,12})(?:-(record))?\.mp4$")
TIMELAPSE = "timelapse.mp4"
TIMELAPSE_META = "timelapse.json"
KINDS = ("eval", "record")


class ClipMeta(BaseModel):
    """What a clip shows: the sidecar ``step-....json``."""

    # Finite floats and 64-bit ints only (``runstore.models.Int64``): a sidecar is read by
    # every page that lists clips, and a number out of range there is a damaged sidecar.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    step: Int64
    kind: str = "eval"  # eval | record
    run_name: str = ""
    env: str = ""
    algo: str = ""
    checkpoint: str = ""  # the checkpoint a recorded clip came from
    episode_return: MaybeFloat = None  # the recorded episode's real game score
    episode_length: Int64 | None = None
    eval_mean_return: MaybeFloat = None  # mean over the evaluation's episodes
    eval_episodes: Int64 = 0
    frames: Int64 = 0
    fps: float = 0.0
    width: Int64 = 0
    height: Int64 = 0
    deterministic: bool = True
    created_at: Timestamp = 0.0


@dataclass(frozen=True)
class Clip:
    path: Path
    step: int
    kind: str
    meta: ClipMeta | None
    #: Why the clip or its sidecar was refused (a link, not a plain file) or is damaged (not
    #: JSON, nested too deep, a number out of range), in words; "" if not.
    problem: str = ""

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def score(self) -> float | None:
        """The number a gallery shows: the evaluation mean, else the episode's return."""
        if self.meta is None:
            return None
        if self.meta.eval_mean_return is not None:
            return self.meta.eval_mean_return
        return self.meta.episode_return


def clip_name(step: int, kind: str = "eval") -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; one of {', '.join(KINDS)}")
    return f"step-{step:09d}.mp4" if kind == "eval" else f"step-{step:09d}-{kind}.mp4"


def clip_path(videos_dir: Path, step: int, kind: str = "eval") -> Path:
    return videos_dir / clip_name(step, kind)


def temp_path(final: Path) -> Path:
    """Where an encoder writes before ``publish`` (hidden; still ends in .mp4 for ffmpeg)."""
    return final.with_name(f".tmp-{os.getpid()}-{final.name}")


def parse_clip_name(name: str) -> tuple[int, str] | None:
    match = _CLIP.match(name)
    if match is None:
        return None
    return int(match[1]), match[2] or "eval"


def publish(tmp: Path, final: Path, meta: ClipMeta) -> Clip:
    """Write the sidecar, then move the encoded file into place (the clip is listed then)."""
    if not meta.created_at:
        meta.created_at = time.time()
    # Metadata first: listings key on the mp4, so a clip never appears without its metadata.
    atomic_write_json(final.with_suffix(".json"), finite(meta.model_dump(mode="json")))
    os.replace(tmp, final)
    return Clip(final, meta.step, meta.kind, meta)


def read_meta(path: Path) -> ClipMeta | None:
    """The sidecar, or None when it is missing, damaged or refused (a link, a FIFO...)."""
    return _read_meta(path)[0]


def _read_meta(path: Path) -> tuple[ClipMeta | None, str]:
    """The sidecar and, when it cannot be used, why (a page shows it on that clip): refused
    (a link, a FIFO), or damaged (not JSON, too deep, a number out of range, not a sidecar).
    A missing sidecar is no problem to show: the clip plays without its details."""
    try:
        data = safeio.parse_json(safeio.read_bytes(path, limit=safeio.JSON_LIMIT))
    except safeio.UnsafeFileError as exc:
        return None, str(exc)
    except OSError:
        return None, ""
    except ValueError as exc:  # the bounded reader's refusals and JSON errors alike
        return None, _damaged(path, str(exc))
    if not isinstance(data, dict):
        return None, _damaged(path, "not a JSON object")
    try:
        return ClipMeta.model_validate(data), ""
    except ValueError:
        return None, _damaged(path, "not a clip's sidecar")


def _damaged(path: Path, why: str) -> str:
    return f"videos/{path.name} is damaged ({why[:120]}): the clip's score and details are unknown"


def list_clips(videos_dir: Path, *, include_refused: bool = False) -> list[Clip]:
    """Every published clip of a run, in step order (eval before record at the same step).

    Only plain files are clips. ``include_refused`` (the dashboard) also lists entries with a
    clip's name that are links or not plain files, with ``problem`` saying so, so a page can
    say why a clip is not shown; whoever reads clips (the time-lapse) leaves it off.
    """
    clips = []
    if videos_dir.is_dir():
        for entry in os.scandir(videos_dir):
            parsed = parse_clip_name(entry.name)
            if parsed is None:
                continue
            path = Path(entry.path)
            problem = ""
            if not entry.is_file(follow_symlinks=False):
                if not include_refused:
                    continue
                what = "is a symbolic link" if entry.is_symlink() else "is not a regular file"
                problem = f"refused to read videos/{entry.name}: it {what}"
            meta, meta_problem = _read_meta(path.with_suffix(".json"))
            problem = "; ".join(p for p in (problem, meta_problem) if p)
            clips.append(Clip(path, parsed[0], parsed[1], meta, problem))
    return sorted(clips, key=lambda c: (c.step, c.kind))


def timelapse_path(videos_dir: Path) -> Path:
    return videos_dir / TIMELAPSE


# Journey videos (issue 18): ``videos/journey-<label>.mp4`` with four companions of the same
# stem: ``.json`` (what it holds: below), ``.chapters.txt``, ``.description.txt`` and a
# ``.png`` thumbnail. The media job writes them all, the mp4 last, so a listed journey is
# always complete; while it works it keeps ``.journey-<label>.progress.json`` up to date.
_JOURNEY = re.compile(r"^journey-(\d+[smh](?:\d+m)?)\.mp4$")
#: Shortest and longest journey one may ask for, in seconds (a teaser to a long-form video).
MIN_JOURNEY_SECONDS = 10.0
MAX_JOURNEY_SECONDS = 6 * 3600.0
#: Frame sizes a journey is made at, by their height.
JOURNEY_SIZES = {1080: (1920, 1080), 720: (1280, 720)}
JOURNEY_FPS = (30, 60)


class JourneyChapter(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    at: float  # seconds from the start of the video
    title: str
    step: Int64 | None = None  # the training step its gameplay comes from


class JourneyMeta(BaseModel):
    """The sidecar ``journey-<label>.json``: what a journey video holds."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    label: str
    seconds: float
    frames: Int64
    fps: float
    width: Int64
    height: Int64
    chapters: list[JourneyChapter]
    run_name: str = ""
    env: str = ""
    algo: str = ""
    final_score: MaybeFloat = None
    best_score: MaybeFloat = None
    clips_used: Int64 = 0
    clips_recorded: Int64 = 0  # recorded from checkpoints for this journey
    created_at: Timestamp = 0.0


@dataclass(frozen=True)
class Journey:
    path: Path  # the mp4
    label: str
    meta: JourneyMeta | None
    problem: str = ""

    def companion(self, suffix: str) -> Path:
        return journey_file(self.path.parent, self.label, suffix)


_NUMBER = r"(\d+(?:\.\d+)?)"
_LENGTH = re.compile(rf"^\s*(?:{_NUMBER}\s*h)?\s*(?:{_NUMBER}\s*m)?\s*(?:{_NUMBER}\s*s?)?\s*$")


def parse_journey_length(text: str) -> float:
    """``60s``, ``90``, ``10m``, ``1h30m``, ``2h`` as seconds, within the offered range; a
    ValueError says what to write instead."""
    match = _LENGTH.match(text.lower())
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a length: write 60s, 10m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not MIN_JOURNEY_SECONDS <= total <= MAX_JOURNEY_SECONDS:
        raise ValueError(
            f"a journey of {text.strip()} is out of range: ask for {MIN_JOURNEY_SECONDS:g} s to "
            f"{MAX_JOURNEY_SECONDS / 3600:g} h (e.g. 60s, 10m, 1h)"
        )
    return total


def journey_label(seconds: float) -> str:
    """The length as a file name says it: 20s, 90s, 10m, 90m, 2h, 2h30m (whole seconds)."""
    whole = round(seconds)
    if whole < 120 or whole % 60:
        return f"{whole}s"
    hours, minutes = divmod(whole // 60, 60)
    if hours < 2:
        return f"{whole // 60}m"
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def journey_file(videos_dir: Path, label: str, suffix: str = ".mp4") -> Path:
    """``journey-<label><suffix>``; suffix one of .mp4 .json .chapters.txt .description.txt
    .png, or ``.progress.json`` (hidden: a job at work)."""
    if suffix == ".progress.json":
        return videos_dir / f".journey-{label}.progress.json"
    return videos_dir / f"journey-{label}{suffix}"


def parse_journey_name(name: str) -> str | None:
    """The label of a journey's mp4 name (``journey-60s.mp4`` -> ``60s``), else None."""
    match = _JOURNEY.match(name)
    return match[1] if match else None


def list_journeys(videos_dir: Path) -> list[Journey]:
    """The run's finished journey videos, longest first; only plain files count."""
    out = []
    if videos_dir.is_dir():
        for entry in os.scandir(videos_dir):
            label = parse_journey_name(entry.name)
            if label is None or not entry.is_file(follow_symlinks=False):
                continue
            sidecar = journey_file(videos_dir, label, ".json")
            meta, problem = None, ""
            try:
                data = safeio.parse_json(safeio.read_bytes(sidecar, limit=safeio.JSON_LIMIT))
                meta = JourneyMeta.model_validate(data)
            except safeio.UnsafeFileError as exc:
                problem = str(exc)
            except OSError:  # no sidecar: the video plays without its chapters
                pass
            except ValueError as exc:  # refused (a link, a FIFO), not JSON, not a sidecar
                problem = f"videos/{sidecar.name} cannot be used ({str(exc)[:120]})"
            out.append(Journey(Path(entry.path), label, meta, problem))
    return sorted(out, key=lambda j: -(j.meta.seconds if j.meta else 0.0))
