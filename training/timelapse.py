"""``python -m training.timelapse RUN_DIR``: one shareable mp4 of a whole run's clips.

The run's evaluation clips in step order, each after a title card (step, evaluation return),
into ``videos/timelapse.mp4``. The length is bounded whatever the run's length: at most
``MAX_MILESTONES`` clips (spread evenly over the run, the last one always in), and each clip
sped up by dropping frames so the whole fits in ``max_seconds``. No torch: the runner's
``timelapse`` command runs this in-process. It reads the clips (mp4) and their JSON sidecars
only, never a checkpoint or any pickle, so it is allowed for an imported run that is not
trusted (viewing clips is; tests/test_trust.py holds it to that).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from runstore.atomic import atomic_write_json
from runstore.paths import RunPaths
from runstore.videos import TIMELAPSE_META, Clip, list_clips, temp_path, timelapse_path
from training.video import draw_text, fit_frame, format_steps, open_mp4

log = logging.getLogger(__name__)

MAX_SECONDS = 180.0
FPS = 30.0
CARD_SECONDS = 1.0
MAX_MILESTONES = 40


def pick_milestones(clips: list[Clip], limit: int = MAX_MILESTONES) -> list[Clip]:
    """At most ``limit`` clips, evenly spread over the run, first and last included."""
    if len(clips) <= limit:
        return clips
    idx = np.unique(np.linspace(0, len(clips) - 1, limit).round().astype(int))
    return [clips[i] for i in idx]


def title_card(size: tuple[int, int], clip: Clip, run_name: str) -> np.ndarray:
    w, h = size
    card = np.full((h, w, 3), 24, dtype=np.uint8)
    scale = max(0.5, w / 640)
    lines = [
        (run_name, 0.7 * scale),
        (f"step {format_steps(clip.step)}", 1.1 * scale),
        (f"evaluation return {clip.score:g}" if clip.score is not None else "", 0.8 * scale),
    ]
    y = int(h * 0.35)
    for text, s in lines:
        if text:
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, 2)
            draw_text(card, text, ((w - tw) // 2, y), s, 2)
            y += th + int(24 * scale)
    return card


def fit_to(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Letterbox a frame into ``size`` (clips of one run normally share a size already)."""
    w, h = size
    if frame.shape[1] == w and frame.shape[0] == h:
        return frame
    scale = min(w / frame.shape[1], h / frame.shape[0])
    nw, nh = max(2, int(frame.shape[1] * scale)), max(2, int(frame.shape[0] * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), dtype=np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y : y + nh, x : x + nw] = resized
    return out


def _append_clip(writer: object, clip: Clip, size: tuple[int, int], most: int) -> int:
    """Stream a clip into ``writer``, keeping at most ``most`` evenly spaced frames."""
    reader = imageio.get_reader(str(clip.path), format="FFMPEG")
    try:
        count = clip.meta.frames if clip.meta and clip.meta.frames else reader.count_frames()
        keep = set(np.linspace(0, count - 1, min(most, count)).round().astype(int).tolist())
        written = 0
        for i, frame in enumerate(reader):
            if i in keep:
                writer.append_data(fit_to(frame, size))  # type: ignore[attr-defined]
                written += 1
        return written
    finally:
        reader.close()


def make_timelapse(
    run_dir: Path, max_seconds: float | None = None, fps: float = FPS, run_name: str = ""
) -> Path:
    max_seconds = MAX_SECONDS if max_seconds is None else max_seconds
    paths = RunPaths(Path(run_dir).absolute())
    clips = [c for c in list_clips(paths.videos) if c.kind == "eval"]
    if not clips:
        raise FileNotFoundError(
            f"{paths.videos} has no evaluation clips yet; they appear every video_every steps"
        )
    clips = pick_milestones(clips)
    name = run_name or next((c.meta.run_name for c in clips if c.meta), "") or paths.id
    card_frames = int(CARD_SECONDS * fps)
    budget = int(max_seconds * fps) - card_frames * len(clips)
    per_clip = max(1, budget // len(clips))
    first = imageio.get_reader(str(clips[0].path), format="FFMPEG")
    size = fit_frame(first.get_data(0)).shape[1::-1]
    first.close()
    final = timelapse_path(paths.videos)
    tmp = temp_path(final)
    writer = open_mp4(tmp, fps)
    total = 0
    try:
        for clip in clips:
            card = title_card(size, clip, name)
            for _ in range(card_frames):
                writer.append_data(card)
            total += card_frames + _append_clip(writer, clip, size, per_clip)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    tmp.replace(final)
    atomic_write_json(
        paths.videos / TIMELAPSE_META,
        {"steps": [c.step for c in clips], "frames": total, "fps": fps, "seconds": total / fps},
    )
    log.info("time-lapse of %d clips: %s (%.0f s)", len(clips), final, total / fps)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.timelapse", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        print(make_timelapse(args.run_dir, args.max_seconds))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
