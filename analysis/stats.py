"""The statistics a comparison reports, by the methods RL papers use (Agarwal et al. 2021,
"Deep RL at the edge of the statistical precipice", the ``rliable`` package).

Scores are a matrix of runs (seeds) by tasks (games); one game is one column. Aggregates are
``rliable``'s: the mean, and the interquartile mean (IQM: the mean of the middle half of all
run-by-task scores, ``scipy.stats.trim_mean(scores, 0.25, axis=None)``); the median is the
median of all scores (``rliable``'s is the median of the per-task means, which for one game
is the mean). Intervals come from the stratified bootstrap: runs resampled with replacement
within each task, so a game with few runs is not swamped by one with many, and percentile
intervals over the resampled aggregates.

The probability of improvement P(X > Y) is the Mann-Whitney U statistic over all pairs of
runs, averaged over tasks (ties count a half), as ``rliable.metrics.probability_of_improvement``
computes it. Welch's t-test and the Mann-Whitney U test come from SciPy. ``rliable`` itself
is not a dependency: its ``library`` module needs ``arch``, which does not import under
pandas 3; the tests check these functions against SciPy and against figures ``rliable`` 1.2.0
computed on fixed data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

#: Below this many runs per group a comparison says that it cannot conclude much: with 3 runs
#: a 95% interval spans most of the range the scores could take (Agarwal et al. 2021, fig. 1).
MIN_RUNS = 5
#: Bootstrap resamples: 2,000 keeps a 95% interval's ends within about 1% of their limit.
REPS = 2_000

Aggregate = Callable[[np.ndarray], np.ndarray]


def scores_matrix(values: object) -> np.ndarray:
    """Runs by tasks as float64: a flat list is one task's runs. Empty or non-finite scores
    raise ValueError naming the problem (a run with no evaluation has no score to compare)."""
    m = np.asarray(values, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"scores must be runs x tasks with at least one of each, not {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("scores must be finite: drop runs with no final evaluation first")
    return m


def iqm(values: object, axis: int | None = 0) -> np.ndarray:
    """Interquartile mean: drop the lowest and highest 25% (rounded down), average the rest;
    ``axis=None`` over every value, as ``rliable.metrics.aggregate_iqm``."""
    v = np.asarray(values, dtype=np.float64)
    if axis is None:
        v, axis = v.reshape(-1), 0
    v = np.sort(v, axis=axis)
    n = v.shape[axis]
    cut = int(0.25 * n)
    return np.take(v, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


#: name -> aggregate of a (runs, tasks) matrix, or of a stack (reps, runs, tasks) of them.
AGGREGATES: dict[str, Aggregate] = {
    "mean": lambda s: s.mean(axis=(-2, -1)),
    "median": lambda s: np.median(s.reshape(*s.shape[:-2], -1), axis=-1),
    "iqm": lambda s: iqm(s.reshape(*s.shape[:-2], -1), axis=-1),
}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval."""

    point: float
    low: float
    high: float


def stratified_resamples(scores: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """``reps`` resampled copies of a (runs, tasks) matrix, shape (reps, runs, tasks): each
    task's runs drawn with replacement from that task's own runs."""
    runs, tasks = scores.shape
    picks = np.random.default_rng(seed).integers(0, runs, size=(reps, runs, tasks))
    return np.take_along_axis(np.broadcast_to(scores, (reps, runs, tasks)), picks, axis=1)


def estimate(
    values: object, aggregate: str = "mean", confidence: float = 0.95, reps: int = REPS,
    seed: int = 0,
) -> Interval:  # fmt: skip
    """An aggregate of the scores with its stratified-bootstrap percentile interval."""
    scores = scores_matrix(values)
    fn = AGGREGATES[aggregate]
    return _interval(fn(scores), fn(stratified_resamples(scores, reps, seed)), confidence)


def _interval(point: object, boot: np.ndarray, confidence: float) -> Interval:
    """The point with the percentile interval of its bootstrap replicates."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return Interval(float(point), float(low), float(high))


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 per stacked pair of (..., runs, tasks) matrices, averaged over
    tasks."""
    greater = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    ties = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (greater + 0.5 * ties).mean(axis=-1)


def probability_of_improvement(
    x: object, y: object, confidence: float = 0.95, reps: int = REPS, seed: int = 0
) -> Interval:
    """P(a run of X scores above a run of Y), with a stratified-bootstrap interval (X and Y
    resampled independently). 0.5: no difference; Agarwal et al. call a lower bound above 0.5
    a statistically meaningful improvement."""
    a, b = scores_matrix(x), scores_matrix(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"X has {a.shape[1]} tasks and Y {b.shape[1]}: compare the same games")
    boot = _improvement(
        stratified_resamples(a, reps, seed), stratified_resamples(b, reps, seed + 1)
    )
    return _interval(_improvement(a, b), boot, confidence)


@dataclass(frozen=True)
class Tests:
    """Two groups' final scores (one task) under the classical tests, and whether there are
    enough runs to read them."""

    welch_t: float
    welch_p: float
    mann_whitney_u: float
    mann_whitney_p: float
    warning: str


def two_sample_tests(x: object, y: object) -> Tests:
    """Welch's t-test (unequal variances) and the two-sided Mann-Whitney U test of one task's
    scores; ``warning`` says when either group has fewer than MIN_RUNS runs."""
    a, b = scores_matrix(x), scores_matrix(y)
    if a.shape[1] != 1 or b.shape[1] != 1:
        raise ValueError("the two-sample tests compare one game's scores: pass one column each")
    a, b = a[:, 0], b[:, 0]
    warning = ""
    if min(len(a), len(b)) < MIN_RUNS:
        warning = (
            f"{len(a)} and {len(b)} runs: with fewer than {MIN_RUNS} runs a group the p-values "
            "and intervals say little; run more seeds before concluding"
        )
    if len(a) < 2 or len(b) < 2:
        nan = float("nan")
        return Tests(nan, nan, nan, nan, warning or "a group of one run cannot be tested")
    welch = sps.ttest_ind(a, b, equal_var=False)
    mwu = sps.mannwhitneyu(a, b, alternative="two-sided")
    return Tests(
        float(welch.statistic), float(welch.pvalue), float(mwu.statistic), float(mwu.pvalue),
        warning,
    )  # fmt: skip
