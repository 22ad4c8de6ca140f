"""Stream a plan's frames: one frame at a time from the clips' decoders to the encoder.

Nothing holds more than a frame per open clip (a one-hour 1080p journey composes in the
memory of a few frames): clips are decoded by ffmpeg as they play, and a frame leaves for
the encoder before the next is made. Every section yields exactly its planned frames, even
when a clip turns out shorter than its sidecar said (its last frame is held), so the length
is what the plan says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from journey import frames as draw
from journey.plan import Footage, Piece, Plan, Section
from journey.story import JourneyError
from runstore.units import format_duration, format_score, format_steps
from runstore.videos import Clip


class ClipFrames:
    """A clip's frames in order, decoded as they are asked for; ``at(i)`` moves forward only
    (a frame asked again is the one held), and past the end the last frame stays."""

    def __init__(self, path: Path):
        self.path = path
        self._gen = imageio_ffmpeg.read_frames(str(path))
        try:
            meta = next(self._gen)
        except (OSError, RuntimeError, StopIteration) as exc:
            self._gen.close()
            raise undecodable(path, exc) from None
        self.width, self.height = meta["size"]
        self.fps = float(meta.get("fps") or 30.0)
        self._index = -1
        self._frame: np.ndarray | None = None
        self._done = False

    def at(self, index: int) -> np.ndarray:
        while self._index < index and not self._done:
            try:
                raw = next(self._gen)
            except StopIteration:
                self._done = True
                break
            self._index += 1
            self._frame = np.frombuffer(raw, dtype=np.uint8).reshape(self.height, self.width, 3)
        if self._frame is None:
            raise undecodable(self.path, "no frames")
        return self._frame

    def played_out(self, index: int) -> bool:
        """Frame ``index`` is past the clip's end, and the end has been seen."""
        return self._done and index > self._index

    def close(self) -> None:
        self._gen.close()


def undecodable(path: Path, why: object) -> JourneyError:
    """A clip ffmpeg cannot read (cut short, not a video): which one, and what to do."""
    first = str(why).strip().splitlines()[0][:200] if str(why).strip() else type(why).__name__
    return JourneyError(
        f"videos/{path.name} cannot be decoded ({first}): delete it (Videos page, or python -m "
        f"runner video-delete RUN {path.name}) and ask for the journey again"
    )


def probe(path: Path) -> Footage:
    """A clip's frames and rate from the file itself (a sidecar may be missing or old)."""
    try:
        frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError) as exc:
        raise undecodable(path, exc) from None
    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        fps = float(next(gen).get("fps") or 30.0)
    finally:
        gen.close()
    return Footage(frames, fps)


@dataclass
class Narrator:
    """What the panel says beside the game: the curve, and the run's hours by step."""

    curve: draw.Curve
    steps: np.ndarray  # logged steps and the wall time they were logged at
    walls: np.ndarray
    eval_steps: np.ndarray
    eval_values: np.ndarray
    total_steps: int
    title: list[tuple[str, float, tuple]]  # the title card's lines

    def hours_at(self, step: int) -> float:
        if self.steps.size == 0:
            return 0.0
        return float(np.interp(step, self.steps, self.walls) - self.walls[0]) / 3600

    def spent_at(self, step: int) -> str:
        """The training time up to ``step``, in words (3 m 20 s, 1 h 05 m)."""
        return format_duration(self.hours_at(step) * 3600)

    def best_at(self, step: int) -> float | None:
        seen = self.eval_values[self.eval_steps <= step]
        return float(seen.max()) if seen.size else None

    def lines(self, clip: Clip) -> list[str]:
        score = clip.score
        best = self.best_at(clip.step)
        out = [
            f"step {format_steps(clip.step)} of {format_steps(self.total_steps)}",
            f"{self.spent_at(clip.step)} of training",
            f"this agent scores {format_score(score)}" if score is not None else "",
            f"best evaluation so far {format_score(best)}" if best is not None else "",
        ]
        return [line for line in out if line]


def render(plan: Plan, narrator: Narrator, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Every frame of the video, in order; a yielded array may be reused for the next."""
    stage = draw.Stage(size)
    for section in plan.sections:
        if section.kind == "title":
            yield from _repeat(draw.card(size, narrator.title, draw.TITLE_CARD), section.frames)
        elif section.kind == "card":
            yield from _repeat(_chapter_card(size, section, narrator), section.frames)
        elif section.kind == "play":
            for piece in section.pieces:
                yield from _play(stage, narrator, section, piece, plan.fps)
        elif section.kind == "grid":
            yield from _grid(stage, section, plan.fps)


def _repeat(image: np.ndarray, count: int) -> Iterator[np.ndarray]:
    for _ in range(count):
        yield image


def _chapter_card(size: tuple[int, int], section: Section, narrator: Narrator) -> np.ndarray:
    chapter = section.chapter
    if chapter is None:
        return draw.card(size, [(section.title, 1.6, draw.TEXT)])
    spent = narrator.spent_at(chapter.step)
    return draw.card(
        size,
        [
            (chapter.title, 2.4, draw.TEXT),
            (f"step {format_steps(chapter.step)}  ·  {spent} of training", 1.2, draw.DIM),
            (f"score {format_score(chapter.score)}", 1.4, draw.TEXT),
        ],
    )


def _play(
    stage: draw.Stage, narrator: Narrator, section: Section, piece: Piece, fps: float
) -> Iterator[np.ndarray]:
    assert section.chapter is not None
    canvas = stage.backdrop(
        narrator.curve, piece.clip.step, section.chapter.title, narrator.lines(piece.clip)
    )
    frames = ClipFrames(piece.clip.path)
    try:
        ratio = frames.fps / fps
        for j in range(piece.frames):
            stage.place(canvas, frames.at(piece.start + int(j * ratio)))
            yield canvas
    finally:
        frames.close()


def _grid(stage: draw.Stage, section: Section, fps: float) -> Iterator[np.ndarray]:
    """The four agents play at once; a game that ends starts again, so all four play on."""
    names = ("early", "middle", "late", "final")
    labels = [
        f"{name} · step {format_steps(c.step)} · score {format_score(c.score)}"
        for name, c in zip(names, section.grid, strict=True)
    ]
    canvas = stage.grid_backdrop(labels)
    boxes = stage.grid_boxes()
    cells = [ClipFrames(c.path) for c in section.grid]
    starts = [0] * 4  # the output frame each cell's current pass began at
    try:
        for j in range(section.frames):
            for k, cell in enumerate(cells):
                index = int((j - starts[k]) * cell.fps / fps)
                if cell.played_out(index):  # played out: from the start again
                    cell.close()
                    cells[k] = cell = ClipFrames(section.grid[k].path)
                    starts[k], index = j, 0
                stage.place(canvas, cell.at(index), boxes[k])
            yield canvas
    finally:
        for cell in cells:
            cell.close()
