"""Benchmark: composing a journey video against encoding the same gameplay bare (issue 18).

    python bench/bench_journey.py                   # a 10-minute 720p journey of a fresh run
    python bench/bench_journey.py --seconds 120     # shorter
    python bench/bench_journey.py --run RUNS/ID     # of an existing run (its clips only)

Without ``--run``, a short Pong run is trained first (1,024 steps, a filmed evaluation every
256), so the clips are real game footage. Then, in this process, one after the other:

- **journey**: ``journey.make.make_journey`` (the media job's work, no recording: the clips
  are played again to fill the length), everything included: the story, the plan, the
  cards, the learning-curve panel, the 2x2 grid, decoding and encoding;
- **bare**: the same plan's frames with no overlay: each frame is the game frame decoded
  from the same clip and scaled into the same place on a black canvas (cards are black),
  through the same encoder settings. That is the encoder's and decoders' own ceiling.

Printed: seconds of finished video per second of work for each, and their ratio (goal: the
journey costs at most 1.5x the bare encode).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from journey import compose  # noqa: E402
from journey.encode import encode  # noqa: E402
from journey.frames import Stage  # noqa: E402
from journey.make import make_journey, plan_journey  # noqa: E402
from journey.plan import Plan  # noqa: E402
from reports.facts import read_run_facts  # noqa: E402
from runstore.config import parse_config  # noqa: E402
from runstore.store import RunStore  # noqa: E402
from runstore.videos import JOURNEY_SIZES  # noqa: E402

PONG = """\
algo: ppo
env: ALE/Pong-v5
n_timesteps: 1024
seed: 1
eval_every: 256
video_every: 256
eval_episodes: 1
checkpoint_every: 100000
video_length: 300
hyperparams:
  n_envs: 2
  n_steps: 64
  batch_size: 64
  n_epochs: 1
  env_kwargs: {max_num_frames_per_episode: 2000}
"""


def train_pong(root: Path) -> tuple[RunStore, str]:
    store = RunStore(root)
    store.ensure_layout()
    path = store.submit(PONG, "pong.yaml")
    record = store.accept(path, parse_config(path.read_bytes()))
    assert record is not None
    subprocess.run(
        [sys.executable, "-m", "training", str(store.paths(record.id).dir)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return store, record.id


def bare_frames(plan: Plan, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The plan's frames with nothing drawn: game frames scaled into place, black cards."""
    stage = Stage(size)
    black = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    for section in plan.sections:
        if section.kind in ("title", "card"):
            for _ in range(section.frames):
                yield black
        elif section.kind == "play":
            for piece in section.pieces:
                frames = compose.ClipFrames(piece.clip.path)
                ratio = frames.fps / plan.fps
                for j in range(piece.frames):
                    stage.place(black, frames.at(piece.start + int(j * ratio)))
                    yield black
                frames.close()
        else:
            cells = [compose.ClipFrames(c.path) for c in section.grid]
            boxes = stage.grid_boxes()
            for j in range(section.frames):
                for cell, box in zip(cells, boxes, strict=True):
                    stage.place(black, cell.at(int(j * cell.fps / plan.fps)), box)
                yield black
            for cell in cells:
                cell.close()


def timed(fn) -> tuple[float, float]:  # noqa: ANN001
    """Wall seconds and CPU seconds (this process and its finished children: ffmpeg)."""
    cpu0 = os.times()
    wall0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="journey length (600)")
    parser.add_argument("--size", type=int, default=720, choices=sorted(JOURNEY_SIZES))
    parser.add_argument("--fps", type=int, default=30, choices=(30, 60))
    parser.add_argument("--run", type=Path, help="an existing run folder (else a Pong run)")
    args = parser.parse_args(argv)
    size = JOURNEY_SIZES[args.size]
    print(
        f"journey of {args.seconds:g} s at {size[0]}x{size[1]} {args.fps} fps; cpu count "
        f"{os.cpu_count()}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-journey-") as name:
        if args.run:
            run_dir = args.run.absolute()
            store, run_id = RunStore(run_dir.parent), run_dir.name
        else:
            started = time.perf_counter()
            store, run_id = train_pong(Path(name) / "runs")
            print(f"trained a 1,024-step Pong run in {time.perf_counter() - started:.0f} s")
        facts = read_run_facts(store, run_id)
        _chapters, _grid, plan = plan_journey(facts, args.seconds, args.fps)
        clips = {p.clip.path for s in plan.sections for p in s.pieces}
        replayed = plan.looped / args.fps
        print(f"{len(clips)} clips; {plan.frames:,} frames; {replayed:.0f} s replayed")
        out = Path(name) / "bare.mp4"
        bare = timed(lambda: encode(bare_frames(plan, size), out, size, args.fps))
        journey = timed(
            lambda: make_journey(
                store, run_id, args.seconds, height=args.size, fps=args.fps, record_more=False
            )
        )
    video = plan.frames / args.fps
    print(f"{'':10} {'wall s':>8} {'cpu s':>8} {'video s per s':>14}")
    for label, (wall, cpu) in (("bare", bare), ("journey", journey)):
        print(f"{label:10} {wall:8.1f} {cpu:8.1f} {video / wall:14.2f}")
    ratio = journey[0] / bare[0]
    print(f"journey / bare (wall): {ratio:.2f}x  (goal: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
