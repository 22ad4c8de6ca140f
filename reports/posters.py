"""A clip's poster frame for a report: one PNG from the middle of the mp4, inline, so the
report shows what the agent did without holding the video.

The frame comes from the ffmpeg binary that ``imageio-ffmpeg`` ships (a dependency already:
no system ffmpeg), run as a subprocess with a timeout and a size cap; the report process
never decodes video itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

#: A poster is a small PNG; anything bigger than this is not one.
MAX_POSTER_BYTES = 2_000_000
TIMEOUT_S = 20.0
WIDTH = 240


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # its binary is missing on this platform
        return None


def poster_png(clip: Path, at_seconds: float) -> bytes | None:
    """One frame of ``clip`` at ``at_seconds`` scaled to WIDTH pixels wide, as PNG bytes;
    None when there is no ffmpeg or the clip gives no frame (damaged, shorter)."""
    exe = _ffmpeg()
    if exe is None:
        return None
    command = [
        exe, "-nostdin", "-loglevel", "error", "-ss", f"{max(at_seconds, 0.0):.2f}",
        "-i", str(clip), "-frames:v", "1", "-vf", f"scale={WIDTH}:-2",
        "-f", "image2pipe", "-vcodec", "png", "-",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout
    if done.returncode != 0 or not out.startswith(b"\x89PNG") or len(out) > MAX_POSTER_BYTES:
        return None
    return out
