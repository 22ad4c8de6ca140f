"""How much room a run folder takes, by kind: checkpoints, clips, TensorBoard events, logs,
the rest.

Measured with ``lstat`` only: a symbolic link counts as the link itself (a few bytes) and is
never followed, so a link planted in a run folder can neither make it look huge nor send the
walk through someone else's disk. A file that vanishes mid-walk (a trainer pruning its
checkpoints, a clip being published) is simply not counted; a folder that cannot be listed
is counted in ``unreadable``. Sizes are apparent sizes (``st_size``), what ``ls -l`` shows
and what deleting a file gives back on an ordinary disk; a file hard-linked twice in one run
counts once.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path

from runstore.paths import RunPaths, is_run_id

#: The kinds a run's room is split into, in the order the pages show them.
CATEGORIES = ("checkpoints", "videos", "events", "logs", "other")
_LAYOUT = RunPaths(Path("run"))
#: A run folder's top-level entry -> its kind; anything else (run.json, config.yaml,
#: status.json, requests/) is "other".
_KIND_OF_ENTRY = {
    _LAYOUT.checkpoints.name: "checkpoints",
    _LAYOUT.videos.name: "videos",
    _LAYOUT.tb.name: "events",
    _LAYOUT.logs.name: "logs",
}


@dataclass(frozen=True)
class RunSize:
    """Bytes of one run folder by kind (``CATEGORIES``)."""

    checkpoints: int = 0
    videos: int = 0
    events: int = 0
    logs: int = 0
    other: int = 0
    #: Folders or entries that could not be listed or stat'ed (permissions): not counted.
    unreadable: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_category().values())

    def by_category(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in CATEGORIES}


def tree_bytes(top: Path) -> int:
    """Bytes under ``top`` (a checkpoint folder), by the same rules as ``run_size``: links
    counted as themselves, never followed; ``top`` itself may be a file."""
    totals = {"all": 0}
    seen: set[tuple[int, int]] = set()
    try:
        st = os.lstat(top)
    except OSError:
        return 0
    if not stat_mod.S_ISDIR(st.st_mode):
        return st.st_size
    _walk(str(top), "all", totals, seen)
    return totals["all"]


def run_size(run_dir: Path) -> RunSize:
    """The run folder's size by kind. Never raises for what is in the folder: a vanished
    entry is skipped, one that cannot be read is counted in ``unreadable``."""
    totals = dict.fromkeys(CATEGORIES, 0)
    seen: set[tuple[int, int]] = set()
    try:
        st = os.lstat(run_dir)
    except OSError:
        return RunSize()
    if not stat_mod.S_ISDIR(st.st_mode):  # a link in place of a run folder: itself only
        return RunSize(other=st.st_size)
    unreadable = _walk(str(run_dir), None, totals, seen)
    return RunSize(**totals, unreadable=unreadable)


def runs_folder_size(root: Path) -> tuple[dict[str, RunSize], int]:
    """Every run folder's size by kind (run id -> ``RunSize``), and the bytes of the rest of
    the runs folder (queue, sweeps, logs of the runner...): one walk of the whole folder."""
    runs: dict[str, RunSize] = {}
    rest = {"rest": 0}
    seen: set[tuple[int, int]] = set()
    try:
        listing = list(os.scandir(root))
    except OSError:
        return runs, 0
    for entry in listing:
        if is_run_id(entry.name) and entry.is_dir(follow_symlinks=False):
            runs[entry.name] = run_size(Path(entry.path))
        elif entry.is_dir(follow_symlinks=False):
            _walk(entry.path, "rest", rest, seen)
        else:
            try:
                rest["rest"] += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return runs, rest["rest"]


def _walk(top: str, kind: str | None, totals: dict[str, int], seen: set[tuple[int, int]]) -> int:
    """Add the bytes under ``top`` to ``totals`` (by ``kind``, or by each top-level entry's
    kind when None); returns how many entries could not be read. A stack, not recursion: a
    deep tree planted in a run folder cannot exhaust Python's recursion limit."""
    unreadable = 0
    stack: list[tuple[str, str | None]] = [(top, kind)]
    while stack:
        folder, folder_kind = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except FileNotFoundError:
            continue  # removed since its parent was listed
        except OSError:
            unreadable += 1
            continue
        for entry in entries:
            entry_kind = folder_kind or _KIND_OF_ENTRY.get(entry.name, "other")
            try:
                st = entry.stat(follow_symlinks=False)  # lstat: a link is only itself
            except FileNotFoundError:
                continue
            except OSError:
                unreadable += 1
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                stack.append((entry.path, entry_kind))
                continue
            if st.st_nlink > 1:  # a hard-linked file counts once
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            totals[entry_kind] += st.st_size
    return unreadable
