"""run.json and status.json: the two JSON documents of a run, and the lifecycle states.

run.json (lifecycle) has one writer, the runner; status.json (progress) has one writer, the
training process. Readers ignore fields they do not know, so a newer writer never breaks an
older dashboard.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: An integer of a document: 64 bits at most, as the bounded JSON reader
#: (``runstore.safeio.parse_json``) reads them. A document validated from elsewhere (a dict in
#: a test, a tool) gets the same bound, so no page ever divides, charts or tabulates a number
#: like ``10**400`` ("int too large to convert to float"): it is a validation error, which
#: every reader handles as a damaged file of that one run.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def _unknown_if_not_finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


#: A float that may be unknown (None): NaN or inf given in code (a diverged environment's
#: return handed to ``ClipMeta(...)``, say) is unknown too, rather than an error that would
#: end the trainer's evaluation. From disk the bounded reader already refuses NaN and inf;
#: a float field that may not be None refuses them (``allow_inf_nan=False`` below), and any
#: float field refuses an integer no float holds (``10**400``).
MaybeFloat = Annotated[float | None, BeforeValidator(_unknown_if_not_finite)]

#: The latest time a document may name (about the year 5100). Pages format every time with
#: ``time.localtime``, which raises OverflowError past the platform's time_t: a
#: ``"started_at": 1e20`` in run.json took the Runs page down. Before 1970 is damage too.
MAX_TIMESTAMP = 1e11
#: A wall-clock time of a document (seconds since the epoch).
Timestamp = Annotated[float, Field(ge=0, le=MAX_TIMESTAMP)]
MaybeTimestamp = Annotated[Timestamp | None, BeforeValidator(_unknown_if_not_finite)]


def finite(value: Any) -> Any:
    """``value`` (a JSON-able document) with every float that is not finite replaced by None.

    Writers call this (``RunStore.write_run``, ``write_status_file``, clip sidecars): a NaN
    return from a diverged environment then goes to disk as ``null`` ("unknown"), not as
    ``NaN``, which the bounded reader refuses, so one bad number never makes a whole
    status.json unreadable (and the run's outcome with it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


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
    # Floats must be finite: NaN or inf in a document is damage, not a value to show.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    def document(self) -> dict[str, Any]:
        """What is written to disk: the JSON form, non-finite floats as null (``finite``)."""
        return finite(self.model_dump(mode="json"))


class Diagnosis(_Doc):
    """Why a run failed, in words a hobbyist can act on (``machine.failures.explain``), as
    stored in status.json (by the trainer) and copied into run.json (by the runner).

    ``code`` is stable (the dashboard and tests key on it); ``evidence`` is the line of the
    error text that led to this diagnosis, so the reader can see why we think so. Every field
    has a default, so a diagnosis written by an older version (a dict with fewer keys) still
    loads; one whose values have the wrong type makes its document damaged, like any field."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    code: str = "unexpected_error"
    title: str = ""
    meaning: str = ""
    steps: tuple[str, ...] = ()
    severity: str = "error"  # "error" | "warning"
    evidence: str = ""


class RunEvent(_Doc):
    """One line of a run's history: a state change, a request, a checkpoint, a note."""

    at: Timestamp
    kind: str
    detail: str = ""
    #: How many like occurrences this one event stands for: a flood of ignored requests is
    #: one event with a count, so run.json stays small (``at`` is the first of them).
    count: Int64 = 1


class NodeRef(_Doc):
    """The Ray cluster node an attempt of a run was placed on (docs/cluster.md)."""

    id: str
    hostname: str = ""
    ip: str = ""

    def describe(self) -> str:
        return f"{self.hostname or '?'} ({self.ip or '?'}, node {self.id[:8]})"


class MediaJob(_Doc):
    """A short process the runner started for a run (``record`` or ``timelapse``), in its own
    process group so it never disturbs the training; kept here so a restarted runner can end
    it."""

    action: str
    pid: Int64
    pgid: Int64
    create_time: Timestamp
    started_at: Timestamp
    #: On a Ray cluster: the job's agent (its actor name) and node; pid, pgid and create
    #: time are then the node's (0 until it has started), never signalled from here.
    agent: str = ""
    node: NodeRef | None = None


class RunRecord(_Doc):
    """run.json — written by the runner only."""

    id: str
    name: str
    state: RunState = RunState.QUEUED
    created_at: Timestamp = Field(default_factory=time.time)
    queued_at: Timestamp = Field(default_factory=time.time)
    started_at: MaybeTimestamp = None
    ended_at: MaybeTimestamp = None
    pid: Int64 | None = None
    pgid: Int64 | None = None
    create_time: MaybeTimestamp = None
    host: str = ""
    attempts: Int64 = 0
    exit_code: Int64 | None = None
    reason: str = ""
    diagnosis: Diagnosis | None = None
    source_file: str = ""
    events: list[RunEvent] = Field(default_factory=list)
    media_job: MediaJob | None = None  # a clip or time-lapse being made beside the training
    #: the step at which its sweep's pruner stopped it: the run ends ``stopped`` and is shown
    #: as pruned (a stop request with ``params: {pruned_at: STEP}``, from ``runner.sweeps``)
    pruned_at: Int64 | None = None
    #: Organising (issue 17; ``runstore.annotations`` holds the rules): set by an ``annotate``
    #: request. An archived run is hidden from the Runs page's default view, kept on disk.
    tags: list[str] = Field(default_factory=list)
    note: str = ""
    archived: bool = False
    #: Display titles of the run's videos (issue 18; ``runstore.video_files`` holds the
    #: rules): file name -> title, set by a ``video`` request. Files are never renamed.
    video_titles: dict[str, str] = Field(default_factory=dict)
    #: The cluster node of the current attempt (None: trained on the runner's machine); each
    #: attempt's node is also in its ``placed`` event. pid, pgid and create_time are then
    #: that node's, never signalled from the runner's machine.
    node: NodeRef | None = None

    def record(self, kind: str, detail: str = "", at: float | None = None) -> None:
        self.events.append(RunEvent(at=time.time() if at is None else at, kind=kind, detail=detail))


class TrainStatus(_Doc):
    """status.json — written by the training process only."""

    pid: Int64 | None = None
    create_time: MaybeTimestamp = None
    phase: str = "starting"  # starting | training | saving | finished
    started_at: MaybeTimestamp = None
    heartbeat_at: MaybeTimestamp = None
    timesteps: Int64 = 0
    total_timesteps: Int64 = 0
    start_timesteps: Int64 = 0
    fps: MaybeFloat = None
    train_seconds: float = 0.0
    episodes: Int64 = 0
    last_episode_return: MaybeFloat = None
    best_episode_return: MaybeFloat = None
    mean_return_100: MaybeFloat = None
    device: str | None = None
    resumed_from: str | None = None
    last_checkpoint: str | None = None
    last_eval_return: MaybeFloat = None  # mean real game score of the latest evaluation
    last_eval_step: Int64 | None = None
    best_eval_return: MaybeFloat = None  # the evaluation that best.zip was saved at
    best_eval_step: Int64 | None = None
    outcome: str | None = None  # completed | stopped | failed, once training has ended
    reason: str = ""
    diagnosis: Diagnosis | None = None
    # The run's own resource use (trainer + env workers), sampled every few seconds
    # (training/system_sampler.py); cpu_percent is summed over processes (200 = two cores).
    cpu_percent: MaybeFloat = None
    rss_mb: MaybeFloat = None
    gpu_util: MaybeFloat = None  # % of the busiest GPU the run uses; None without NVML
    gpu_mem_mb: MaybeFloat = None
    processes: Int64 | None = None
    #: The versions of Python and the RL packages this session trains with (reports name them)
    versions: dict[str, str] = Field(default_factory=dict)

    def heartbeat_age(self, now: float | None = None) -> float | None:
        if self.heartbeat_at is None:
            return None
        return (time.time() if now is None else now) - self.heartbeat_at


class ClusterNode(_Doc):
    """One node of the Ray cluster as the runner sees it (System page)."""

    id: str
    hostname: str = ""
    ip: str = ""
    alive: bool = True
    cpus: float = 0.0
    gpus: float = 0.0
    memory: float = 0.0  # bytes
    free_cpus: float = 0.0
    free_gpus: float = 0.0
    resources: dict[str, float] = Field(default_factory=dict)  # custom ones, total
    #: why no run is placed here (it cannot see the runs folder); "" when it may take runs
    refused: str = ""
    runs: list[str] = Field(default_factory=list)


class ClusterInfo(_Doc):
    """The runner's view of its Ray cluster, in runner.json; absent without an address."""

    address: str
    connected: bool = False
    error: str = ""  # why it is not connected, or what failed last
    checked_at: MaybeTimestamp = None
    nodes: list[ClusterNode] = Field(default_factory=list)


class RunnerInfo(_Doc):
    """runner.json — the supervisor's heartbeat."""

    pid: Int64
    host: str
    started: Timestamp
    heartbeat_at: Timestamp
    version: str
    max_concurrent: Int64 = 1
    cluster: ClusterInfo | None = None


class TensorBoardInfo(_Doc):
    """tensorboard.json — the TensorBoard the dashboard started on this runs folder, so a
    restarted dashboard finds it again. Identity is (pid, create_time), never pid alone."""

    pid: Int64
    pgid: Int64
    create_time: Timestamp
    host: str
    port: Int64
    logdir: str
    started: Timestamp
