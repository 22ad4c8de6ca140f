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


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder (docs/architecture.md, "The run store")."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def source(self) -> Path:
        """The queue file as the user wrote it, kept for reference."""
        return self.dir / "source.yaml"

    @property
    def run_json(self) -> Path:
        return self.dir / "run.json"

    @property
    def status_json(self) -> Path:
        return self.dir / "status.json"

    @property
    def requests(self) -> Path:
        return self.dir / "requests"

    @property
    def tb(self) -> Path:
        return self.dir / "tb"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def videos(self) -> Path:
        return self.dir / "videos"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def trainer_log(self) -> Path:
        """stdout and stderr of the training process (opened by the runner)."""
        return self.logs / "trainer.log"

    @property
    def train_log(self) -> Path:
        """The trainer's own log (rotating)."""
        return self.logs / "train.log"

    @property
    def media_log(self) -> Path:
        """Output of the clip and time-lapse processes the runner starts for this run."""
        return self.logs / "media.log"

    @property
    def traceback(self) -> Path:
        return self.logs / "traceback.txt"

    @property
    def disk_reserve(self) -> Path:
        """Ballast the trainer deletes when the disk fills, so its last status still fits."""
        return self.logs / ".disk-reserve"

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
