"""The journey's encoder: H.264 in yuv420p (every browser plays it), with the moov atom at
the front (it starts playing before it is all downloaded), through the ffmpeg binary that
imageio-ffmpeg ships. ffmpeg picks its thread count from the machine's cores."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import imageio_ffmpeg
import numpy as np

#: x264 quality and speed: clean game pixels at a few MB a minute, fast enough that
#: composing a 10-minute 720p journey takes a few minutes on two cores.
CRF = "23"
PRESET = "veryfast"
#: Progress is reported at most this often (in frames), whatever the length.
REPORT_EVERY = 30


def encode(
    frames: Iterable[np.ndarray],
    path: Path,
    size: tuple[int, int],
    fps: float,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``frames`` (RGB, ``size`` = width x height) to ``path``; returns their count."""
    writer = imageio_ffmpeg.write_frames(
        str(path),
        size,
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=2,
        ffmpeg_log_level="error",
        output_params=["-crf", CRF, "-preset", PRESET, "-movflags", "+faststart"],
    )
    writer.send(None)  # start ffmpeg
    count = 0
    try:
        for frame in frames:
            writer.send(frame)
            count += 1
            if on_progress is not None and count % REPORT_EVERY == 0:
                on_progress(count)
    finally:
        writer.close()
    return count
