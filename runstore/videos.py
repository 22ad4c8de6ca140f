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
