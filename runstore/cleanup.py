"""A run's clean-up: which old checkpoints and clips would go, what each frees, and carrying
that out (docs/architecture.md, "The run store").

A plan is plain data, made afresh from the folder: the dashboard shows one as a preview, and
the runner, the one process that deletes (a ``cleanup`` request), makes its own at the moment
it acts and never trusts a list of paths from a request file. What a plan never names:

- ``best.zip`` and ``best.json``: the best model (a clip of "best", a report) needs nothing else;
- the newest *complete* checkpoint: resume continues from it (``checkpoints.latest_complete``)
  and its own signed manifest vouches for it, so trust and resume hold afterwards;
- a checkpoint another run's ``init_from`` names (``RUN/step-N``): that run starts from it;
- anything that is a link, or not a plain file or folder: never followed, never removed;
- clip sidecars (``step-N.json``): a few hundred bytes that keep what each clip scored after
  its video is gone (the Videos page lists only clips whose mp4 is there).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat as stat_mod
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from runstore import checkpoints, safeio
from runstore.config_schema import INIT_FROM_PATTERN
from runstore.disk import tree_bytes
from runstore.paths import RunPaths, file_stamp
from runstore.units import format_bytes
from runstore.videos import TIMELAPSE, parse_clip_name
from runstore.yamlsafe import MAX_CONFIG_BYTES, ConfigSyntaxError, top_level_text

CHECKPOINT, LEFTOVER, CLIP = "checkpoint", "leftover", "clip"
#: What a clean-up may be asked to delete (a ``cleanup`` request's params, each true/false).
OPTIONS = ("checkpoints", "clips")
#: Left in checkpoints/ by a killed writer: a staged checkpoint or best.zip, a discard cut short.
_LEFTOVER = re.compile(r"^\.(staging|trash)-")


@dataclass(frozen=True)
class Deletion:
    """One thing a clean-up removes: a checkpoint folder, a leftover, or a clip's video."""

    path: Path
    kind: str  # CHECKPOINT | LEFTOVER | CLIP
    size: int  # bytes it frees (``runstore.disk`` rules)

    @property
    def name(self) -> str:
        """As a page shows it: ``checkpoints/step-000000001000``, ``videos/step-....mp4``."""
        return f"{self.path.parent.name}/{self.path.name}"


@dataclass(frozen=True)
class CleanupPlan:
    """What a clean-up of one run would delete, and what it keeps on purpose, in words."""

    run_id: str
    deletions: tuple[Deletion, ...] = ()
    kept: tuple[str, ...] = ()

    @property
    def frees(self) -> int:
        return sum(d.size for d in self.deletions)

    def count(self, kind: str) -> int:
        return sum(1 for d in self.deletions if d.kind == kind)

    def summary(self) -> str:
        """``3 checkpoints, 2 clips: 1 GB`` (or ``nothing to delete``), for run.json and pages."""
        parts = [
            f"{n} {word}{'s' if n != 1 else ''}"
            for kind, word in ((CHECKPOINT, "checkpoint"), (LEFTOVER, "leftover"), (CLIP, "clip"))
            if (n := self.count(kind))
        ]
        return f"{', '.join(parts)}: {format_bytes(self.frees)}" if parts else "nothing to delete"


def plan_cleanup(
    run_dir: Path, *, checkpoints: bool, clips: bool, referenced: Iterable[str] = ()
) -> CleanupPlan:
    """What deleting a run's old checkpoints (``checkpoints``) and clips (``clips``) would
    remove; ``referenced`` names checkpoints other runs' ``init_from`` point at (kept)."""
    paths = RunPaths(Path(run_dir))
    deletions: list[Deletion] = []
    kept: list[str] = []
    if checkpoints:
        deletions += _checkpoint_deletions(paths.checkpoints, set(referenced), kept)
    if clips:
        deletions += _clip_deletions(paths.videos)
        kept.append("clip sidecars (what each clip scored)")
    return CleanupPlan(paths.id, tuple(deletions), tuple(kept))


