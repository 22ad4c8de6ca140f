"""The training processes: launch one per run, watch it, reap it, adopt it after a restart.

Every signal goes through ``runner.process`` (identity checked first); every outcome goes
into run.json through the runner's copy (``runner.records``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from runner import outcome, process, resources
from runner.media import MediaJobs
from runner.process import Handle
from runner.records import RunRecords
from runstore.atomic import remove_stale_temp_files
from runstore.models import RunRecord, RunState, TrainStatus
from runstore.store import RunStore, printable

if TYPE_CHECKING:
    from runner.cluster.runs import ClusterRuns

log = logging.getLogger("runner")


class Trainers:
    def __init__(
        self,
        store: RunStore,
        records: RunRecords,
        media: MediaJobs,
        handles: dict[str, Handle],
    ):
        self.store = store
        self.records = records
        self.media = media
        self.handles = handles  # run id -> its trainer (shared with ``records``)
        self.deadlines: dict[str, float] = {}  # run id -> kill after (monotonic) when stopping
        self.stop_grace = 30.0
        self.max_concurrent = 1  # runs training at once here: they share the cores
        #: With a Ray address, runs are placed on the cluster (``runner.cluster``); None: here.
        self.cluster: ClusterRuns | None = None
        self._told: set[str] = set()  # cluster runs this runner (without Ray) leaves alone

    def launch(self, record: RunRecord) -> None:
        paths = self.store.paths(record.id)
        record.attempts += 1
        record.started_at = record.started_at or time.time()
        record.exit_code = None
        record.reason = ""
        record.ended_at = None
        # The previous attempt's pid must not survive into this one: a runner killed before
        # the new pid is recorded would be adopted as that old (dead) process.
        record.pid = record.pgid = record.create_time = None
        if self.cluster is not None:
            self.records.set_state(record, RunState.STARTING, "placing it on the cluster")
            _rotate(paths.trainer_log)
            self.cluster.launch(record)
            return
        self.records.set_state(record, RunState.STARTING, "spawning the training process")
        _rotate(paths.trainer_log)
        try:  # cores, nice, GPU and the memory preflight (runner/resources.py)
            plan, warnings = resources.prepare(
                self.store.read_config(record.id), share=self.max_concurrent
            )
        except (ValueError, OSError) as exc:
            record.reason = f"cannot start: {exc}"
            self.records.set_state(record, RunState.FAILED, record.reason)
            return
        for warning in warnings:
            record.record("preflight-warning", warning)
        try:
            handle = process.spawn_trainer(paths.dir, paths.trainer_log, plan)
        except OSError as exc:
            record.reason = f"could not start the training process: {exc}"
            self.records.set_state(record, RunState.FAILED, record.reason)
            return
        record.pid, record.pgid, record.create_time = handle.pid, handle.pgid, handle.create_time
        record.record("spawned", f"pid {handle.pid}")
        record.record("resources", plan.describe())
        for note in handle.notes:
            record.record("resources-warning", note)
        self.records.write(record)
        self.handles[record.id] = handle
        log.info("started %s (pid %d)", record.id, handle.pid)

    def check(self, run_id: str, handle: Handle) -> None:
        """One run's trainer: its exit, its start, its stop deadline."""
        record = self.records.read(run_id)
        if record is None:
            if self.records.folder_gone(run_id):  # the folder was deleted under us
                process.kill(handle)
                del self.handles[run_id]
            return  # run.json unreadable and never known: leave the trainer alone
        if self.cluster is not None and self.cluster.placed(record, handle):
            return  # a node that could not take it: failed with the reason
        if not handle.is_alive():
            self.finish(record, handle)
            return
        handle.sample_rss()
        if record.state == RunState.STARTING:
            status = self.store.read_status(run_id)
            if status and status.pid == handle.pid and status.phase != "starting":
                self.records.set_state(record, RunState.RUNNING, "training")
        elif record.state == RunState.STOPPING:
            deadline = self.deadlines.setdefault(run_id, time.monotonic() + self.stop_grace)
            if time.monotonic() > deadline:
                log.warning("%s did not stop within %.0f s; killing it", run_id, self.stop_grace)
                record.record("killed", f"no exit {self.stop_grace:.0f} s after stop")
                self.records.write(record)
                process.kill(handle)

    def finish(self, record: RunRecord, handle: Handle) -> None:
        """The trainer exited: record the truth and clean up whatever is left of its group."""
        sent = process.kill(handle)  # stray env workers; the stored pgid still reaches them
        if sent.refused:
            record.record("signal-refused", sent.reason)
            log.warning("%s: %s", record.id, sent.reason)
        self.handles.pop(record.id, None)
        self.deadlines.pop(record.id, None)
        status = self.store.read_status(record.id)
        state = outcome.judge(self.store, record, handle, status)
        self.records.set_state(record, state, record.reason)
        log.info("%s %s: %s", record.id, state.value, printable(record.reason))

    def adopt_one(self, run_id: str) -> None:
        """Take over one run a previous supervisor left: a live one is adopted by (pid,
        create time); one whose process is gone gets the outcome it recorded, or ``lost``."""
        if run_id in self.handles:  # already ours (adopt runs again: see RunRecords.read)
            return
        record = self.records.read(run_id)
        if record is None or not record.state.is_live:
            return
        if record.node is not None:  # on a cluster node: its pid means nothing here
            if self.cluster is not None:
                self.cluster.adopt(record)
            elif record.id not in self._told:  # left alone, said once
                self._told.add(record.id)
                log.warning(
                    "%s trains on the Ray cluster (%s): left alone; start the runner with "
                    "--ray-address to supervise it",
                    record.id,
                    record.node.describe(),
                )
            return
        proc = process.identify(record.pid, record.create_time)
        if proc is None and record.pid is None:  # killed between "starting" and the spawn
            found = process.find_trainers(self.store.paths(run_id).dir)
            proc = found[0] if found else None
            status = self._attempt_status(record)
            if proc is None and status is not None and status.pid:
                # it started, and ended while no runner watched: its status says how
                record.pid, record.pgid = status.pid, status.pid
                record.create_time = status.create_time
            elif proc is None:
                record.attempts = max(0, record.attempts - 1)
                record.started_at = record.started_at if record.attempts else None
                self.records.set_state(
                    record, RunState.QUEUED, "the runner stopped before the spawn; queued again"
                )
                return
        if proc is None:
            # Only now: a live trainer's temp files are its status.json being written.
            remove_stale_temp_files(self.store.paths(run_id).dir)
            handle = Handle(record.pid or 0, record.pgid or 0, record.create_time or 0.0)
            self.finish(record, handle)
            return
        self._take_over(record, proc)

    def _take_over(self, record: RunRecord, proc: psutil.Process) -> None:
        """``adopt_one`` of a live trainer: hold it, and re-assert the recorded state."""
        handle, mismatch = process.adopted(proc, record.pgid)
        if mismatch:  # signals go to the group it leads, never to the recorded number
            record.record("signal-refused", f"pid {proc.pid}: {mismatch}")
        self.handles[record.id] = handle
        record.pid, record.pgid, record.create_time = (
            handle.pid,
            handle.pgid,
            handle.create_time,
        )
        # Re-assert the recorded state: the old runner may have died between a signal
        # and its record.
        if record.state == RunState.PAUSED:
            process.suspend(handle)
        elif record.state == RunState.STOPPING:
            process.request_stop(handle)
        else:
            process.resume(handle)
        record.record("adopted", f"by runner pid {os.getpid()}")
        self.store.write_run(record)
        log.info("adopted %s (pid %d, %s)", record.id, proc.pid, record.state.value)

    def _attempt_status(self, record: RunRecord) -> TrainStatus | None:
        """status.json if the trainer of the current attempt wrote it (not an earlier one)."""
        status = self.store.read_status(record.id)
        began = max((e.at for e in record.events if e.kind == "starting"), default=None)
        if status is None or began is None or (status.started_at or 0.0) < began:
            return None
        return status


def _rotate(log_path: Path, max_bytes: int = 10 * 2**20) -> None:
    """Keep the trainer's stdout log bounded: one previous generation at most."""
    try:
        if log_path.stat().st_size > max_bytes:
            os.replace(log_path, log_path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
