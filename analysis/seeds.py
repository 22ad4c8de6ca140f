"""Runs that differ only by seed, as one curve: the mean with a 95% bootstrap confidence band,
and the interquartile mean (IQM) once there are enough seeds.

Why these: Agarwal et al. 2021 ("Deep Reinforcement Learning at the Edge of the Statistical
Precipice", NeurIPS; the rliable library) show that a handful of seeds needs interval
estimates, not a bare mean, and recommend the IQM (the mean of the middle 50%) as robust to a
single outlier seed. The bootstrap resamples seeds (runs), not points, with a fixed seed so
that the same runs always draw the same band.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.stats import iqm

#: IQM is shown from this many seeds on; with 4 it is the mean of the middle two.
IQM_MIN_SEEDS = 4
#: Keys of a resolved config that do not make runs different experiments (a sweep trial's
#: seeds differ in ``sweep.seed_index`` too; its id and trial number still tell trials apart).
SEED_KEYS = ("seed", "name")
SWEEP_SEED_KEY = "seed_index"


def unique_label(label: str, seen: set[str]) -> str:
    """``label``, or ``label #2``, ``#3``... when an earlier group took it (two groups of
    runs with one name); the label returned is added to ``seen``."""
    found, k = label, 2
    while found in seen:
        found, k = f"{label} #{k}", k + 1
    seen.add(found)
    return found


def group_key(config: dict[str, Any] | Any) -> str:
    """A key equal for runs whose resolved configs differ only by seed and name (and, for a
    sweep trial's runs, the seed's index in the trial).

    :param config: a resolved ``RunConfig`` or its dict (``model_dump(mode="json")``).
    """
    doc = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    for key in SEED_KEYS:
        doc.pop(key, None)
    if isinstance(doc.get("sweep"), dict):
        doc["sweep"] = {k: v for k, v in doc["sweep"].items() if k != SWEEP_SEED_KEY}
    return json.dumps(doc, sort_keys=True, default=str)


@dataclass(frozen=True)
class GroupCurve:
    """A seed group on a common x grid (every array has the grid's length)."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray  # lower end of the confidence band of the mean
    high: np.ndarray
    iqm: np.ndarray | None  # None below IQM_MIN_SEEDS seeds
    n_seeds: int


def bootstrap_mean_ci(
    values: np.ndarray, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over axis 0 (seeds), per column.

    Resamples whole seeds with replacement ``n_boot`` times from ``np.random.default_rng(seed)``.
    One seed gives a zero-width band (nothing to resample).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    n = v.shape[0]
    if n == 0:
        raise ValueError("bootstrap of an empty group: pass at least one run's values")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_boot, n))
    means = v[picks].mean(axis=1)  # (n_boot, columns)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return low, high


def aggregate_seeds(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    n_points: int = 400,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> GroupCurve:
    """Mean, bootstrap band and IQM of several runs' curves on a shared x grid.

    Each curve (x ascending, y) is linearly interpolated onto ``n_points`` evenly spaced x
    values spanning the range every run covers (from the latest first x to the earliest last
    x): no run is extrapolated, so a seed that stopped early shortens the group curve rather
    than biasing it.
    """
    usable = []
    for x, y in curves:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            usable.append((x[ok], y[ok]))
    if not usable:
        empty = np.zeros(0)
        return GroupCurve(empty, empty, empty, empty, None, 0)
    start = max(float(x[0]) for x, _ in usable)
    stop = min(float(x[-1]) for x, _ in usable)
    if stop < start:
        empty = np.zeros(0)
        return GroupCurve(empty, empty, empty, empty, None, len(usable))
    grid = np.linspace(start, stop, n_points) if stop > start else np.array([start])
    table = np.stack([np.interp(grid, x, y) for x, y in usable])
    low, high = bootstrap_mean_ci(table, confidence, n_boot, seed)
    robust = iqm(table) if len(usable) >= IQM_MIN_SEEDS else None
    return GroupCurve(grid, table.mean(axis=0), low, high, robust, len(usable))
