"""analysis.stats on fixed data, against SciPy and against figures rliable 1.2.0 computed on
the same data (rliable itself is not installed: see analysis/stats.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats

# 7 and 6 runs on 3 tasks: np.random.default_rng(17) normals, rounded to 2 places.
X = [
    [13.3, 11.02, 8.38], [6.22, 4.32, 10.06], [7.57, 7.38, 9.33], [9.84, 3.17, 12.78],
    [3.92, 15.58, 11.77], [8.58, 14.03, 10.06], [12.07, 10.32, 13.29],
]  # fmt: skip
Y = [
    [12.18, 6.28, 7.16], [10.03, 8.37, 2.15], [15.08, 2.48, 2.76], [5.17, 10.69, 14.39],
    [8.29, 7.83, 9.52], [7.9, 9.25, 5.58],
]  # fmt: skip


def test_aggregates_and_improvement_equal_rliables_on_fixed_data():
    # rliable.metrics.aggregate_iqm(X), aggregate_mean(X), probability_of_improvement(X, Y)
    assert stats.estimate(X, "iqm").point == pytest.approx(9.909090909090908, abs=1e-12)
    assert stats.estimate(X, "mean").point == pytest.approx(9.666190476190478, abs=1e-12)
    assert stats.probability_of_improvement(X, Y).point == pytest.approx(0.6111111111111112)
    # ties count a half: rliable gives 0.5416666666666666 for these
    tied = stats.probability_of_improvement([1.0, 2.0, 2.0, 5.0], [2.0, 3.0, 1.0])
    assert tied.point == pytest.approx(0.5416666666666666)


@pytest.mark.parametrize("n", range(1, 14))
def test_iqm_is_scipys_quarter_trimmed_mean(n: int):
    values = np.random.default_rng(n).normal(size=n)
    assert stats.iqm(values) == pytest.approx(sps.trim_mean(values, 0.25))
    assert stats.estimate(values, "median").point == pytest.approx(np.median(values))


def test_improvement_is_mann_whitney_u_over_all_pairs_and_complements():
    a, b = np.array(X)[:, 0], np.array(Y)[:, 0]
    u = sps.mannwhitneyu(a, b, alternative="two-sided").statistic
    assert stats.probability_of_improvement(a, b).point == pytest.approx(u / (len(a) * len(b)))
    forward = stats.probability_of_improvement(X, Y).point
    assert forward + stats.probability_of_improvement(Y, X).point == pytest.approx(1.0)


def test_one_task_interval_agrees_with_scipys_percentile_bootstrap():
    values = np.random.default_rng(3).normal(50.0, 10.0, size=12)
    ours = stats.estimate(values, "mean", reps=20_000)
    theirs = sps.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=20_000, random_state=1
    ).confidence_interval
    width = theirs.high - theirs.low
    assert ours.low == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.05 * width)
    assert ours.low < values.mean() < ours.high


def test_the_bootstrap_resamples_runs_within_each_task():
    # Every run scores the same within a task, tasks far apart: resampling within tasks can
    # never change the mean (a zero-width interval); pooling runs across tasks would.
    scores = np.tile([0.0, 100.0, 1000.0], (5, 1))
    interval = stats.estimate(scores, "mean")
    assert interval.low == interval.point == interval.high == pytest.approx(1100.0 / 3)
    resampled = stats.stratified_resamples(scores, reps=50, seed=0)
    assert resampled.shape == (50, 5, 3)
    assert (resampled == scores).all()


def test_intervals_are_reproducible_and_cover_their_point():
    first = stats.probability_of_improvement(X, Y, seed=4)
    assert first == stats.probability_of_improvement(X, Y, seed=4)
    assert first.low <= first.point <= first.high
    for name in stats.AGGREGATES:
        e = stats.estimate(X, name)
        assert e.low <= e.point <= e.high, name


def test_two_sample_tests_are_scipys_and_warn_below_the_minimum_runs():
    a, b = np.array(X)[:, 1], np.array(Y)[:, 1]
    found = stats.two_sample_tests(a, b)
    welch = sps.ttest_ind(a, b, equal_var=False)
    mwu = sps.mannwhitneyu(a, b, alternative="two-sided")
    assert (found.welch_t, found.welch_p) == pytest.approx((welch.statistic, welch.pvalue))
    assert (found.mann_whitney_u, found.mann_whitney_p) == pytest.approx(
        (mwu.statistic, mwu.pvalue)
    )
    assert found.warning == ""
    few = stats.two_sample_tests(a[:3], b)
    assert "3 and 6 runs" in few.warning and "run more seeds" in few.warning
    alone = stats.two_sample_tests(a[:1], b)
    assert np.isnan(alone.welch_p) and alone.warning


def test_bad_scores_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least one"):
        stats.estimate([], "mean")
    with pytest.raises(ValueError, match="finite"):
        stats.estimate([1.0, float("nan")], "mean")
    with pytest.raises(ValueError, match="same games"):
        stats.probability_of_improvement(X, np.array(Y)[:, :2])
    with pytest.raises(ValueError, match="one game"):
        stats.two_sample_tests(X, Y)