def _checkpoint_deletions(folder: Path, referenced: set[str], kept: list[str]) -> list[Deletion]:
    if not _is_real_dir(folder):  # checkpoints/ linked out of the run: nothing through it
        return []
    latest, _broken = checkpoints.latest_complete(folder)
    best = checkpoints.read_best(folder)
    if best is not None:
        kept.append(f"{checkpoints.BEST_MODEL} (the best model, step {best.get('step', '?')})")
    if latest is not None:
        kept.append(f"{latest.dir.name} (the latest complete checkpoint: resume continues here)")
    found = []
    for ckpt in checkpoints.list_checkpoints(folder):  # published folders, never links
        name = ckpt.dir.name
        if latest is not None and name == latest.dir.name:
            continue
        if name in referenced:
            kept.append(f"{name} (another run's init_from starts from it)")
            continue
        found.append(Deletion(ckpt.dir, CHECKPOINT, tree_bytes(ckpt.dir)))
    for entry in _plain_entries(folder):
        if _LEFTOVER.match(entry.name):
            found.append(Deletion(Path(entry.path), LEFTOVER, tree_bytes(Path(entry.path))))
    return found


def _clip_deletions(folder: Path) -> list[Deletion]:
    found = []
    for entry in _plain_entries(folder):
        if (parse_clip_name(entry.name) or entry.name == TIMELAPSE) and entry.is_file(
            follow_symlinks=False
        ):
            found.append(Deletion(Path(entry.path), CLIP, tree_bytes(Path(entry.path))))
    return sorted(found, key=lambda d: d.path.name)


def _is_real_dir(folder: Path) -> bool:
    """``folder`` is a folder itself, not a link to one (nor missing)."""
    try:
        return stat_mod.S_ISDIR(os.lstat(folder).st_mode)
    except OSError:
        return False


def _plain_entries(folder: Path) -> list[os.DirEntry[str]]:
    """Entries of ``folder`` that are plain files or folders (no links, FIFOs, devices);
    none when ``folder`` itself is a link or missing."""
    if not _is_real_dir(folder):
        return []
    try:
        with os.scandir(folder) as listing:
            return [
                e
                for e in listing
                if e.is_file(follow_symlinks=False) or e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


def carry_out(plan: CleanupPlan) -> tuple[int, list[str]]:
    """Delete what ``plan`` names (the runner only, for a run no process writes to); returns
    the bytes freed and the problems, in words. A path that became a link or changed kind
    since the plan was made is left alone; one already gone frees nothing."""
    freed, problems = 0, []
    for item in plan.deletions:
        if not _is_real_dir(item.path.parent):
            problems.append(f"{item.name}: its folder is no longer a plain folder; left alone")
            continue
        try:
            mode = os.lstat(item.path).st_mode
            if item.kind != CLIP and stat_mod.S_ISDIR(mode):
                checkpoints.discard(item.path)  # renamed aside first: never half a checkpoint
            elif stat_mod.S_ISREG(mode):
                os.unlink(item.path)
            else:
                problems.append(f"{item.name}: no longer a plain file or folder; left alone")
                continue
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{item.name}: {exc.strerror or exc}")
            continue
        freed += item.size
    return freed, problems


class InitFromReferences:
    """Which checkpoints of each run other runs' ``init_from`` names, read from each run's
    config.yaml (its top-level ``init_from`` only) and read again only when that file's stamp
    changed: a clean-up of many runs in a folder of thousands costs a stat per run, not a
    parse. Safe to share between threads (a dashboard's sessions)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int] | None, str | None]] = {}
        self._lock = threading.Lock()

    def of(self, root: Path, run_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """Run id -> the checkpoint names (``step-N``) of it that some run's init_from names."""
        named: dict[str, set[str]] = {}
        with self._lock:
            fresh = {}
            for run_id in run_ids:
                config = RunPaths(Path(root) / run_id).config
                stamp = file_stamp(config)
                cached = self._seen.get(run_id)
                spec = cached[1] if cached and cached[0] == stamp else _init_from(config)
                fresh[run_id] = (stamp, spec)
                parent, _, name = (spec or "").partition("/")
                if name and name != checkpoints.BEST:
                    named.setdefault(parent, set()).add(name)
            self._seen = fresh
        return {run_id: frozenset(names) for run_id, names in named.items()}


def _init_from(config: Path) -> str | None:
    """The ``init_from`` of a run's config.yaml (bounded, never through a link), or None."""
    with contextlib.suppress(OSError, ConfigSyntaxError, ValueError):
        data = safeio.read_bytes(config, limit=MAX_CONFIG_BYTES)
        spec = top_level_text(data, frozenset({"init_from"})).get("init_from")
        if spec and INIT_FROM_PATTERN.match(spec):
            return spec
    return None
