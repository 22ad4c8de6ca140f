"""run.json and status.json: the two JSON documents of a run, and the lifecycle states.

run.json (lifecycle) has one writer, the runner; status.json (progress) has one writer, the
training process. Readers ignore fields they do not know, so a newer writer never breaks an
older dashboard.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"

    @property
    def is_live(self) -> bool:
        """A process is (or should be) alive for this run."""
        return self in LIVE_STATES

    @property
    def is_ended(self) -> bool:
        return self in ENDED_STATES


LIVE_STATES = frozenset({RunState.STARTING, RunState.RUNNING, RunState.PAUSED, RunState.STOPPING})
ENDED_STATES = frozenset({RunState.STOPPED, RunState.COMPLETED, RunState.FAILED, RunState.LOST})
RESUMABLE_STATES = frozenset({RunState.STOPPED, RunState.FAILED, RunState.LOST})


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunEvent(_Doc):
    """One line of a run's history: a state change, a request, a checkpoint, a note."""

    at: float
    kind: str
    detail: str = ""
    #: How many like occurrences this one event stands for: a flood of ignored requests is
    #: one event with a count, so run.json stays small (``at`` is the first of them).
    count: int = 1


class MediaJob(_Doc):
    """A short process the runner started for a run (``record`` or ``timelapse``), in its own
    process group so it never disturbs the training; kept here so a restarted runner can end
    it."""

    action: str
    pid: int
    pgid: int
    create_time: float
    started_at: float


class RunRecord(_Doc):
    """run.json — written by the runner only."""

    id: str
    name: str
    state: RunState = RunState.QUEUED
    created_at: float = Field(default_factory=time.time)
    queued_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pgid: int | None = None
    create_time: float | None = None
    host: str = ""
    attempts: int = 0
    exit_code: int | None = None
    reason: str = ""
    diagnosis: dict[str, Any] | None = None
    source_file: str = ""
    events: list[RunEvent] = Field(default_factory=list)
    media_job: MediaJob | None = None  # a clip or time-lapse being made beside the training

    def record(self, kind: str, detail: str = "", at: float | None = None) -> None:
        self.events.append(RunEvent(at=time.time() if at is None else at, kind=kind, detail=detail))


class TrainStatus(_Doc):
    """status.json — written by the training process only."""

    pid: int | None = None
    create_time: float | None = None
    phase: str = "starting"  # starting | training | saving | finished
    started_at: float | None = None
    heartbeat_at: float | None = None
    timesteps: int = 0
    total_timesteps: int = 0
    start_timesteps: int = 0
    fps: float | None = None
    train_seconds: float = 0.0
    episodes: int = 0
    last_episode_return: float | None = None
    best_episode_return: float | None = None
    mean_return_100: float | None = None
    device: str | None = None
    resumed_from: str | None = None
    last_checkpoint: str | None = None
    last_eval_return: float | None = None  # mean real game score of the latest evaluation
    last_eval_step: int | None = None
    best_eval_return: float | None = None  # the evaluation that best.zip was saved at
    best_eval_step: int | None = None
    outcome: str | None = None  # completed | stopped | failed, once training has ended
    reason: str = ""
    diagnosis: dict[str, Any] | None = None
    # The run's own resource use (trainer + env workers), sampled every few seconds
    # (training/system_sampler.py); cpu_percent is summed over processes (200 = two cores).
    cpu_percent: float | None = None
    rss_mb: float | None = None
    gpu_util: float | None = None  # % of the busiest GPU the run uses; None without NVML
    gpu_mem_mb: float | None = None
    processes: int | None = None

    def heartbeat_age(self, now: float | None = None) -> float | None:
        if self.heartbeat_at is None:
            return None
        return (time.time() if now is None else now) - self.heartbeat_at


class RunnerInfo(_Doc):
    """runner.json — the supervisor's heartbeat."""

    pid: int
    host: str
    started: float
    heartbeat_at: float
    version: str
    max_concurrent: int = 1


class TensorBoardInfo(_Doc):
    """tensorboard.json — the TensorBoard the dashboard started on this runs folder, so a
    restarted dashboard finds it again. Identity is (pid, create_time), never pid alone."""

    pid: int
    pgid: int
    create_time: float
    host: str
    port: int
    logdir: str
    started: float
