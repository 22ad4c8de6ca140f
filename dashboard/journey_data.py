"""Journey videos for the pages: a run's journeys, the job's progress, and the requests that
make or cancel one. The runner does the work (``runner/media.py`` starts ``python -m
journey``); everything here reads through ``runstore`` (``runstore.videos`` names the files)."""

from __future__ import annotations

import json
from pathlib import Path

from dashboard import actions, auth, data
from runstore import safeio
from runstore.videos import (
    JOURNEY_FPS,
    JOURNEY_SIZES,
    MAX_JOURNEY_SECONDS,
    MIN_JOURNEY_SECONDS,
    Journey,
    list_journeys,
)

#: The lengths the Run page offers first (any other can be typed).
LENGTHS = ("20s", "60s", "3m", "10m", "30m", "1h")
MAX_TEXT_BYTES = 256 * 2**10
MAX_IMAGE_BYTES = 8 * 2**20


def run_journeys(run_id: str) -> list[Journey]:
    try:
        return list_journeys(data.store().paths(run_id).videos)
    except OSError:
        return []


def progress(run_id: str) -> dict | None:
    """The running journey job's progress (phase, done, total), or None."""
    videos = data.store().paths(run_id).videos
    try:
        found = sorted(videos.glob(".journey-*.progress.json"))
    except OSError:
        return None
    for path in found:
        try:
            doc = json.loads(safeio.read_bytes(path, limit=4096))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            return doc
    return None


def text(path: Path) -> str:
    """A journey's chapters or description, through ``runstore.safeio``; "" if unreadable."""
    try:
        return safeio.read_bytes(path, limit=MAX_TEXT_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def image(path: Path) -> bytes | None:
    try:
        return safeio.read_bytes(path, limit=MAX_IMAGE_BYTES)
    except OSError:
        return None


def request_journey(run_id: str, seconds: float, size: int, fps: int, record: bool = True) -> Path:
    auth.require_control()
    if not MIN_JOURNEY_SECONDS <= seconds <= MAX_JOURNEY_SECONDS:
        raise ValueError(f"length must be {MIN_JOURNEY_SECONDS:g} s to {MAX_JOURNEY_SECONDS:g} s")
    if size not in JOURNEY_SIZES or fps not in JOURNEY_FPS:
        raise ValueError(f"size {size} or rate {fps} is not offered")
    params = {"seconds": seconds, "size": size, "fps": fps, "record": record}
    return actions.request(run_id, "journey", params)


def cancel(run_id: str) -> Path:
    return actions.request(run_id, "cancel-media")
