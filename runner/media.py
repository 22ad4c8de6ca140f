"""Clips, time-lapses and journeys on request: processes beside the training, never in its way.

A ``record``, ``timelapse`` or ``journey`` request becomes ``python -m training.record RUN_DIR
...``, ``python -m training.timelapse RUN_DIR`` or ``python -m journey RUN_DIR ...``, in its
own process group (so stopping, pausing or
killing the training never reaches it, and the other way round), logged to the run's
``logs/media.log``. Its (pid, pgid, create time) go into run.json's ``media_job`` so a
restarted runner can find it again or clear it. One job per run at a time; jobs do not count
against ``max_concurrent`` (they are CPU-only and mostly short). A ``cancel-media`` request
sends the job SIGTERM: a journey then removes what it had written and exits 143.
"""

from __future__ import annotations

import logging
import re
import signal
import time
from typing import TYPE_CHECKING

from runner import process
from runner.process import Handle
from runstore.checkpoints import CHECKPOINT_REF_REGEX
from runstore.models import MediaJob, RunRecord
from runstore.store import MAX_RECORD_EPISODES, Request, RunStore
from runstore.videos import JOURNEY_FPS, JOURNEY_SIZES, MAX_JOURNEY_SECONDS, MIN_JOURNEY_SECONDS

if TYPE_CHECKING:
    from runner.cluster.runs import ClusterRuns

log = logging.getLogger("runner")

ACTIONS = {"record": "training.record", "timelapse": "training.timelapse", "journey": "journey"}
_CHECKPOINT = re.compile(f"^{CHECKPOINT_REF_REGEX}$")


class RequestError(ValueError):
    pass


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def journey_args(params: dict) -> list[str]:
    """``python -m journey`` arguments: the length in seconds, the frame height and rate."""
    seconds = params.get("seconds", 600)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise RequestError(f"length {seconds!r} is not a number of seconds")
    if not MIN_JOURNEY_SECONDS <= seconds <= MAX_JOURNEY_SECONDS:
        raise RequestError(
            f"length {seconds:g} s is out of range ({MIN_JOURNEY_SECONDS:g} s to "
            f"{MAX_JOURNEY_SECONDS / 3600:g} h)"
        )
    size, fps = params.get("size", 1080), params.get("fps", 30)
    if not _whole(size) or size not in JOURNEY_SIZES:
        raise RequestError(f"size {size!r} is not one of {', '.join(map(str, JOURNEY_SIZES))}")
    if not _whole(fps) or fps not in JOURNEY_FPS:
        raise RequestError(f"fps {fps!r} is not one of {', '.join(map(str, JOURNEY_FPS))}")
    record = params.get("record", True)
    if not isinstance(record, bool):
        raise RequestError(f"record {record!r} is not true or false")
    args = ["--length", f"{float(seconds):g}", "--size", str(size), "--fps", str(fps)]
    return args if record else [*args, "--no-record"]


def job_args(action: str, params: dict) -> list[str]:
    """Command-line arguments for a request, from validated parameters only."""
    if action == "journey":
        return journey_args(params)
    if action != "record":
        return []
    args: list[str] = []
    checkpoint = params.get("checkpoint")
    if checkpoint not in (None, ""):
        if not isinstance(checkpoint, str) or not _CHECKPOINT.match(checkpoint):
            raise RequestError(f"checkpoint {checkpoint!r} is not 'best' or a step-NNN name")
        args += ["--checkpoint", checkpoint]
    episodes = params.get("episodes", 1)
    if not _whole(episodes):
        raise RequestError(f"episodes {episodes!r} is not a whole number")
    if not 1 <= episodes <= MAX_RECORD_EPISODES:
        raise RequestError(f"episodes must be between 1 and {MAX_RECORD_EPISODES} (got {episodes})")
    return [*args, "--episodes", str(episodes)]


