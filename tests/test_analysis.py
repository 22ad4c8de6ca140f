"""Compare's analysis functions against hand-computed numbers: TensorBoard smoothing, LTTB,
seed groups (bootstrap band, IQM), Atari human-normalised scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.atari_scores import (
    REFERENCE_SCORES,
    game_name,
    human_normalized,
    reference_scores,
)
from analysis.downsample import lttb_indices
from analysis.seeds import aggregate_seeds, bootstrap_mean_ci, group_key, iqm
from analysis.smoothing import ema_smooth
from runstore.config import resolve
from runstore.envs import atari_games

# -- smoothing ---------------------------------------------------------------------------------


def test_smoothing_matches_hand_computed_debiased_ema():
    # w = 0.5 on [1, 2, 3]: last = 0.5, 1.25, 2.125; debias by 1 - 0.5**n = 0.5, 0.75, 0.875.
    assert ema_smooth([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    # w = 0.6 (TensorBoard's default) on [10, 0]: 4/0.4 = 10; (2.4 + 0)/0.64 = 3.75.
    assert ema_smooth([10.0, 0.0], 0.6) == pytest.approx([10.0, 3.75])


def test_smoothing_skips_non_finite_points_like_tensorboard():
    # The NaN passes through and does not count: the third point is debiased with n = 2.
    out = ema_smooth([1.0, math.nan, 3.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * 0.5 + 0.5 * 3.0) / 0.75)


def test_smoothing_edge_weights_and_constant_series():
    y = np.array([3.0, -1.0, 7.0])
    assert np.array_equal(ema_smooth(y, 0.0), y)
    assert np.array_equal(ema_smooth(y, 1.0), np.zeros(3))  # TensorBoard: last stays 0
    assert np.array_equal(ema_smooth([2.5] * 4, 0.9), [2.5] * 4)  # returned as is
    assert np.array_equal(ema_smooth(y, float("nan")), y)  # non-finite weight means 0
    assert len(ema_smooth([], 0.5)) == 0


def test_smoothing_equals_the_tensorboard_loop_on_long_noisy_series():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(5000) * 10
    y[[7, 100]] = [np.inf, np.nan]
    for w in (0.3, 0.9, 0.999):
        last, n, ref = 0.0, 0, []
        for v in y:  # TensorBoard's classicSmoothing, transcribed
            if not np.isfinite(v):
                ref.append(v)
                continue
            last = last * w + (1 - w) * v
            n += 1
            ref.append(last / (1 - w**n))
        np.testing.assert_allclose(ema_smooth(y, w), ref, rtol=1e-9, atol=1e-9)


# -- LTTB --------------------------------------------------------------------------------------


def test_lttb_keeps_endpoints_at_most_n_points_and_exact_values():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.integers(1, 10, 100_000)).astype(float)
    y = rng.standard_normal(len(x))
    y[50_000] = 40.0  # a spike must survive
    idx = lttb_indices(x, y, 500)
    assert len(idx) == 500
    assert idx[0] == 0 and idx[-1] == len(x) - 1
    assert np.all(np.diff(idx) > 0)
    assert 50_000 in idx
    # indices, so every kept point is an exact logged (x, y)
    assert set(zip(x[idx], y[idx], strict=True)) <= set(zip(x, y, strict=True))


def test_lttb_short_series_and_non_finite_points():
    x = np.arange(10.0)
    y = np.arange(10.0)
    assert list(lttb_indices(x, y, 2000)) == list(range(10))
    y[3] = np.nan
    assert 3 not in lttb_indices(x, y, 2000)
    assert 3 not in lttb_indices(x, y, 4)
    with pytest.raises(ValueError, match="at least 3"):
        lttb_indices(x, y, 2)


def test_lttb_picks_the_largest_triangle_in_a_bucket():
    # 5 points into 3: the middle bucket holds indices 1..3; with neighbours (0,0) and (4,0)
    # the point furthest from that line is the peak at index 2.
    x = np.arange(5.0)
    y = np.array([0.0, 1.0, 5.0, 1.0, 0.0])
    assert list(lttb_indices(x, y, 3)) == [0, 2, 4]


# -- seed groups -------------------------------------------------------------------------------


def test_group_key_ignores_seed_and_name_only():
    base = {"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 1000}
    a = resolve({**base, "seed": 1, "name": "a"})
    b = resolve({**base, "seed": 2, "name": "b"})
    c = resolve({**base, "seed": 1, "hyperparams": {"n_steps": 64}})
    assert group_key(a) == group_key(b)
    assert group_key(a) != group_key(c)


def test_a_sweep_trials_seeds_form_one_group_and_its_trials_do_not():
    base = {"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 1000}

    def run(trial: int, k: int) -> object:
        ref = {"id": "20261202-x-abcd", "trial": trial, "seed_index": k}
        return resolve({**base, "seed": k, "name": f"x-t{trial}-s{k}", "sweep": ref})

    assert group_key(run(0, 0)) == group_key(run(0, 1)) == group_key(run(0, 2))
    assert group_key(run(0, 0)) != group_key(run(1, 0))
    assert group_key(run(0, 0)) != group_key(resolve({**base, "seed": 0}))


def test_iqm_drops_the_outer_quarters():
    assert iqm(np.array([1.0, 2.0, 3.0, 100.0])) == pytest.approx(2.5)
    assert iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert iqm(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)  # int(0.75) = 0: plain mean


def test_bootstrap_band_on_a_fixed_seed_set():
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = bootstrap_mean_ci(values, n_boot=4000, seed=0)
    again = bootstrap_mean_ci(values, n_boot=4000, seed=0)
    assert (low, high) == again  # same seed, same band
    # The band holds the mean (4.0) and is inside the range of possible resample means.
    assert 1.0 < low[0] < 4.0 < high[0] < 10.0
    # Exact reference: every resample mean is a multiset mean; check against brute force
    # quantiles of the same draws.
    rng = np.random.default_rng(0)
    picks = rng.integers(0, 5, size=(4000, 5))
    means = values[picks].mean(axis=1)
    assert low[0] == pytest.approx(np.quantile(means, 0.025))
    assert high[0] == pytest.approx(np.quantile(means, 0.975))
    one_low, one_high = bootstrap_mean_ci(np.array([[2.0, 3.0]]))
    assert list(one_low) == [2.0, 3.0] and list(one_high) == [2.0, 3.0]


def test_aggregate_seeds_on_a_shared_grid():
    x = np.array([0.0, 10.0, 20.0])
    curves = [(x, np.array([0.0, 1.0, 2.0]) + k) for k in range(4)]  # offsets 0..3
    curves.append((np.array([0.0, 10.0]), np.array([100.0, 100.0])))  # stopped at 10
    g = aggregate_seeds(curves, n_points=3)
    assert list(g.x) == [0.0, 5.0, 10.0]  # the range every seed covers
    assert g.n_seeds == 5
    # at x = 0, 5, 10 the four lines are k, k + 0.5, k + 1 (k = 0..3), the fifth is 100
    assert g.mean == pytest.approx([106 / 5, 108 / 5, 110 / 5])
    assert g.iqm is not None and g.iqm[0] == pytest.approx(2.0)  # middle three of 0,1,2,3,100
    assert np.all(g.low <= g.mean) and np.all(g.mean <= g.high)
    assert aggregate_seeds(curves[:3]).iqm is None  # under 4 seeds: no IQM


# -- human-normalised scores ------------------------------------------------------------------


def human_normalized_score(env_id: str, score: float) -> float | None:
    """One score's normalised value; None for a game without published references."""
    if reference_scores(env_id) is None:
        return None
    return float(human_normalized(env_id, np.array([score]))[0])


