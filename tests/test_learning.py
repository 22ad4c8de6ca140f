"""analysis.learning on fixed frames against hand-computed numbers: the evaluation curve, time
to a return, the mean return over training, and the resource use with a pause in it."""

from __future__ import annotations

import math

import polars as pl
import pytest

from analysis import learning
from runstore import tags


def _scalars(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["tag", "step", "wall_time", "value"], orient="row")


def test_eval_curve_pivots_the_eval_tags_and_keeps_a_repeated_steps_last_value():
    rows = [
        (tags.EVAL_MEAN_RETURN, 100, 10.0, 1.0),
        (tags.EVAL_STD_RETURN, 100, 10.0, 0.5),
        (tags.EVAL_MIN_RETURN, 100, 10.0, 0.0),
        (tags.EVAL_MAX_RETURN, 100, 10.0, 2.0),
        (tags.EVAL_MEAN_RETURN, 200, 20.0, 3.0),
        # a resumed run evaluates step 200 again, later: that one counts
        (tags.EVAL_MEAN_RETURN, 200, 30.0, 4.0),
        ("train/loss", 200, 20.0, 9.0),
    ]
    curve = learning.eval_curve(_scalars(rows))
    assert curve["step"].to_list() == [100, 200]
    assert curve["mean"].to_list() == [1.0, 4.0]
    assert curve["std"].to_list()[0] == 0.5 and curve["std"].to_list()[1] is None
    assert curve["wall_time"].to_list() == [10.0, 30.0]
    final, best = learning.final_and_best(curve)
    assert final is not None and best is not None
    assert (final.step, final.mean) == (200, 4.0) and best == final
    assert learning.eval_curve(_scalars([("train/loss", 1, 1.0, 1.0)])).is_empty()
    assert learning.final_and_best(learning.eval_curve(pl.DataFrame())) == (None, None)


def test_time_to_threshold_finds_the_first_point_at_or_above_and_says_never():
    curve = pl.DataFrame(
        {"step": [0, 100, 200, 300], "wall_time": [50.0, 60.0, 80.0, 90.0], "mean": [0, 5, 3, 9]}
    )
    found = learning.time_to_threshold(curve, [5, 8, 10], start=40.0)
    assert [(r.step, r.seconds) for r in found] == [(100, 20.0), (300, 50.0), (None, None)]
    # without a start, seconds count from the curve's first point
    assert learning.time_to_threshold(curve, [3])[0].seconds == 10.0


def test_default_thresholds_approach_a_negative_best_from_below():
    assert learning.default_thresholds(200.0) == [100.0, 180.0, 200.0]
    assert learning.default_thresholds(-10.0, (0.5, 1.0)) == [-20.0, -10.0]


def test_mean_over_training_is_the_area_under_the_curve_over_its_steps():
    # trapezoids: (0+10)/2*100 + (10+10)/2*300 = 500 + 3000 = 3500 over 400 steps
    curve = pl.DataFrame({"step": [0, 100, 400], "mean": [0.0, 10.0, 10.0]})
    assert learning.mean_over_training(curve) == pytest.approx(8.75)
    # a run that learned sooner, same final return: a higher mean over training
    sooner = pl.DataFrame({"step": [0, 100, 400], "mean": [0.0, 10.0, 10.0]})
    later = pl.DataFrame({"step": [0, 300, 400], "mean": [0.0, 0.0, 10.0]})
    assert learning.mean_over_training(sooner) > learning.mean_over_training(later)
    assert learning.mean_over_training(curve.head(1)) is None


def test_usage_integrates_cpu_and_skips_a_pause():
    # two cores busy for 3 sample intervals of 10 s, then a 1-hour pause, then 1 more interval
    t = [0.0, 10.0, 20.0, 30.0, 3630.0, 3640.0]
    rows = [(tags.SYSTEM_CPU_PERCENT, i, w, 200.0) for i, w in enumerate(t)]
    rows += [(tags.SYSTEM_RSS_MB, i, w, 100.0 + i) for i, w in enumerate(t)]
    found = learning.usage(_scalars(rows))
    assert found is not None
    # 5 intervals counted (the pause counts as one typical 10 s interval) at 2 cores
    assert found.cpu_hours == pytest.approx(2 * 50 / 3600)
    assert found.wall_hours == pytest.approx(3640 / 3600)
    assert found.peak_rss_mb == 105.0
    assert found.gpu_hours is None and found.peak_gpu_mem_mb is None
    assert found.gpu_energy_wh is None
    # a GPU's board power at 300 W for the same samples: 50 s counted, so 300 * 50 / 3600 Wh
    powered = learning.usage(
        _scalars(rows + [(tags.SYSTEM_GPU_POWER_W, i, w, 300.0) for i, w in enumerate(t)])
    )
    assert powered is not None and powered.gpu_energy_wh == pytest.approx(300 * 50 / 3600)
    assert learning.usage(_scalars([("train/loss", 1, 1.0, 1.0)])) is None
    assert not math.isnan(found.cpu_hours)


def test_returns_per_bin_groups_games_by_the_stretch_they_ended_in():
    episodes = pl.DataFrame(
        {"step": [1, 100_000, 100_001, 250_000], "episode_return": [-21.0, -20.0, -19.0, -10.0]}
    )
    table = learning.returns_per_bin(episodes, 100_000)
    assert table.rows() == [(100_000, -20.5, 2), (200_000, -19.0, 1), (300_000, -10.0, 1)]
    assert learning.returns_per_bin(episodes.clear(), 100_000).is_empty()
