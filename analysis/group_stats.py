"""Final scores of the Compare page's seed groups, and how two groups compare (issue 17).

A run's final score is what it ended on for the metric drawn: its last logged value (for an
evaluation metric, the last evaluation), except for every finished episode's return, where
one episode says little: there it is the mean of the last ``EPISODE_WINDOW`` episodes, SB3's
own window for ``rollout/ep_rew_mean``. The statistics are analysis.stats': a mean with its
stratified-bootstrap interval, the IQM and the median per group; for two groups, the
probability of improvement, Welch's t-test and the Mann-Whitney U test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis import stats
from analysis.compare_data import RunInfo
from analysis.seeds import unique_label

#: Episodes averaged into the final score of the every-episode return (SB3's window).
EPISODE_WINDOW = 100


def final_scores(table: pl.DataFrame, episodes: bool) -> dict[str, float]:
    """run id -> final score, from Compare's selection table (its ``y``: human-normalised
    when that is on); runs with no finite value are left out."""
    out: dict[str, float] = {}
    if table.is_empty():
        return out
    ordered = table.sort("step", maintain_order=True)
    for (run_id,), rows in ordered.group_by(["run_id"], maintain_order=True):
        y = rows["y"].to_numpy().astype(np.float64)
        y = y[np.isfinite(y)]
        if y.size:
            out[str(run_id)] = float(y[-EPISODE_WINDOW:].mean() if episodes else y[-1])
    return out


@dataclass(frozen=True)
class Group:
    """One seed group's runs and their final scores (in the order the runs were picked)."""

    label: str
    run_ids: tuple[str, ...]
    scores: tuple[float, ...]


def groups_of(chosen: Sequence[RunInfo], finals: dict[str, float]) -> list[Group]:
    """The picked runs with a final score, by seed group, in the order groups first appear;
    a group is labelled by its first run's name and its count of runs."""
    members: dict[str, list[RunInfo]] = {}
    for info in chosen:
        if info.id in finals:
            members.setdefault(info.group, []).append(info)
    groups, seen = [], set()
    for runs in members.values():
        base = runs[0].name or runs[0].label
        label = unique_label(f"{base} ({len(runs)} run{'s' if len(runs) != 1 else ''})", seen)
        ids = tuple(r.id for r in runs)
        groups.append(Group(label, ids, tuple(finals[i] for i in ids)))
    return groups


def group_table(groups: Sequence[Group]) -> pl.DataFrame:
    """One row per group: runs, the mean with its 95% interval, the IQM and the median."""
    rows = []
    for g in groups:
        mean = stats.estimate(g.scores, "mean")
        rows.append(
            {
                "group": g.label,
                "runs": len(g.scores),
                "mean": mean.point,
                "mean 95% low": mean.low,
                "mean 95% high": mean.high,
                "IQM": stats.estimate(g.scores, "iqm").point,
                "median": stats.estimate(g.scores, "median").point,
            }
        )
    return pl.DataFrame(rows)


@dataclass(frozen=True)
class Versus:
    """Group A against group B."""

    improvement: stats.Interval  # P(a run of A scores above a run of B)
    tests: stats.Tests


def versus(a: Group, b: Group) -> Versus:
    return Versus(
        stats.probability_of_improvement(a.scores, b.scores),
        stats.two_sample_tests(a.scores, b.scores),
    )
