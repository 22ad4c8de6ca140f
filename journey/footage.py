"""More gameplay when the clips on disk are too short for the length asked: clips recorded
from the run's checkpoints that have none yet, spread over the run.

Each is ``python -m training.record RUN_DIR --checkpoint step-N`` (the runner's own record
job), a child of this job and in its process group, so cancelling the journey ends it too.
Recording loads a checkpoint, so an imported run that was not trusted records nothing
(``training.record`` exits 3): the journey then plays its clips again instead.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from runstore import checkpoints
from runstore.videos import Clip

log = logging.getLogger("journey")

#: Most clips one journey records: beyond this the footage is played again.
MAX_RECORDINGS = 12
#: ``training.record``'s exit code for a run whose checkpoints are not signed here.
NOT_TRUSTED = 3
RECORD_TIMEOUT = 600.0


def checkpoints_to_record(
    checkpoints_dir: Path, clips: Sequence[Clip], missing_frames: int, frames_per_clip: float
) -> list[str]:
    """The checkpoint names to record from: as many as the missing footage needs (at about
    ``frames_per_clip`` each, at most MAX_RECORDINGS), of those with no clip at their step,
    spread evenly over the run."""
    if missing_frames <= 0 or frames_per_clip <= 0:
        return []
    filmed = {c.step for c in clips}
    free = sorted(
        (c for c in checkpoints.list_checkpoints(checkpoints_dir) if c.step not in filmed),
        key=lambda c: c.step,
    )
    wanted = min(len(free), MAX_RECORDINGS, math.ceil(missing_frames / frames_per_clip))
    if wanted <= 0:
        return []
    idx = sorted(set(np.linspace(0, len(free) - 1, wanted).round().astype(int).tolist()))
    return [free[i].dir.name for i in idx]


def record(
    run_dir: Path, names: Sequence[str], on_each: Callable[[int], None] | None = None
) -> int:
    """Record one clip from each named checkpoint; returns how many were made. Stops at the
    first refusal for trust (the others would be refused too). Interrupted (the journey is
    cancelled), the recording is killed and its unfinished file removed."""
    made = 0
    for i, name in enumerate(names):
        if on_each is not None:
            on_each(i)
        code, last = _record_one(run_dir, name)
        if code == 0:
            made += 1
            continue
        log.warning("could not record from %s: %s", name, last or f"exit {code}")
        if code == NOT_TRUSTED:
            break
    return made


def _record_one(run_dir: Path, name: str) -> tuple[int | None, str]:
    """``training.record`` from one checkpoint: its exit code (None: timed out) and last line."""
    cmd = [sys.executable, "-m", "training.record", str(run_dir), "--checkpoint", name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=RECORD_TIMEOUT)
    except BaseException:  # timed out, or cancelled: no half-written clip stays behind
        proc.kill()
        proc.wait()
        for tmp in (run_dir / "videos").glob(f".tmp-{proc.pid}-*"):
            tmp.unlink(missing_ok=True)
        if sys.exc_info()[0] is subprocess.TimeoutExpired:
            return None, f"took over {RECORD_TIMEOUT:.0f} s"
        raise
    lines = out.strip().splitlines()
    return proc.returncode, lines[-1] if lines else ""