class MediaJobs:
    def __init__(self, store: RunStore):
        self.store = store
        self.handles: dict[str, Handle] = {}
        self.cancelled: set[str] = set()  # jobs sent SIGTERM by a cancel-media request
        #: With a Ray address, jobs run on a cluster node too (``runner.cluster``).
        self.cluster: ClusterRuns | None = None

    def start(self, record: RunRecord, request: Request) -> None:
        """Start the job a request asks for, or record why not (run.json events)."""
        paths = self.store.paths(record.id)
        if record.id in self.handles:
            running = record.media_job.action if record.media_job else "clip"
            record.record(
                "request-ignored",
                f"{request.action}: a {running} job is already running; one at a time per run",
            )
        else:
            try:
                args = job_args(request.action, request.params)
                paths.logs.mkdir(parents=True, exist_ok=True)
                module, job_argv = ACTIONS[request.action], [str(paths.dir), *args]
                if self.cluster is not None:
                    agent, handle = self.cluster.start_media(record, module, job_argv)
                else:
                    agent = ""
                    handle = process.spawn_module(module, job_argv, paths.dir, paths.media_log)
            except (RequestError, OSError) as exc:
                record.record("request-ignored", f"{request.action}: {exc}")
            else:
                self.handles[record.id] = handle
                record.media_job = MediaJob(
                    action=request.action,
                    pid=handle.pid,
                    pgid=handle.pgid,
                    create_time=handle.create_time,
                    started_at=time.time(),
                    agent=agent,
                )
                detail = " ".join(args) or "all clips"
                record.record(f"{request.action}-started", f"{detail} ({request.source})")
                log.info("%s: %s started (pid %d)", record.id, request.action, handle.pid)
        self.store.write_run(record)

    def cancel(self, record: RunRecord, request: Request) -> None:
        """Ask the run's job to stop (SIGTERM to its leader: it cleans up and exits)."""
        handle = self.handles.get(record.id)
        job = record.media_job
        if handle is None or job is None:
            record.record("request-ignored", "cancel-media: no clip or journey job is running")
        else:
            sent = process.request_stop(handle)
            if sent.refused:
                record.record("signal-refused", f"cancel {job.action}: {sent.reason}")
            else:
                self.cancelled.add(record.id)
                record.record(f"{job.action}-cancelling", f"requested ({request.source})")
        self.store.write_run(record)

    def check(self) -> None:
        """Note finished jobs in run.json (done, or failed with the log's last line)."""
        for run_id, handle in list(self.handles.items()):
            if self.cluster is not None and handle.remote is not None and not handle.pid:
                self.cluster.media_placed(run_id, handle)  # its node, into run.json
            if handle.is_alive():
                continue
            sent = process.kill(handle)  # anything it left in its group
            del self.handles[run_id]
            record = self.store.read_run(run_id)
            if record is None:
                continue
            if sent.refused:
                record.record("signal-refused", sent.reason)
                log.warning("%s: %s", run_id, sent.reason)
            action = record.media_job.action if record.media_job else "clip"
            code = handle.exit_code()
            if run_id in self.cancelled:
                self.cancelled.discard(run_id)
                record.record(f"{action}-cancelled", _last_line(self.store, run_id))
            elif code == 0:
                record.record(f"{action}-done", "")
            elif code is None:  # adopted after a runner restart: its exit code is gone
                record.record(f"{action}-ended", _last_line(self.store, run_id))
            else:
                record.record(f"{action}-failed", _last_line(self.store, run_id) or f"exit {code}")
            record.media_job = None
            self.store.write_run(record)
            log.info("%s: %s finished (exit %s)", run_id, action, code)

    def adopt(self) -> None:
        """After a runner restart: keep watching live jobs, forget vanished ones."""
        for run_id in self.store.run_ids():
            if run_id in self.handles:  # adopted already (adopt runs again on a reconnect)
                continue
            record = self.store.read_run(run_id)
            job = record.media_job if record else None
            if record is None or job is None:
                continue
            if job.agent:  # on a cluster node: found by its agent's name, or left alone
                if self.cluster is not None and (handle := self.cluster.find_media(job)):
                    self.handles[run_id] = handle
                elif self.cluster is not None and self.cluster.cluster.connected:
                    record.media_job = None
                    record.record(f"{job.action}-lost", "its agent is gone from the cluster")
                    self.store.write_run(record)
                continue
            proc = process.identify(job.pid, job.create_time)
            if proc is not None:
                self.handles[run_id], mismatch = process.adopted(proc, job.pgid)
                if mismatch:  # its own group is cleaned up later, not the recorded number
                    record.record("signal-refused", f"{job.action} pid {job.pid}: {mismatch}")
                    self.store.write_run(record)
                continue
            record.media_job = None
            record.record(f"{job.action}-lost", "the clip process ended while no runner watched")
            self.store.write_run(record)

    def kill(self, record: RunRecord) -> None:
        """End a run's job (the run is being deleted, so a refusal goes to the log)."""
        handle = self.handles.pop(record.id, None)
        self.cancelled.discard(record.id)
        job = record.media_job
        if handle is not None:
            sent = process.kill(handle)
        elif job is not None and not job.agent:
            sent = process.send(job.pid, job.pgid, job.create_time, signal.SIGKILL)
        else:
            return
        if sent.refused:
            log.warning("%s: media job %s", record.id, sent.reason)


def _last_line(store: RunStore, run_id: str) -> str:
    """The media job's last output line for run.json; "" when missing or refused (a link, a
    FIFO: ``runstore.safeio``). Only the log's end is read."""
    from runstore import safeio  # here: the rest of this module is edited in parallel

    try:
        tail = safeio.read_tail(store.paths(run_id).media_log, limit=16_384)
    except OSError:
        return ""
    lines = tail.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else ""
