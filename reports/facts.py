"""What a report says about a run, read from the run store and computed by ``analysis``.

Everything a report shows is a field here, so the HTML is layout only and a test compares
the report's numbers with these, computed again from the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from analysis import learning
from analysis.atari_scores import human_normalized, reference_scores
from analysis.run_charts import available_tags
from runstore import safeio
from runstore.config import to_yaml
from runstore.lineage import ancestors
from runstore.metrics import load_episodes, load_scalars
from runstore.models import RunRecord, TrainStatus
from runstore.store import RunStore
from runstore.timeline import TimelineEvent, build_timeline
from runstore.videos import Clip, list_clips

#: Episodes averaged into "recent episodes" (SB3's rollout/ep_rew_mean window).
RECENT_EPISODES = 100


class ReportError(ValueError):
    """A report that cannot be made, with what to do about it."""


@dataclass(frozen=True)
class RunFacts:
    """One run as a report shows it."""

    id: str
    name: str
    record: RunRecord
    status: TrainStatus | None
    env: str
    algo: str
    seed: int | None
    config: dict  # the resolved config as JSON values (for config diffs)
    config_yaml: str  # the resolved config as the run stores it; "" when unreadable
    config_problem: str  # why the config could not be read; "" when it could
    lineage: list[str]  # the runs whose weights it started from, nearest first
    scalars: pl.DataFrame
    episodes: pl.DataFrame
    curve: pl.DataFrame  # analysis.learning.eval_curve
    final: learning.Evaluation | None
    best: learning.Evaluation | None
    recent_mean: float | None  # the mean return of the last RECENT_EPISODES episodes
    reference: tuple[float, float] | None  # Atari (random, human) scores
    reached: list[learning.Reached]
    mean_over_training: float | None
    usage: learning.Usage | None
    timeline: list[TimelineEvent]
    clips: list[Clip]
    training_tags: list[tuple[str, str]] = field(default_factory=list)

    def normalized(self, score: float | None) -> float | None:
        """The human-normalised score of a return (Atari-57 games only)."""
        if score is None or self.reference is None:
            return None
        return float(human_normalized(self.env, np.array([score]))[0])


def read_run_facts(
    store: RunStore, run_id: str, thresholds: Sequence[float] | None = None
) -> RunFacts:
    """Everything a report says about one run. Thresholds default to fractions of its best
    evaluation (``learning.DEFAULT_FRACTIONS``)."""
    record = store.read_run(run_id)
    if record is None:
        raise ReportError(f"run {run_id}: run.json is missing or unreadable, nothing to report")
    paths = store.paths(run_id)
    config_json: dict = {}
    config_yaml = problem = ""
    env = algo = "?"
    seed = None
    try:
        config = store.read_config(run_id)
    except (OSError, ValueError) as exc:  # a ConfigError is a ValueError
        problem = f"config.yaml cannot be read: {exc}"
    else:
        config_json, config_yaml = config.model_dump(mode="json"), to_yaml(config)
        env, algo, seed = config.env, config.algo, config.seed

    def parent_of(rid: str) -> str | None:
        try:
            return store.read_config_listing(rid).parent
        except (OSError, ValueError):
            return None

    scalars, episodes = load_scalars(paths.dir), load_episodes(paths.dir)
    curve = learning.eval_curve(scalars)
    final, best = learning.final_and_best(curve)
    if thresholds is None:
        thresholds = learning.default_thresholds(best.mean) if best else []
    start = float(scalars["wall_time"].min()) if scalars.height else None
    status = store.read_status(run_id)
    total = status.total_timesteps if status else 0
    returns = episodes["episode_return"].to_numpy() if episodes.height else np.array([])
    try:
        clips = list_clips(paths.videos)
    except OSError:
        clips = []
    return RunFacts(
        id=run_id,
        name=record.name,
        record=record,
        status=status,
        env=env,
        algo=algo,
        seed=seed,
        config=config_json,
        config_yaml=config_yaml,
        config_problem=problem,
        lineage=ancestors(run_id, parent_of),
        scalars=scalars,
        episodes=episodes,
        curve=curve,
        final=final,
        best=best,
        recent_mean=float(returns[-RECENT_EPISODES:].mean()) if returns.size else None,
        reference=reference_scores(env),
        reached=learning.time_to_threshold(curve, thresholds, start) if thresholds else [],
        mean_over_training=learning.mean_over_training(curve),
        usage=learning.usage(scalars),
        timeline=build_timeline(record, paths.checkpoints, episodes, scalars, total),
        clips=clips,
        training_tags=available_tags(scalars),
    )


def read_log_tail(store: RunStore, run_id: str, lines: int = 30) -> str:
    """The end of a failed run's trainer output (its traceback lands there), for its
    diagnosis section."""
    try:
        tail = safeio.read_tail(store.paths(run_id).trainer_log, limit=16_384)
    except OSError:
        return ""
    return "\n".join(tail.decode("utf-8", errors="replace").splitlines()[-lines:])