def test_normalised_score_formula_on_published_numbers():
    # Pong: random -20.7, human 14.6 -> a score of 14.6 is 1, -20.7 is 0, 21 is 41.7/35.3.
    assert human_normalized_score("ALE/Pong-v5", 14.6) == pytest.approx(1.0)
    assert human_normalized_score("ALE/Pong-v5", -20.7) == pytest.approx(0.0)
    assert human_normalized_score("PongNoFrameskip-v4", 21.0) == pytest.approx(41.7 / 35.3)
    # Breakout: random 1.7, human 30.5: a score of 400 is 13.83 humans.
    assert human_normalized_score("ALE/Breakout-v5", 400.0) == pytest.approx(398.3 / 28.8)
    np.testing.assert_allclose(
        human_normalized("ALE/Seaquest-v5", np.array([68.4, 42054.7])), [0.0, 1.0]
    )
    assert human_normalized_score("ALE/Tetris-v5", 10.0) is None
    with pytest.raises(KeyError, match="Atari-57"):
        human_normalized("CartPole-v1", np.array([1.0]))


def test_every_atari57_game_maps_to_an_ale_id_that_ale_py_ships():
    ale = atari_games()
    covered = {game_name(e) for e in ale if reference_scores(e) is not None}
    assert covered == set(REFERENCE_SCORES)
    assert len(REFERENCE_SCORES) == 57
    assert game_name("ALE/MontezumaRevenge-v5") == "MontezumaRevenge"
    assert game_name("BreakoutNoFrameskip-v4") == "Breakout"
    for random, human in REFERENCE_SCORES.values():
        assert human != random


def test_grouped_run_ids_are_the_runs_of_groups_of_two_or_more_once_groups_are_drawn():
    import polars as pl

    from analysis.compare_data import RunInfo, grouped_run_ids

    def info(run_id: str, group: str) -> RunInfo:
        return RunInfo(id=run_id, label=run_id, env="CartPole-v1", algo="ppo", seed=1, group=group)

    runs = [info("a1", "A"), info("a2", "A"), info("b1", "B")]
    drawn = pl.DataFrame({"group": ["A (2 seeds)"], "x": [0.0]})
    assert grouped_run_ids(runs, drawn) == {"a1", "a2"}
    assert grouped_run_ids(runs, None) == set()
    assert grouped_run_ids(runs, drawn.clear()) == set()
