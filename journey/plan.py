"""How many frames each part of a journey gets, so the video is exactly the length asked.

The title card, a short card before each chapter and the side-by-side grid take fixed shares
of the length; the rest is gameplay, shared among the chapters by weight (the best game gets
more). A chapter never plays a clip faster or slower than real time: with more footage than
its share it shows the middle of its own clip (or its clip and then those that follow); with
less, the share it cannot fill goes to chapters that can, and only when every clip of the run
is used up does a chapter play its footage again (``Plan.looped`` says how much, so the job
can first record more from the run's checkpoints). A teaser too short for every chapter
keeps the most telling ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from journey.story import PRIORITY, Chapter
from runstore.videos import Clip

#: Gameplay weight of a chapter by title (others 1): the best game and human level get more.
WEIGHTS = {"The best game": 2.0, "Human level": 1.5}
#: A chapter shows at least this much gameplay, or the teaser drops its least telling one.
MIN_PLAY_SECONDS = 1.5
#: The side-by-side grid needs this much length to be worth it, and takes this share of it.
GRID_FROM_SECONDS = 20.0
GRID_SHARE = 0.15
GRID_TITLE = "Side by side: early, middle, late and final agents"
INTRO_TITLE = "Intro"


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class Footage:
    """A clip's length: frames and their rate."""

    frames: int
    fps: float

    def out_frames(self, fps: float) -> int:
        """How many frames of a video at ``fps`` it fills at real speed."""
        return int(self.frames * fps / self.fps) if self.fps > 0 else 0


@dataclass(frozen=True)
class Piece:
    """``frames`` output frames of ``clip`` from its source frame ``start``, at real speed."""

    clip: Clip
    start: int
    frames: int


@dataclass(frozen=True)
class Section:
    kind: str  # title | card | play | grid
    frames: int
    chapter: Chapter | None = None
    pieces: tuple[Piece, ...] = ()
    grid: tuple[Clip, ...] = ()
    title: str = ""  # a card's words


@dataclass(frozen=True)
class Mark:
    """A chapter line: where it starts (in frames) and what it is called."""

    frame: int
    title: str
    step: int | None


@dataclass
class Plan:
    fps: float
    sections: list[Section] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    looped: int = 0  # frames of gameplay shown a second time for want of footage

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.sections)

    @property
    def clips_used(self) -> int:
        seen = {p.clip.path for s in self.sections for p in s.pieces}
        seen.update(c.path for s in self.sections for c in s.grid)
        return len(seen)


def share(total: int, weights: Sequence[float], caps: Sequence[int]) -> tuple[list[int], int]:
    """``total`` frames shared by weight, none above its cap (its footage); what no cap has
    room for is shared again by weight over all (played twice) and returned as the second
    value. Integer, and the parts sum to ``total``."""
    n = len(weights)
    alloc = [0] * n
    open_ = [i for i in range(n) if caps[i] > 0]
    left = total
    while open_ and left > 0:
        weight = sum(weights[i] for i in open_)
        full = [i for i in open_ if caps[i] <= left * weights[i] / weight]
        if not full:
            alloc_part = _largest_remainder(left, [weights[i] for i in open_])
            for i, part in zip(open_, alloc_part, strict=True):
                alloc[i] += part
            return alloc, 0
        for i in full:
            alloc[i] = caps[i]
            left -= caps[i]
        open_ = [i for i in open_ if i not in full]
    if left > 0:
        for i, part in enumerate(_largest_remainder(left, list(weights))):
            alloc[i] += part
    return alloc, left


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    weight = sum(weights) or 1.0
    exact = [total * w / weight for w in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: parts[i] - exact[i])
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _pieces(
    chapter: Chapter, frames: int, fps: float, footage: Mapping[Path, Footage]
) -> tuple[Piece, ...]:
    """Fill ``frames`` with the chapter's clips at real speed: the middle of its own clip
    when that is enough, else its clips in order, again from the first when all are used."""
    own = footage[chapter.clip.path]
    if own.out_frames(fps) >= frames:
        used_source = int(frames * own.fps / fps)
        return (Piece(chapter.clip, max(0, (own.frames - used_source) // 2), frames),)
    pieces: list[Piece] = []
    left = frames
    playable = [c for c in chapter.clips if footage[c.path].out_frames(fps) > 0]
    while left > 0 and playable:
        for clip in playable:
            take = min(left, footage[clip.path].out_frames(fps))
            pieces.append(Piece(clip, 0, take))
            left -= take
            if left == 0:
                break
    return tuple(pieces)


def _merge_into_previous(chapters: list[Chapter], k: int) -> list[Chapter]:
    """Drop chapter k; its clips follow the chapter before it."""
    out = list(chapters)
    dropped = out.pop(k)
    if k > 0:
        prev = out[k - 1]
        out[k - 1] = replace(prev, following=(*prev.following, *dropped.clips))
    return out


def make_plan(
    chapters: Sequence[Chapter],
    grid: Sequence[Clip],
    seconds: float,
    fps: float,
    footage: Mapping[Path, Footage],
) -> Plan:
    """Every section of the video with its frames; ``footage`` has every clip's length."""
    total = round(seconds * fps)
    title = round(_clamp(0.06 * seconds, 1.0, 4.0) * fps)
    card = round(_clamp(0.04 * seconds, 0.5, 2.0) * fps)
    grid_frames = round(_clamp(GRID_SHARE * seconds, 2.0, 120.0) * fps)
    use_grid = len(grid) == 4 and seconds >= GRID_FROM_SECONDS
    chapters = [c for c in chapters if footage[c.clip.path].out_frames(fps) > 0]
    if not chapters:
        raise ValueError("no clip of the run has frames to show")
    while True:
        play = total - title - card * len(chapters)
        if use_grid:
            play -= card + grid_frames
        if len(chapters) == 1 or play >= MIN_PLAY_SECONDS * fps * len(chapters):
            break
        least = min(range(len(chapters) - 1), key=lambda i: (PRIORITY[chapters[i].title], i))
        chapters = _merge_into_previous(chapters, least)
    if play <= 0:
        raise ValueError(f"{seconds:g} s is too short for a journey")
    caps = [sum(footage[c.path].out_frames(fps) for c in ch.clips) for ch in chapters]
    alloc, looped = share(play, [WEIGHTS.get(ch.title, 1.0) for ch in chapters], caps)
    plan = Plan(fps=fps, looped=looped)
    plan.marks.append(Mark(0, INTRO_TITLE, None))
    plan.sections.append(Section("title", title))
    for chapter, frames in zip(chapters, alloc, strict=True):
        plan.marks.append(Mark(plan.frames, chapter.heading, chapter.step))
        plan.sections.append(Section("card", card, chapter, title=chapter.heading))
        plan.sections.append(
            Section("play", frames, chapter, _pieces(chapter, frames, fps, footage))
        )
    if use_grid:
        plan.marks.append(Mark(plan.frames, GRID_TITLE, None))
        plan.sections.append(Section("card", card, title=GRID_TITLE))
        plan.sections.append(Section("grid", grid_frames, grid=tuple(grid)))
    assert plan.frames == total, (plan.frames, total)
    return plan
