"""What a comparison report says: runs or seed groups side by side, with the statistics RL
papers report (``analysis.stats`` through ``analysis.group_stats``) and a config diff.

The same functions as the Compare page (``analysis.compare_data``), so a report and the page
agree on every number for the same runs and metric.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis import learning, stats
from analysis.compare_data import (
    EPISODES_METRIC,
    X_STEPS,
    RunInfo,
    metric_series,
    seed_groups,
    selection_table,
)
from analysis.config_diff import config_diff
from analysis.group_stats import Group, Versus, final_scores, group_table, groups_of, versus
from analysis.seeds import group_key
from reports.facts import RunFacts

EVAL_METRIC = "eval/mean_return"
#: The smoothing (TensorBoard's) of every episode's return before a threshold is looked for:
#: one lucky episode is not "reached". Evaluations are means already and are not smoothed.
EPISODE_SMOOTHING = 0.6


@dataclass(frozen=True)
class GroupRow:
    """One group's line of the report's table."""

    group: Group
    mean: stats.Interval
    iqm: float
    median: float
    steps_to: list[float | None]  # the median over its runs of the steps to each threshold


@dataclass(frozen=True)
class Comparison:
    runs: list[RunFacts]
    infos: list[RunInfo]
    metric: str
    table: pl.DataFrame  # analysis.compare_data.selection_table
    curves: pl.DataFrame | None  # analysis.compare_data.seed_groups; None without grouping
    finals: dict[str, float]  # run id -> final score
    rows: list[GroupRow]
    thresholds: list[float]
    pairs: list[tuple[Group, Group, Versus]]
    diff: pl.DataFrame  # analysis.config_diff.config_diff, by run label
    group_seeds: bool

    @property
    def groups_table(self) -> pl.DataFrame:
        return group_table([r.group for r in self.rows])


def label_of(facts: RunFacts) -> str:
    """How a run is named in a comparison (the Compare page's label)."""
    seed = f" s{facts.seed}" if facts.seed is not None else ""
    return f"{facts.name}{seed} #{facts.id[-4:]}"


def choose_metric(runs: Sequence[RunFacts]) -> str:
    """Evaluations when every run has them (deterministic, the agent as it would be shown),
    else every episode's return."""
    if runs and all(r.curve.height for r in runs):
        return EVAL_METRIC
    return EPISODES_METRIC


def compare(
    runs: Sequence[RunFacts],
    group_seeds: bool,
    metric: str | None = None,
    thresholds: Sequence[float] | None = None,
) -> Comparison:
    """Runs side by side: one group per run, or per seed group (``seeds.group_key``: configs
    that differ only by seed) with ``group_seeds``."""
    metric = metric or choose_metric(runs)
    episodes = metric == EPISODES_METRIC
    infos = [
        RunInfo(
            id=r.id,
            label=label_of(r),
            env=r.env,
            algo=r.algo,
            seed=r.seed,
            group=group_key(r.config) if group_seeds and r.config else r.id,
            name=r.name,
        )
        for r in runs
    ]
    series = {r.id: metric_series(metric, r.scalars, r.episodes) for r in runs}
    table = selection_table(infos, series, metric, EPISODE_SMOOTHING if episodes else 0.0)
    curves = seed_groups(table, infos, X_STEPS) if group_seeds else None
    finals = final_scores(table, episodes=episodes)
    groups = groups_of(infos, finals)
    if thresholds is None:
        best = max((float(np.mean(g.scores)) for g in groups), default=None)
        thresholds = learning.default_thresholds(best, (0.5, 0.9)) if best is not None else []
    rows = [_row(g, table, thresholds) for g in groups]
    pairs = [(a, b, versus(a, b)) for a, b in itertools.combinations(groups, 2)]
    configs = {i.label: r.config for i, r in zip(infos, runs, strict=True) if r.config}
    return Comparison(
        runs=list(runs),
        infos=infos,
        metric=metric,
        table=table,
        curves=curves,
        finals=finals,
        rows=rows,
        thresholds=list(thresholds),
        pairs=pairs,
        diff=config_diff(configs) if len(configs) >= 2 else pl.DataFrame(),
        group_seeds=group_seeds,
    )


def _row(group: Group, table: pl.DataFrame, thresholds: Sequence[float]) -> GroupRow:
    steps_to: list[float | None] = []
    for threshold in thresholds:
        found = []
        for run_id in group.run_ids:
            curve = table.filter(pl.col("run_id") == run_id)
            (reached,) = learning.time_to_threshold(curve, [threshold], y="smoothed")
            found.append(np.inf if reached.step is None else reached.step)
        # The median over runs, a run that never reached it counting as infinitely late; so a
        # group reaches a threshold when more than half its runs did.
        median = float(np.median(found))
        steps_to.append(median if np.isfinite(median) else None)
    return GroupRow(
        group=group,
        mean=stats.estimate(group.scores, "mean"),
        iqm=stats.estimate(group.scores, "iqm").point,
        median=stats.estimate(group.scores, "median").point,
        steps_to=steps_to,
    )
