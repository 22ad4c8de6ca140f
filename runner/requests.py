"""Requests: the files in a run's ``requests/`` (from the dashboard or ``python -m runner``)
applied to the run, oldest first, a slice at a time.

A request file goes once run.json says what it did: a runner killed in between applies it
again (each is harmless twice) rather than losing one.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

from runner import cleanup, process, video_files
from runner.annotations import annotate
from runner.media import MediaJobs
from runner.process import Handle
from runner.records import RunRecords
from runner.trainers import Trainers
from runstore import checkpoints
from runstore.models import RESUMABLE_STATES, RunEvent, RunRecord, RunState
from runstore.store import Request, RunStore, printable

log = logging.getLogger("runner")

#: Requests read from one run's requests/ per step. A flood (thousands of files) is drained
#: a slice at a time, oldest first, with intake, process checks and the heartbeat between
#: slices; the next step comes at once while any are left.
MAX_REQUESTS_PER_STEP = 100


class Requests:
    def __init__(self, store: RunStore, records: RunRecords, trainers: Trainers, media: MediaJobs):
        self.store = store
        self.records = records
        self.trainers = trainers
        self.media = media
        self._unremovable: set[Path] = set()  # not request files, and not removable either
        #: Some run has requests left over from this step: the next step comes at once.
        self.more = False

    def handle(self, run_id: str) -> None:
        """Apply a run's pending requests, oldest first, at most MAX_REQUESTS_PER_STEP of
        them (the rest wait for the next step, which comes at once), and write run.json once
        for all of them: a flood costs one fsync'd rewrite per slice, not one per request."""
        stuck = sum(1 for p in self._unremovable if p.parent.parent.name == run_id)
        limit = MAX_REQUESTS_PER_STEP + stuck
        try:
            requests, invalid = self.store.pending_requests(run_id, limit=limit)
        except OSError:
            return
        self._drop_invalid(invalid)
        more = len(requests) + len(invalid) >= limit  # then the next step comes at once
        if not requests:
            self.more |= more
            return
        if self.records.read(run_id) is None:
            return  # run.json unreadable and nothing known of it: the requests wait
        self.more |= more
        # The files go once run.json says what they did. When run.json cannot be written
        # (a full disk, damage in its place) the runner's copy keeps the outcome and goes to
        # disk with the next write; the requests are done either way.
        done: list[Path] = []
        self.records.defer()
        try:
            for request in requests:
                record = self.records.read(run_id)
                if record is None:  # deleted by an earlier request of this slice
                    break
                self.apply(record, request)
                done.append(request.path)
        finally:
            self.records.flush()
            for path in done:
                path.unlink(missing_ok=True)

    def _drop_invalid(self, invalid: list[Path]) -> None:
        for path in invalid:
            if path in self._unremovable:
                continue
            log.warning("ignored %s: not a request file", printable(str(path)))
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a folder: leave it, and do not fail every step over it
                self._unremovable.add(path)

    def apply(self, record: RunRecord, request: Request) -> None:
        action, state = request.action, record.state
        handle = self.trainers.handles.get(record.id)
        note = f"{action} requested ({request.source})"
        if action == "delete":
            self.delete(record, handle)
        elif action in ("record", "timelapse", "journey"):
            self.media.start(record, request)
        elif action == "cancel-media":
            self.media.cancel(record, request)
        elif action == "pause" and state in (RunState.RUNNING, RunState.STARTING) and handle:
            if self._signalled(record, process.suspend(handle)):
                self.records.set_state(record, RunState.PAUSED, note)
        elif action == "resume" and state == RunState.PAUSED and handle:
            if self._signalled(record, process.resume(handle)):
                self.records.set_state(record, RunState.RUNNING, note)
        elif action == "resume" and state in RESUMABLE_STATES:
            ckpt, _ = checkpoints.latest_complete(self.store.paths(record.id).checkpoints)
            where = f"from {ckpt.dir.name}" if ckpt else "from the start (no checkpoint)"
            record.queued_at = time.time()
            record.reason = ""
            self.records.set_state(record, RunState.QUEUED, f"{note}; will continue {where}")
        elif action == "stop" and state.is_live and state != RunState.STOPPING and handle:
            if isinstance(pruned := request.params.get("pruned_at"), int):
                record.pruned_at = pruned
            if self._signalled(record, process.request_stop(handle)):
                grace = self.trainers.stop_grace
                self.trainers.deadlines[record.id] = time.monotonic() + grace
                self.records.set_state(record, RunState.STOPPING, note)
        elif action == "trust":
            self._trust(record, handle, note)
        elif action == "annotate":  # tags, note, archived: any state
            if annotate(record, request):
                self.records.write(record)
        elif action == "cleanup":
            busy = {"trainer": handle is not None, "clip_job": record.id in self.media.handles}
            cleanup.apply(self.store, record, request, **busy)
            self.records.write(record)
        elif action == "video":  # delete a video or set its title: any state
            busy = record.id in self.media.handles
            if video_files.apply(self.store, record, request, media_job=busy):
                self.records.write(record)
        elif action == "stop" and state == RunState.QUEUED:
            if isinstance(pruned := request.params.get("pruned_at"), int):
                record.pruned_at = pruned
            record.ended_at = time.time()
            record.reason = "stopped before it started"
            self.records.set_state(record, RunState.STOPPED, note)
        else:
            self._ignored(record, action, state)

    def _trust(self, record: RunRecord, handle: Handle | None, note: str) -> None:
        """Sign an imported run with this folder's key (its trainer writes manifests, so
        never while one runs: checkpoints.trust_run)."""
        state = record.state
        if state.is_live or handle is not None:
            record.record("trust-refused", f"{note}: the run is {state.value}; stop it first")
        else:
            try:
                signed = checkpoints.trust_run(self.store.paths(record.id).dir)
            except (OSError, ValueError) as exc:
                record.record("trust-failed", f"{note}: {exc}")
            else:
                what = ", ".join(signed) or "nothing to sign"
                record.record("trusted", f"{note}: signed with this runs folder's key: {what}")
        self.store.write_run(record)

    def delete(self, record: RunRecord, handle: Handle | None) -> None:
        """Delete a run: its process group is killed first (a checkpoint about to be deleted
        is not worth a graceful stop), then its folder goes."""
        if handle is not None:
            process.kill(handle)
            deadline = time.monotonic() + 10
            while handle.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        elif record.state.is_live and record.pgid and record.node is None:
            sent = process.send(record.pid, record.pgid, record.create_time, signal.SIGKILL)
            if sent.refused:  # the folder goes: the runner's log keeps the reason
                log.warning("delete %s: %s", record.id, sent.reason)
        self.media.kill(record)
        self.trainers.handles.pop(record.id, None)
        self.trainers.deadlines.pop(record.id, None)
        self.records.forget(record.id)
        try:
            self.store.delete_run(record.id)
        except OSError:  # a dying worker wrote one last file; the second pass gets it
            time.sleep(0.5)
            self.store.delete_run(record.id)
        log.info("deleted %s (was %s)", record.id, record.state.value)

    def _signalled(self, record: RunRecord, sent: process.Sent) -> bool:
        """Whether a pause, resume or stop reached the run's processes; when not, run.json
        says why (an identity that no longer matches, or nothing left to signal) and the
        state stays as it was."""
        if sent.refused or not sent:
            record.record("signal-refused" if sent.refused else "request-ignored", sent.reason)
            self.store.write_run(record)
            log.warning("%s: %s", record.id, sent.reason)
            return False
        if sent.pending:
            record.record("pause-pending", sent.reason)
        return True

    def _ignored(self, record: RunRecord, action: str, state: RunState) -> None:
        """A request that does nothing in this state: one event for a run of them, with a
        count, and one log line, so a flood neither grows run.json nor the log."""
        what = f"{action} does nothing in state {state.value}"
        same = None
        for event in reversed(record.events):  # the trailing run of ignored-request events
            if event.kind != "request-ignored":
                break
            if _ignored_base(event) == what:
                same = event
                break
        if same is not None:
            same.count += 1
            same.detail = f"{what} ({same.count} requests)"
        else:
            record.record("request-ignored", what)
            log.info("%s: ignored %s in state %s (repeats are counted)", record.id, action, state)
        self.records.write(record)


def _ignored_base(event: RunEvent) -> str:
    return event.detail.split(" (", 1)[0]
