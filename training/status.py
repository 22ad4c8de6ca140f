"""The trainer's progress document (status.json), written atomically and throttled.

This is the only writer of status.json. Writes happen at most once per ``interval`` seconds
from the training loop (a few hundred microseconds each), so tracking stays off the hot path.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections import deque
from importlib import metadata

import psutil

from runstore.models import TrainStatus
from runstore.paths import RunPaths
from runstore.store import read_status_file, write_status_file

#: The distributions whose versions status.json names (what a result depends on).
VERSIONED = ("stable-baselines3", "torch", "gymnasium", "ale-py", "numpy")


def versions() -> dict[str, str]:
    """Python's version and each installed VERSIONED distribution's."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


class StatusWriter:
    def __init__(self, paths: RunPaths, interval: float = 1.0):
        self.path = paths.status_json
        self.interval = interval
        previous = read_status_file(self.path)
        self.status = TrainStatus(
            pid=os.getpid(),
            create_time=psutil.Process().create_time(),
            started_at=time.time(),
            best_episode_return=previous.best_episode_return if previous else None,
            episodes=previous.episodes if previous else 0,
            versions=versions(),
        )
        self.train_seconds_before = previous.train_seconds if previous else 0.0
        self._session_start = time.monotonic()
        self._next_write = 0.0
        self._window: deque[tuple[float, int]] = deque(maxlen=32)
        self._returns: deque[float] = deque(maxlen=100)

    @property
    def train_seconds(self) -> float:
        """Training time across every session of this run (a resumed run keeps counting)."""
        return self.train_seconds_before + time.monotonic() - self._session_start

    def episode(self, episode_return: float) -> None:
        s = self.status
        s.episodes += 1
        s.last_episode_return = episode_return
        if s.best_episode_return is None or episode_return > s.best_episode_return:
            s.best_episode_return = episode_return
        self._returns.append(episode_return)

    def tick(self, timesteps: int) -> None:
        """Called every step; writes only when the interval has passed."""
        now = time.monotonic()
        if now >= self._next_write:
            self._next_write = now + self.interval
            self._window.append((now, timesteps))
            self.write(timesteps)

    def write(self, timesteps: int | None = None, **fields: object) -> None:
        s = self.status
        if timesteps is not None:
            s.timesteps = timesteps
        if len(self._window) >= 2:
            (t0, n0), (t1, n1) = self._window[0], self._window[-1]
            if t1 > t0:
                s.fps = round((n1 - n0) / (t1 - t0), 1)
        if self._returns:
            s.mean_return_100 = sum(self._returns) / len(self._returns)
        for key, value in fields.items():
            setattr(s, key, value)
        s.train_seconds = round(self.train_seconds, 3)
        s.heartbeat_at = time.time()
        write_status_file(self.path, s)
