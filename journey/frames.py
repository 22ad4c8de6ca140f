"""What a journey's frames look like: cards, the game beside its learning curve, the grid.

Everything that stays the same over a stretch of frames (a card, the panel with the curve up
to this clip's step, the grid's labels) is drawn once into a backdrop; per frame only the
game is scaled (nearest neighbour: Atari pixels stay sharp) and pasted into it, so composing
costs little beside the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from runstore.units import format_steps

BACKGROUND = (16, 18, 26)
CARD = (28, 44, 104)  # chapter cards: a colour no game frame is, so every cut is visible
TITLE_CARD = (12, 12, 12)
TEXT = (255, 255, 255)
DIM = (170, 176, 190)
CURVE = (90, 200, 255)
TRAIN = (110, 110, 130)
HUMAN = (255, 190, 60)
MARKER = (255, 80, 80)
FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


def text(img: np.ndarray, words: str, org: tuple[int, int], scale: float, color=TEXT) -> None:
    thickness = max(1, round(scale * 2))
    cv2.putText(img, words, org, FONT, scale, color, thickness, cv2.LINE_AA)


def text_width(words: str, scale: float) -> int:
    return cv2.getTextSize(words, FONT, scale, max(1, round(scale * 2)))[0][0]


def fit_scale(words: str, scale: float, width: int) -> float:
    """``scale``, smaller if needed so the words fit in ``width`` pixels."""
    w = text_width(words, scale)
    return scale if w <= width else scale * width / w


def centred(img: np.ndarray, lines: list[tuple[str, float, tuple]], top: float) -> None:
    h, w = img.shape[:2]
    y = int(h * top)
    for words, scale, color in lines:
        if not words:
            continue
        scale = fit_scale(words, scale, int(w * 0.9))
        (tw, th), _ = cv2.getTextSize(words, FONT, scale, max(1, round(scale * 2)))
        y += th
        text(img, words, ((w - tw) // 2, y), scale, color)
        y += int(th * 0.9)


def card(size: tuple[int, int], lines: list[tuple[str, float, tuple]], color=CARD) -> np.ndarray:
    w, h = size
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = color
    k = h / 1080
    centred(img, [(t, s * k, c) for t, s, c in lines], 0.36)
    return img


class Curve:
    """The run's learning curve in a box, drawn up to a step with a marker there."""

    def __init__(
        self,
        steps: np.ndarray,
        values: np.ndarray,
        train_steps: np.ndarray,
        train_values: np.ndarray,
        human: float | None,
        last_step: int,
    ):
        self.steps, self.values = steps.astype(np.float64), values.astype(np.float64)
        self.train_steps = train_steps.astype(np.float64)
        self.train_values = train_values.astype(np.float64)
        every = np.concatenate([self.values, self.train_values])
        low, high = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
        if human is not None and low <= human <= high + 0.5 * (high - low + 1):
            high = max(high, human)
        else:
            human = None
        self.data_low, self.data_high = low, high
        pad = 0.06 * (high - low) or 1.0
        self.low, self.high, self.human = low - pad, high + pad, human
        self.last_step = max(1, last_step, int(steps.max()) if steps.size else 1)

    def _xy(self, box: Box, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
        x = box.x + steps / self.last_step * box.w
        y = box.y + box.h - (values - self.low) / (self.high - self.low) * box.h
        return np.stack([x, y], axis=1).round().astype(np.int32)

    def draw(self, img: np.ndarray, box: Box, upto: int) -> None:
        k = img.shape[0] / 1080
        cv2.rectangle(img, (box.x, box.y), (box.x + box.w, box.y + box.h), DIM, 1)
        for value in (self.data_low, self.data_high):
            label = f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"
            y = self._xy(box, np.array([0.0]), np.array([value]))[0][1]
            text(img, label, (box.x - int(70 * k), y + int(8 * k)), 0.55 * k, DIM)
        text(img, "0", (box.x, box.y + box.h + int(30 * k)), 0.55 * k, DIM)
        end = f"{format_steps(self.last_step)} steps"
        text(
            img,
            end,
            (box.x + box.w - text_width(end, 0.55 * k), box.y + box.h + int(30 * k)),
            0.55 * k,
            DIM,
        )
        if self.human is not None:
            y = int(self._xy(box, np.array([0.0]), np.array([self.human]))[0][1])
            for x in range(box.x, box.x + box.w, int(24 * k) or 1):
                cv2.line(img, (x, y), (min(x + int(12 * k), box.x + box.w), y), HUMAN, 2)
            text(img, "human", (box.x + int(8 * k), y - int(8 * k)), 0.55 * k, HUMAN)
        shown_train = self.train_steps <= upto
        if shown_train.sum() > 1:
            pts = self._xy(box, self.train_steps[shown_train], self.train_values[shown_train])
            cv2.polylines(img, [pts], False, TRAIN, max(1, round(2 * k)), cv2.LINE_AA)
        shown = self.steps <= upto
        if shown.any():
            pts = self._xy(box, self.steps[shown], self.values[shown])
            cv2.polylines(img, [pts], False, CURVE, max(2, round(4 * k)), cv2.LINE_AA)
            cv2.circle(img, tuple(int(v) for v in pts[-1]), max(4, round(10 * k)), MARKER, -1)
        x = int(box.x + min(upto, self.last_step) / self.last_step * box.w)
        cv2.line(img, (x, box.y), (x, box.y + box.h), MARKER, 1)
        y = box.y + box.h + int(70 * k)
        for color, words, at in ((CURVE, "evaluation", 0), (TRAIN, "training episodes", 0.45)):
            x = box.x + int(at * box.w)
            cv2.line(img, (x, y - int(8 * k)), (x + int(40 * k), y - int(8 * k)), color, 4)
            text(img, words, (x + int(52 * k), y), 0.6 * k, DIM)


class Stage:
    """The layout of a gameplay frame: the game on the left, the panel on the right."""

    def __init__(self, size: tuple[int, int]):
        self.size = w, h = size
        m = int(0.04 * h)
        self.game = Box(m, m, int(w * 0.46) - m, h - 2 * m)
        px = int(w * 0.5)
        self.panel = Box(px, m, w - px - m, h - 2 * m)
        self._fit: dict[tuple[int, int, Box], tuple[Box, tuple[int, int]]] = {}

    def backdrop(self, curve: Curve, step: int, heading: str, lines: list[str]) -> np.ndarray:
        w, h = self.size
        k = h / 1080
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = BACKGROUND
        p = self.panel
        y = p.y + int(60 * k)
        text(img, heading, (p.x, y), fit_scale(heading, 1.3 * k, p.w), TEXT)
        for line in lines:
            y += int(58 * k)
            text(img, line, (p.x, y), fit_scale(line, 1.0 * k, p.w), DIM)
        top = y + int(60 * k)
        left = int(80 * k)
        box = Box(p.x + left, top, p.w - left, p.y + p.h - top - int(90 * k))
        curve.draw(img, box, step)
        return img

    def place(self, canvas: np.ndarray, frame: np.ndarray, box: Box | None = None) -> None:
        """Scale a game frame into ``box`` (the game's, by default), centred, in place."""
        box = box or self.game
        fh, fw = frame.shape[:2]
        key = (fw, fh, box)
        if key not in self._fit:
            scale = min(box.w / fw, box.h / fh)
            nw, nh = max(1, int(fw * scale)), max(1, int(fh * scale))
            self._fit[key] = (
                Box(box.x + (box.w - nw) // 2, box.y + (box.h - nh) // 2, nw, nh),
                (nw, nh),
            )
        at, (nw, nh) = self._fit[key]
        canvas[at.y : at.y + nh, at.x : at.x + nw] = cv2.resize(
            frame, (nw, nh), interpolation=cv2.INTER_NEAREST
        )

    def grid_boxes(self) -> list[Box]:
        """Four cells, each with room for a label under the game."""
        w, h = self.size
        m = int(0.02 * h)
        label = int(0.05 * h)
        cw, ch = (w - 3 * m) // 2, (h - 3 * m) // 2
        return [
            Box(m + c * (cw + m), m + r * (ch + m), cw, ch - label) for r in (0, 1) for c in (0, 1)
        ]

    def grid_backdrop(self, labels: list[str]) -> np.ndarray:
        w, h = self.size
        k = h / 1080
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = BACKGROUND
        for box, label in zip(self.grid_boxes(), labels, strict=True):
            scale = fit_scale(label, 0.9 * k, box.w)
            text(
                img,
                label,
                (box.x + (box.w - text_width(label, scale)) // 2, box.y + box.h + int(40 * k)),
                scale,
                TEXT,
            )
        return img
