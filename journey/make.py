"""Make one journey video of a run: read its record, tell its story, plan the frames,
record more footage if needed, compose, and publish the mp4 with its companions.

Everything is written under a temporary name and moved into place at the end, the mp4 last,
so a cancelled or failed job leaves no journey (and no half of one) under the final names.
Progress goes to ``videos/.journey-<label>.progress.json`` for the Run page.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from journey import compose, footage, frames, texts, thumbnail
from journey.encode import encode
from journey.plan import Footage, Plan, make_plan
from journey.story import Chapter, JourneyError, milestones, tell
from reports.facts import ReportError, RunFacts, read_run_facts
from runstore.atomic import atomic_write_json, atomic_write_text
from runstore.store import RunStore
from runstore.units import format_duration, format_score
from runstore.videos import (
    JOURNEY_FPS,
    JOURNEY_SIZES,
    MAX_JOURNEY_SECONDS,
    MIN_JOURNEY_SECONDS,
    Clip,
    JourneyChapter,
    JourneyMeta,
    journey_file,
    journey_label,
    temp_path,
)

log = logging.getLogger("journey")

#: Training returns are drawn as a rolling mean over this many episodes.
TRAIN_WINDOW = 100


@dataclass(frozen=True)
class Made:
    video: Path
    meta: JourneyMeta


class Progress:
    """The job's progress file: phase, frames done of the total, at most once a second."""

    def __init__(self, path: Path):
        self.path = path
        self._last = 0.0

    def __call__(self, phase: str, done: int = 0, total: int = 0, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= 1.0:
            self._last = now
            atomic_write_json(
                self.path, {"phase": phase, "done": done, "total": total, "at": time.time()}
            )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def check_request(seconds: float, height: int, fps: int) -> None:
    """A length, size and rate a journey can be made at, or why not."""
    if not MIN_JOURNEY_SECONDS <= seconds <= MAX_JOURNEY_SECONDS:
        raise JourneyError(
            f"length {seconds:g} s is out of range: ask for {MIN_JOURNEY_SECONDS:g} s to "
            f"{MAX_JOURNEY_SECONDS / 3600:g} h (e.g. 60s, 10m, 1h)"
        )
    if height not in JOURNEY_SIZES:
        raise JourneyError(
            f"size {height}p is not offered: use {' or '.join(map(str, JOURNEY_SIZES))}"
        )
    if fps not in JOURNEY_FPS:
        raise JourneyError(f"{fps} fps is not offered: use 30 or 60")


def _footage(clips: list[Clip]) -> dict[Path, Footage]:
    out = {}
    for clip in clips:
        meta = clip.meta
        if meta is not None and meta.frames > 0 and meta.fps > 0:
            out[clip.path] = Footage(meta.frames, meta.fps)
        else:
            out[clip.path] = compose.probe(clip.path)
    return out


def _narrator(facts: RunFacts, chapters: list[Chapter]) -> compose.Narrator:
    curve = facts.curve
    eval_steps = curve["step"].to_numpy() if curve.height else np.array([])
    eval_values = curve["mean"].to_numpy() if curve.height else np.array([])
    episodes = facts.episodes.sort("step") if facts.episodes.height else facts.episodes
    if episodes.height:
        rolling = episodes.select(
            "step", pl.col("episode_return").rolling_mean(TRAIN_WINDOW, min_samples=1)
        )
        train_steps, train_values = rolling["step"].to_numpy(), rolling["episode_return"].to_numpy()
        stride = max(1, train_steps.size // 600)  # a curve of a few hundred points is enough
        train_steps, train_values = train_steps[::stride], train_values[::stride]
    else:
        train_steps = train_values = np.array([])
    points = (
        facts.scalars.group_by("step").agg(pl.col("wall_time").min()).sort("step")
        if facts.scalars.height
        else pl.DataFrame({"step": [], "wall_time": []})
    )
    status = facts.status
    total = status.total_timesteps if status and status.total_timesteps else 0
    last = max(
        [total, *(c.step for c in chapters), int(eval_steps.max()) if eval_steps.size else 0]
    )
    human = facts.reference[1] if facts.reference else None
    game = texts.game_title(facts.env)
    final, best = texts.final_and_best(facts)
    final = chapters[-1].score if final is None else final
    best = max(c.score for c in chapters) if best is None else best
    seconds = facts.usage.wall_hours * 3600 if facts.usage else None
    return compose.Narrator(
        curve=frames.Curve(eval_steps, eval_values, train_steps, train_values, human, last),
        steps=points["step"].to_numpy().astype(np.float64),
        walls=points["wall_time"].to_numpy().astype(np.float64),
        eval_steps=eval_steps,
        eval_values=eval_values,
        total_steps=last,
        title=[
            (f"AI learns to play {game}", 2.6, frames.TEXT),
            (facts.name, 1.2, frames.DIM),
            (
                f"{facts.algo.upper()}  ·  {last:,} steps"
                + (f"  ·  {format_duration(seconds)} of training" if seconds is not None else ""),
                1.2,
                frames.DIM,
            ),
            (f"final score {format_score(final)}  ·  best {format_score(best)}", 1.4, frames.TEXT),
        ],
    )


def plan_journey(
    facts: RunFacts, seconds: float, fps: float
) -> tuple[list[Chapter], list[Clip], Plan]:
    """The run's chapters, its grid's clips and the frames of every section."""
    human = facts.reference[1] if facts.reference else None
    chapters = tell(facts.clips, human)
    grid = milestones(facts.clips)
    used = [c for ch in chapters for c in ch.clips] + grid
    return chapters, grid, make_plan(chapters, grid, seconds, fps, _footage(used))


def make_journey(
    store: RunStore,
    run_id: str,
    seconds: float,
    height: int = 1080,
    fps: int = 30,
    record_more: bool = True,
) -> Made:
    """Compose ``videos/journey-<label>.mp4`` and its companions for a run."""
    check_request(seconds, height, fps)
    size = JOURNEY_SIZES[height]
    paths = store.paths(run_id)
    label = journey_label(seconds)
    progress = Progress(journey_file(paths.videos, label, ".progress.json"))
    try:
        facts = read_run_facts(store, run_id)
    except ReportError as exc:
        raise JourneyError(str(exc)) from exc
    chapters, grid, plan = plan_journey(facts, seconds, fps)
    recorded = 0
    if plan.looped and record_more:
        clips = [c for ch in chapters for c in ch.clips]
        per_clip = np.mean([_footage([c])[c.path].out_frames(fps) for c in clips])
        names = footage.checkpoints_to_record(paths.checkpoints, facts.clips, plan.looped, per_clip)
        if names:
            log.info("%d s of footage short: recording from %s", plan.looped // fps, names)
            recorded = footage.record(
                paths.dir, names, lambda i: progress("recording", i, len(names), force=True)
            )
        if recorded:
            facts = read_run_facts(store, run_id)
            chapters, grid, plan = plan_journey(facts, seconds, fps)
    if plan.looped:
        log.info(
            "%.0f s of gameplay is shown twice: the run has no more footage", plan.looped / fps
        )
    narrator = _narrator(facts, chapters)
    final = journey_file(paths.videos, label)
    tmp = temp_path(final)
    total = plan.frames
    try:
        made = compose.render(plan, narrator, size)
        count = encode(made, tmp, size, fps, lambda n: progress("composing", n, total))
        if count != total:
            raise RuntimeError(f"composed {count} frames, planned {total}")
        best = max((c for ch in chapters for c in ch.clips), key=lambda c: (c.score, c.step))
        best_frames = _footage([best])[best.path].frames
        meta = JourneyMeta(
            label=label,
            seconds=total / fps,
            frames=total,
            fps=fps,
            width=size[0],
            height=size[1],
            chapters=[
                JourneyChapter(at=m.frame / fps, title=m.title, step=m.step) for m in plan.marks
            ],
            run_name=facts.name,
            env=facts.env,
            algo=facts.algo,
            final_score=texts.final_and_best(facts)[0],
            best_score=texts.final_and_best(facts)[1],
            clips_used=plan.clips_used,
            clips_recorded=recorded,
            created_at=time.time(),
        )
        game = texts.game_title(facts.env)
        thumbnail.write_png(
            thumbnail.thumbnail(best, game, best_frames), journey_file(paths.videos, label, ".png")
        )
        atomic_write_text(
            journey_file(paths.videos, label, ".chapters.txt"), texts.chapter_lines(plan.marks, fps)
        )
        atomic_write_text(
            journey_file(paths.videos, label, ".description.txt"),
            texts.description(facts, plan.marks, fps),
        )
        atomic_write_json(journey_file(paths.videos, label, ".json"), meta.model_dump(mode="json"))
        os.replace(tmp, final)  # last: the journey is listed from now on
    finally:
        tmp.unlink(missing_ok=True)
        progress.remove()
    log.info("journey of %s: %s (%d frames, %d chapters)", run_id, final, total, len(plan.marks))
    return Made(final, meta)
