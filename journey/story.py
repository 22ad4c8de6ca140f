"""The chapters of a run's story, chosen from its clips and their scores.

A chapter is a moment of the run with the clip that shows it: the start, the first points
(the first clip that beats the first one), each new best (a few, spread over the run), human
level (the first clip at or above the human tester's score, Atari-57 games only), the best
game and the final agent. The clips between one chapter and the next follow it, so a long
journey shows the whole progression, not only the peaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runstore.units import format_score, format_steps
from runstore.videos import Clip

#: New-best chapters kept at most (spread over the run, the last one always in).
MAX_NEW_BESTS = 5
#: Which title a clip gets when it is several moments at once: the highest wins.
PRIORITY = {
    "The start": 1,
    "New best": 2,
    "The final agent": 3,
    "First points": 4,
    "The best game": 5,
    "Human level": 6,
}


class JourneyError(ValueError):
    """A journey that cannot be made, with what to do about it."""


@dataclass(frozen=True)
class Chapter:
    title: str  # a PRIORITY key
    clip: Clip  # the moment's own gameplay
    following: tuple[Clip, ...]  # the clips up to the next chapter

    @property
    def step(self) -> int:
        return self.clip.step

    @property
    def score(self) -> float:
        assert self.clip.score is not None
        return self.clip.score

    @property
    def heading(self) -> str:
        return f"{self.title} · step {format_steps(self.step)} · score {format_score(self.score)}"

    @property
    def clips(self) -> tuple[Clip, ...]:
        return (self.clip, *self.following)


def scored_clips(clips: Sequence[Clip]) -> list[Clip]:
    """The clips a journey can use: complete, with a score, in step order (a step's
    evaluation clip before the clip recorded there)."""
    return sorted(
        (c for c in clips if c.score is not None and not c.problem),
        key=lambda c: (c.step, c.kind),
    )


def tell(clips: Sequence[Clip], human: float | None = None) -> list[Chapter]:
    """The run's chapters in step order. ``human`` is the game's human reference score."""
    scored = scored_clips(clips)
    if not scored:
        raise JourneyError(
            "the run has no clips with a score yet: evaluations film one every video_every "
            "steps (or record one from a checkpoint on the Run page), then ask again"
        )
    scores = [c.score for c in scored]
    titles: dict[int, str] = {}

    def mark(i: int, title: str) -> None:
        if PRIORITY[title] > PRIORITY.get(titles.get(i, ""), 0):
            titles[i] = title

    mark(0, "The start")
    better = [i for i, s in enumerate(scores) if s > scores[0]]
    if better:
        mark(better[0], "First points")
    bests, best = [], scores[0]
    for i, s in enumerate(scores):
        if s > best:
            bests.append(i)
            best = s
    if len(bests) > MAX_NEW_BESTS:
        keep = np.linspace(0, len(bests) - 1, MAX_NEW_BESTS).round().astype(int)
        bests = [bests[k] for k in sorted(set(keep.tolist()))]
    for i in bests:
        mark(i, "New best")
    if human is not None:
        reached = [i for i, s in enumerate(scores) if s >= human]
        if reached:
            mark(reached[0], "Human level")
    top = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if top != 0:
        mark(top, "The best game")
    mark(len(scored) - 1, "The final agent")
    picked = sorted(titles)
    ends = [*picked[1:], len(scored)]
    return [
        Chapter(titles[i], scored[i], tuple(scored[i + 1 : end]))
        for i, end in zip(picked, ends, strict=True)
    ]


def milestones(clips: Sequence[Clip], count: int = 4) -> list[Clip]:
    """Early, middle, late and final agents for the side-by-side grid: evaluation clips at
    evenly spaced places in the run; empty when the run has fewer distinct clips."""
    evals = [c for c in scored_clips(clips) if c.kind == "eval"] or scored_clips(clips)
    if len(evals) < count:
        return []
    idx = np.linspace(0, len(evals) - 1, count).round().astype(int)
    return [evals[i] for i in idx]
