"""Checkpoint sets: complete or absent, never half.

SB3 streams a model zip straight into its final path and writes the replay buffer and the
VecNormalize statistics as separate files, so a crash can leave a torn zip or a model without
its buffer. Each checkpoint is therefore a folder written under a temp name, closed by a
manifest, and renamed into place; resume only considers folders whose manifest matches the
files on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
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
        _discard(final)
    staging.rename(final)
    return Checkpoint(final, step)


def _discard(ckpt_dir: Path) -> None:
    """Delete a published checkpoint: renamed aside first, then removed. An rmtree in place,
    killed halfway, would leave a half-deleted checkpoint under its published name."""
    trash = ckpt_dir.parent / f".trash-{ckpt_dir.name}-{time.time_ns()}"
    ckpt_dir.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


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
        _discard(ckpt.dir)
        removed.append(ckpt.dir)
    for stale in [*checkpoints_dir.glob(".staging-*"), *checkpoints_dir.glob(".trash-*")]:
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


# -- the best model by evaluation return, and naming a checkpoint to load -----------------

BEST_MODEL = "best.zip"
BEST_META = "best.json"
BEST = "best"


def best_model(checkpoints_dir: Path) -> Path | None:
    """``checkpoints/best.zip``: the model with the highest evaluation return so far."""
    path = checkpoints_dir / BEST_MODEL
    return path if path.is_file() and not path.is_symlink() else None


def read_best(checkpoints_dir: Path) -> dict | None:
    """``{"step": ..., "eval_return": ...}`` of best.zip, or None when there is none."""
    try:
        data = json.loads((checkpoints_dir / BEST_META).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and best_model(checkpoints_dir) else None


def best_staging(checkpoints_dir: Path) -> Path:
    """Where the trainer saves a new best model before ``commit_best`` replaces the old."""
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    return checkpoints_dir / ".staging-best.zip"


def commit_best(staging: Path, step: int, eval_return: float, extra: dict | None = None) -> Path:
    final = staging.parent / BEST_MODEL
    with zipfile.ZipFile(staging) as zf:  # never replace a good best.zip by a torn one
        if zf.testzip() is not None:
            raise zipfile.BadZipFile(f"{staging} is corrupt")
    os.replace(staging, final)
    meta = {"step": step, "eval_return": eval_return, **(extra or {})}
    atomic_write_json(staging.parent / BEST_META, meta)
    return final


class CheckpointNotFoundError(LookupError):
    pass


def resolve_model(checkpoints_dir: Path, name: str | None) -> tuple[Path, int]:
    """The model zip a name points at, and its training step.

    ``name`` is ``best``, a checkpoint folder name (``step-000000500000``) or None for the
    newest complete checkpoint. Only files our trainer wrote in this folder qualify: a
    name is never a path, so nothing outside the run is ever loaded this way.
    """
    if name in (None, ""):
        ckpt, _ = latest_complete(checkpoints_dir)
        if ckpt is None:
            raise CheckpointNotFoundError(f"no complete checkpoint in {checkpoints_dir}")
        return ckpt.model, ckpt.step
    if name == BEST:
        best = read_best(checkpoints_dir)
        path = best_model(checkpoints_dir)
        if path is None or best is None:
            raise CheckpointNotFoundError(
                f"no best model in {checkpoints_dir} yet (it is written by the first "
                "evaluation; set eval_every in the config)"
            )
        return path, int(best.get("step", 0))
    match = _CKPT.match(name)
    if match is None:
        raise CheckpointNotFoundError(
            f"{name!r} is not a checkpoint name: use 'best' or a folder name like "
            f"{checkpoint_name(500_000)}"
        )
    ckpt_dir = checkpoints_dir / name
    if ckpt_dir.is_symlink() or not is_complete(ckpt_dir):
        have = ", ".join(c.dir.name for c in list_checkpoints(checkpoints_dir)) or "none"
        raise CheckpointNotFoundError(f"checkpoint {name} is missing or incomplete (have: {have})")
    return ckpt_dir / MODEL, int(match[1])
