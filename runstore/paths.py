"""Where everything lives in the runs folder, and which names are safe.

Nobody else builds store paths. Every path derived from outside input (a run id from a URL, a
request file name) is checked against a strict pattern and must resolve inside the runs folder,
so ``..``, separators, NUL bytes and symlinks planted in the folder lead nowhere.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Timestamp, slug of the name, random suffix (4 hex digits in older folders, 8 now).
RUN_ID_REGEX = r"[0-9]{8}-[0-9]{6}-[a-z0-9][a-z0-9-]{0,39}-[0-9a-f]{4,8}"
RUN_ID_PATTERN = re.compile(f"^{RUN_ID_REGEX}$")
DEFAULT_RUNS_DIR = "runs"
RUNS_DIR_ENV = "RETRO_ML_RUNS_DIR"


class UnsafePathError(ValueError):
    """A name that would leave the runs folder or is not one of ours."""


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (slug or "run")[:40].strip("-") or "run"


def file_stamp(path: Path | str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, None if it cannot be stat'ed: the key under which
    whatever was read from it is cached (a rewrite changes one or the other)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def new_run_id(name: str, now: float | None = None) -> str:
    """Sortable, filesystem-safe and unique without coordination (random suffix)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{slugify(name)}-{secrets.token_hex(4)}"


def is_run_id(value: str) -> bool:
    return isinstance(value, str) and RUN_ID_PATTERN.match(value) is not None


def member(parent: str, name: str, doc: str | None = None) -> property:
    """A read-only path property: ``name`` inside the path attribute ``parent`` of the same
    object (how ``RunPaths`` and ``RunStore`` spell out their layout)."""

    def path(self: Any) -> Path:
        return getattr(self, parent) / name

    return property(path, doc=doc)


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder (docs/architecture.md, "The run store")."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    # The layout, as a table: each entry is a path inside ``dir`` or inside another entry.
    config = member("dir", "config.yaml")
    source = member(
        "dir", "source.yaml", "The queue file as the user wrote it, kept for reference."
    )
    run_json = member("dir", "run.json")
    status_json = member("dir", "status.json")
    requests = member("dir", "requests")
    tb = member("dir", "tb")
    checkpoints = member("dir", "checkpoints")
    videos = member("dir", "videos")
    logs = member("dir", "logs")
    trainer_log = member(
        "logs", "trainer.log", "stdout and stderr of the training process (opened by the runner)."
    )
    train_log = member("logs", "train.log", "The trainer's own log (rotating).")
    media_log = member(
        "logs",
        "media.log",
        "Output of the clip and time-lapse processes the runner starts for this run.",
    )
    traceback = member("logs", "traceback.txt")
    disk_reserve = member(
        "logs",
        ".disk-reserve",
        "Ballast the trainer deletes when the disk fills, so its last status still fits.",
    )

    def make_dirs(self) -> None:
        for sub in (self.requests, self.tb, self.checkpoints, self.videos, self.logs):
            sub.mkdir(parents=True, exist_ok=True)


def contained_run_dir(root: Path, run_id: str) -> Path:
    """The folder of ``run_id`` under ``root``, refusing anything that could escape it."""
    if not is_run_id(run_id):
        raise UnsafePathError(
            f"{run_id!r} is not a run id (ids look like 20261124-031205-pong-ppo-3f9a)"
        )
    root_resolved = root.resolve()
    path = root / run_id
    if path.is_symlink():
        raise UnsafePathError(f"run folder {run_id} is a symlink; refusing to follow it")
    if not path.resolve().is_relative_to(root_resolved):
        raise UnsafePathError(f"run folder {run_id} resolves outside the runs folder")
    return path
