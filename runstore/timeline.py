"""A run's timeline in plain words, derived from what the store already records.

Sources: the lifecycle events in run.json (queued, started, paused, resumed, stop requested,
stopped, completed, failed, lost), checkpoint manifests (one event per saved checkpoint, at
the manifest's mtime), episodes (each new best return) and the (step, wall time) points of
the TensorBoard scalars (10/25/50/75/100 % progress milestones). Nothing here writes; the
Run page calls ``build_timeline`` with what the loaders read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from runstore import checkpoints
from runstore.models import RunRecord

MILESTONES = (10, 25, 50, 75, 100)
#: Events the runner records about the run's files, its trust and its signals: shown with
#: their detail so a damaged run.json, a refused signal or a trust action is seen on the run.
NOTICES = {
    "run-json-damaged": "run.json was damaged",
    "run-json-replaced": "run.json was replaced",
    "signal-refused": "Signal refused",
    "pause-pending": "Pause pending",
    "trusted": "Trusted",
    "trust-refused": "Trust refused",
    "trust-failed": "Trust failed",
    "request-ignored": "Request ignored",
    # organising (issue 17: runstore.annotations)
    "tagged": "Tags changed",
    "note": "Note changed",
    "archived": "Archived",
    "unarchived": "Unarchived",
    "annotate-refused": "Tags or note refused",
    # disk (issue 17: runner/cleanup.py)
    "cleaned-up": "Cleaned up",
    "cleanup-refused": "Clean-up refused",
    "cleanup-failed": "Clean-up failed",
    # journey videos (issue 18: runner/media.py)
    "journey-done": "Journey video made",
    "journey-failed": "Journey video failed",
    "journey-cancelled": "Journey video cancelled",
    # videos (issue 18: runner/video_files.py)
    "video-deleted": "Video deleted",
    "video-renamed": "Video renamed",
    "video-refused": "Video change refused",
}
MAX_BEST_EVENTS = 8


@dataclass(frozen=True)
class TimelineEvent:
    at: float
    kind: str  # queued | started | paused | resumed | ... | checkpoint | best | milestone
    text: str


def lifecycle_events(record: RunRecord) -> list[TimelineEvent]:
    """run.json's history in words; repeated heartbeat-like entries are left out."""
    out: list[TimelineEvent] = []
    starts = 0
    paused = False
    for ev in record.events:
        detail = f" — {ev.detail}" if ev.detail else ""
        if ev.kind == "queued":
            again = "Queued again" if out else "Queued"
            out.append(TimelineEvent(ev.at, "queued", f"{again}{detail}"))
        elif ev.kind == "starting":
            starts += 1
            text = "Started" if starts == 1 else f"Restarted (attempt {starts})"
            out.append(TimelineEvent(ev.at, "started", text))
        elif ev.kind == "paused":
            paused = True
            out.append(TimelineEvent(ev.at, "paused", f"Paused{detail}"))
        elif ev.kind == "running" and paused:
            paused = False
            out.append(TimelineEvent(ev.at, "resumed", f"Resumed{detail}"))
        elif ev.kind == "stopping":
            out.append(TimelineEvent(ev.at, "stopping", f"Stop requested{detail}"))
        elif ev.kind in ("stopped", "completed", "failed", "lost", "adopted", "killed"):
            out.append(TimelineEvent(ev.at, ev.kind, f"{ev.kind.capitalize()}{detail}"))
        elif ev.kind in NOTICES:
            out.append(TimelineEvent(ev.at, ev.kind, f"{NOTICES[ev.kind]}{detail}"))
    return out


def checkpoint_events(checkpoints_dir: Path) -> list[TimelineEvent]:
    out = []
    for ckpt in checkpoints.list_checkpoints(checkpoints_dir):
        try:
            at = os.stat(ckpt.dir / checkpoints.MANIFEST, follow_symlinks=False).st_mtime
        except OSError:
            continue  # not sealed: never a checkpoint one can resume from
        out.append(TimelineEvent(at, "checkpoint", f"Checkpoint saved at step {ckpt.step:,}"))
    return out


def best_return_events(episodes: pl.DataFrame) -> list[TimelineEvent]:
    """Each episode that beat every earlier one; the first and the last few if there are many."""
    out = []
    best: float | None = None
    for step, wall_time, ret in (
        episodes.sort("step").select("step", "wall_time", "episode_return").iter_rows()
    ):
        if best is None or ret > best:
            best = ret
            text = f"New best return {ret:,.1f} at step {step:,}"
            out.append(TimelineEvent(wall_time, "best", text))
    if len(out) > MAX_BEST_EVENTS:
        out = out[:1] + out[-(MAX_BEST_EVENTS - 1) :]
    return out


def milestone_events(points: pl.DataFrame, total_timesteps: int) -> list[TimelineEvent]:
    """When the run first logged a step past 10/25/50/75/100 % of its steps."""
    if total_timesteps <= 0 or points.height == 0:
        return []
    ordered = points.select("step", "wall_time").sort("step")
    out = []
    for pct in MILESTONES:
        target = total_timesteps * pct / 100
        hit = ordered.filter(pl.col("step") >= target).head(1)
        if hit.height:
            step, at = hit.row(0)
            out.append(TimelineEvent(at, "milestone", f"{pct}% of the steps ({step:,})"))
    return out


def build_timeline(
    record: RunRecord,
    checkpoints_dir: Path,
    episodes: pl.DataFrame,
    scalars: pl.DataFrame,
    total_timesteps: int,
) -> list[TimelineEvent]:
    """Every event, oldest first."""
    events: list[TimelineEvent] = []
    events += lifecycle_events(record)
    events += checkpoint_events(checkpoints_dir)
    events += best_return_events(episodes)
    events += milestone_events(scalars, total_timesteps)
    return sort_events(events)


def sort_events(events: Iterable[TimelineEvent]) -> list[TimelineEvent]:
    return sorted(events, key=lambda e: e.at)
