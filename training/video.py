"""Write evaluation clips: mp4, H.264, yuv420p, full-colour game frames, bounded length.

H.264 in yuv420p is what every browser plays; imageio-ffmpeg ships its own ffmpeg binary, so
no system ffmpeg is needed. Small game frames (Atari's 160x210) are scaled up by a whole
factor with nearest-neighbour sampling, so pixels stay sharp and the overlay stays legible.
The overlay is a strip under the game (it never hides the game's own score): run name,
training step, episode, and the episode's score so far (real game points, unclipped).
No torch here: the runner's time-lapse command imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from runstore.units import format_steps
from runstore.videos import Clip, ClipMeta, publish, temp_path

MIN_SIDE = 320  # frames smaller than this are scaled up by a whole factor
MAX_SIDE = 960  # and larger ones scaled down, which bounds the file size with the frame count
STRIP_HEIGHT = 40
CRF = "26"  # x264 quality: visually clean for game frames, a few hundred kB per minute


def open_mp4(path: Path, fps: float) -> imageio.core.format.Format.Writer:
    """An H.264/yuv420p writer; frames must have even width and height."""
    return imageio.get_writer(
        str(path),
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=1,
        quality=None,
        ffmpeg_log_level="error",
        output_params=["-crf", CRF, "-preset", "veryfast", "-movflags", "+faststart"],
    )


def fit_frame(frame: np.ndarray) -> np.ndarray:
    """RGB uint8, scaled into [MIN_SIDE, MAX_SIDE] and cropped to even sides."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    frame = frame[:, :, :3].astype(np.uint8, copy=False)
    h, w = frame.shape[:2]
    if max(h, w) < MIN_SIDE:
        k = -(-MIN_SIDE // max(h, w))
        frame = np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
    elif max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        frame = cv2.resize(frame, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])


def draw_text(
    image: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, thickness: int = 1
) -> None:
    cv2.putText(
        image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA
    )


@dataclass
class Overlay:
    run_name: str
    step: int

    def apply(self, frame: np.ndarray, episode: int, score: float) -> np.ndarray:
        h, w = frame.shape[:2]
        out = np.zeros((h + STRIP_HEIGHT, w, 3), dtype=np.uint8)
        out[:h] = frame
        scale = 0.42 if w < 400 else 0.5
        draw_text(out, f"{self.run_name}  step {format_steps(self.step)}", (6, h + 16), scale)
        draw_text(out, f"episode {episode}   score {score:g}", (6, h + 34), scale)
        return out


class ClipWriter:
    """Frames in, a published clip out; holds at most ``max_frames`` frames."""

    def __init__(self, final: Path, fps: float, max_frames: int, overlay: Overlay | None):
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.tmp = temp_path(final)
        self.fps = fps
        self.max_frames = max_frames
        self.overlay = overlay
        self.frames = 0
        self.size = (0, 0)
        self._writer = open_mp4(self.tmp, fps)

    @property
    def full(self) -> bool:
        return self.frames >= self.max_frames

    def add(self, frame: np.ndarray, episode: int = 1, score: float = 0.0) -> None:
        if self.full:
            return
        image = fit_frame(frame)
        if self.overlay is not None:
            image = self.overlay.apply(image, episode, score)
        self.size = (image.shape[1], image.shape[0])
        self._writer.append_data(image)
        self.frames += 1

    def close(self, meta: ClipMeta) -> Clip:
        self._writer.close()
        meta.frames, meta.fps = self.frames, self.fps
        meta.width, meta.height = self.size
        return publish(self.tmp, self.final, meta)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)
