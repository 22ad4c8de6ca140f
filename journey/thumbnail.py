"""The journey's thumbnail: 1280x720, the best game's middle frame and its score, large."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from journey import frames as draw
from journey.compose import ClipFrames
from runstore.atomic import atomic_write_bytes
from runstore.units import format_score
from runstore.videos import Clip

SIZE = (1280, 720)


def thumbnail(clip: Clip, game: str, frame_count: int) -> np.ndarray:
    """The picture, RGB."""
    frames = ClipFrames(clip.path)
    try:
        picture = frames.at(max(0, frame_count // 2)).copy()
    finally:
        frames.close()
    stage = draw.Stage(SIZE)
    w, h = SIZE
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = draw.BACKGROUND
    stage.place(img, picture)
    x = stage.panel.x
    lines = [
        (f"AI learns {game}", 1.5, draw.TEXT, 150),
        ("SCORE", 1.4, draw.DIM, 330),
        (f"{format_score(clip.score)}", 4.0, draw.HUMAN, 470),
    ]
    for words, scale, color, y in lines:
        draw.text(img, words, (x, y), draw.fit_scale(words, scale, stage.panel.w), color)
    return img


def write_png(image: np.ndarray, path: Path) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path.name}")
    atomic_write_bytes(path, data.tobytes())
