"""Checkpoint sets: complete or absent, never half.

SB3 streams a model zip straight into its final path and writes the replay buffer and the
VecNormalize statistics as separate files, so a crash can leave a torn zip or a model without
its buffer. Each checkpoint is therefore a folder written under a temp name, closed by a
manifest, and renamed into place; resume only considers folders whose manifest matches the
files on disk.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from runstore.atomic import atomic_write_json

_CKPT = re.compile(r"^step-(\d{12})$")
MANIFEST = "manifest.json"
MODEL = "model.zip"
REPLAY_BUFFER = "replay_buffer.pkl"
VECNORMALIZE = "vecnormalize.pkl"


@dataclass(frozen=True)
class Checkpoint:
    dir: Path
    step: int

    @property
    def model(self) -> Path:
        return self.dir / MODEL

    @property
    def replay_buffer(self) -> Path | None:
        path = self.dir / REPLAY_BUFFER
        return path if path.exists() else None

    @property
    def vecnormalize(self) -> Path | None:
        path = self.dir / VECNORMALIZE
        return path if path.exists() else None


def checkpoint_name(step: int) -> str:
    return f"step-{step:012d}"


def staging_dir(checkpoints_dir: Path, step: int) -> Path:
    """Where the trainer writes a checkpoint's files before ``commit`` publishes them."""
    path = checkpoints_dir / f".staging-{checkpoint_name(step)}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def commit(staging: Path, step: int, extra: dict | None = None) -> Checkpoint:
    """Seal the staged files with a manifest and rename the folder into place (atomic)."""
    files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
    if MODEL not in files:
        raise FileNotFoundError(f"{staging / MODEL} was not written")
    atomic_write_json(staging / MANIFEST, {"step": step, "files": files, **(extra or {})})
    final = staging.parent / checkpoint_name(step)
    if final.exists():  # the same step saved twice (e.g. stop right after a periodic save)
        shutil.rmtree(final)
    staging.rename(final)
    return Checkpoint(final, step)


def is_complete(ckpt_dir: Path) -> bool:
    """Manifest present, every listed file there with its size, and the model zip readable."""
    try:
        manifest = json.loads((ckpt_dir / MANIFEST).read_text())
        for name, size in manifest["files"].items():
            if (ckpt_dir / name).stat().st_size != size:
                return False
        with zipfile.ZipFile(ckpt_dir / MODEL) as zf:
            return zf.testzip() is None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return False


def list_checkpoints(checkpoints_dir: Path) -> list[Checkpoint]:
    """Every published checkpoint, newest first (complete or not)."""
    found = []
    if checkpoints_dir.is_dir():
        for path in checkpoints_dir.iterdir():
            match = _CKPT.match(path.name)
            if match and path.is_dir() and not path.is_symlink():
                found.append(Checkpoint(path, int(match[1])))
    return sorted(found, key=lambda c: c.step, reverse=True)


def latest_complete(checkpoints_dir: Path) -> tuple[Checkpoint | None, list[Checkpoint]]:
    """The newest loadable checkpoint, and the newer ones skipped because they are broken."""
    skipped = []
    for ckpt in list_checkpoints(checkpoints_dir):
        if is_complete(ckpt.dir):
            return ckpt, skipped
        skipped.append(ckpt)
    return None, skipped


def prune(checkpoints_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints, and leftover staging folders."""
    removed = []
    complete = [c for c in list_checkpoints(checkpoints_dir) if is_complete(c.dir)]
    for ckpt in complete[keep:]:
        shutil.rmtree(ckpt.dir, ignore_errors=True)
        removed.append(ckpt.dir)
    for stale in checkpoints_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed
