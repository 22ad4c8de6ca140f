"""How long a run will take, or how far a time budget gets it, from the speed measured in
earlier runs of the same game, algorithm and device in this runs folder (pure functions)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from dashboard.data import RunRow
from dashboard.fmt import duration
from runstore.units import format_steps


@dataclass(frozen=True)
class Estimate:
    fps: float | None
    runs: int
    seconds: float | None
    steps: int | None
    text: str


def measured_fps(rows: Iterable[RunRow], env: str, algo: str, device: str) -> tuple[float, int]:
    """Median steps/s of earlier runs of (env, algo) on ``device`` (``auto`` matches any)."""
    speeds = [
        r.fps
        for r in rows
        if r.env == env
        and r.algo == algo
        and r.fps
        and (device == "auto" or r.device.split(":")[0] == device.split(":")[0])
    ]
    if not speeds:
        return 0.0, 0
    return statistics.median(speeds), len(speeds)


def estimate(
    rows: Iterable[RunRow],
    env: str,
    algo: str,
    device: str,
    n_timesteps: int,
    time_budget: float | None,
) -> Estimate:
    fps, count = measured_fps(rows, env, algo, device)
    if count == 0:
        return Estimate(
            None,
            0,
            None,
            None,
            f"No earlier {algo.upper()} run on {env} ({device}) in this runs folder to measure "
            "speed from; a short run gives the form a number for next time.",
        )
    basis = f"at {fps:,.0f} steps/s, the median of {count} earlier run(s) on {device}"
    full = n_timesteps / fps
    if time_budget is not None and time_budget < full:
        reached = int(fps * time_budget)
        return Estimate(
            fps,
            count,
            time_budget,
            reached,
            f"The time budget ({duration(time_budget)}) ends first: about "
            f"{format_steps(reached)} of {format_steps(n_timesteps)} steps, {basis}.",
        )
    return Estimate(
        fps,
        count,
        full,
        n_timesteps,
        f"About {duration(full)} for {format_steps(n_timesteps)} steps, {basis}.",
    )
