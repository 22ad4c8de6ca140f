"""The runner supervisor: queue intake, one training process per run, requests, adoption.

It is the only component that starts or signals training processes, and the only writer of
run.json. Everything it decides comes from the store (queue files, request files, status.json)
and from the process table, so a new supervisor can pick up exactly where a killed one stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
from filelock import Timeout
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from runner import process, resources
from runner.media import MediaJobs
from runner.process import Handle
from runstore import checkpoints
from runstore.atomic import remove_stale_temp_files
from runstore.config import ConfigError
from runstore.models import (
    RESUMABLE_STATES,
    RunEvent,
    RunnerInfo,
    RunRecord,
    RunState,
    TrainStatus,
)
from runstore.paths import UnsafePathError, file_stamp
from runstore.settings import SettingsError, load_settings, settings_path
from runstore.store import Request, RunStore, printable
from training.failures import explain

log = logging.getLogger("runner")
T = TypeVar("T")

VERSION = "0.1.0"
#: runner.json is rewritten this often, so its age stays under 5 s even just before the next
#: write (readers call a runner stale well after that; see the dashboard's System page).
HEARTBEAT_SECONDS = 2.0
#: Requests read from one run's requests/ per step. A flood (thousands of files) is drained
#: a slice at a time, oldest first, with intake, process checks and the heartbeat between
#: slices; the next step comes at once while any are left.
MAX_REQUESTS_PER_STEP = 100
#: An unreadable run.json is rewritten from the runner's copy once it has stayed unreadable
#: this long: a hand edit being saved, or an ``rm -rf`` of the folder under way, is not
#: raced (a folder that is really gone counts as deleted).
DAMAGE_GRACE_SECONDS = 1.0
# An invalid queue file this fresh may still be being written; look again before rejecting.
FRESH_FILE_SECONDS = 1.0
#: A bad file that cannot be moved to rejected/ is retried after 5 s, then ever less often.
REJECT_RETRY_SECONDS = 5.0
REJECT_RETRY_MAX_SECONDS = 300.0


class AlreadyRunningError(RuntimeError):
    pass


class _Wake(FileSystemEventHandler):
    def __init__(self, event: threading.Event):
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


class Supervisor:
    def __init__(
        self,
        store: RunStore,
        max_concurrent: int | None = None,
        stop_grace: float | None = None,
        poll: float = 0.5,
    ):
        self.store = store
        # None: follow settings.yaml in the runs folder; a value (a CLI flag) pins it.
        self._pinned = {"max_concurrent": max_concurrent, "stop_grace": stop_grace}
        self.max_concurrent = max_concurrent or 1
        self.stop_grace = stop_grace or 30.0
        self.config_defaults: dict = {}
        self._settings_stamp: tuple[int, int] | None = (-1, -1)  # no file's: load at start
        self.poll = poll
        self.handles: dict[str, Handle] = {}
        self.media = MediaJobs(store)  # clip/time-lapse jobs, beside training (runner/media.py)
        self.deadlines: dict[str, float] = {}
        self.wake = threading.Event()
        self.shutdown = threading.Event()
        self._lock = store.runner_lock()
        self._observer: Observer | None = None
        self._watched: set[str] = set()
        self._unremovable: set[Path] = set()
        # Queue files that could not be moved to rejected/: name -> (stamp, retry at, delay).
        self._stuck: dict[str, tuple[tuple[int, int] | None, float, float]] = {}
        self._records: dict[str, tuple[tuple[int, int] | None, RunRecord]] = {}
        # run.json files that could not be read: run id -> (first seen, monotonic; the
        # rewrite failed and that was logged; the damaged file's stamp, not read again).
        self._damaged: dict[str, tuple[float, bool, tuple[int, int] | None]] = {}
        self._unreadable_logged: set[str] = set()  # damaged with no copy to rewrite from
        # Queue files whose mtime lies in the future: name -> (stamp, first seen, monotonic).
        self._first_seen: dict[str, tuple[tuple[int, int] | None, float]] = {}
        # While requests of one run are applied, run.json is written once, at the end.
        self._deferred: dict[str, RunRecord] | None = None
        self._more_requests = False
        self._adopt_again = False
        # Per-run work that raised: (run id, what) -> the error, logged once (``_contained``).
        self._failing: dict[tuple[str, str], str] = {}
        self._started = time.time()
        self._next_heartbeat = 0.0

    # -- life of the supervisor -----------------------------------------------------------

    def start(self) -> None:
        self.store.ensure_layout()
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            info = self.store.read_runner_info()
            who = f" (pid {info.pid} on {info.host})" if info else ""
            raise AlreadyRunningError(
                f"another runner{who} is already supervising {self.store.root}; "
                "stop it first, or use --runs-dir for another folder"
            ) from None
        self.load_settings()
        remove_stale_temp_files(self.store.root)
        for restored in self.store.recover_partial():
            log.warning(
                "put back %s from a run folder a killed runner left half-made",
                printable(str(restored)),
            )
        self.adopt()
        self.media.adopt()
        self.heartbeat(force=True)
        self._observer = Observer()
        self._observer.schedule(_Wake(self.wake), str(self.store.queue_dir), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        for run_id in self.store.run_ids():
            self._watch_requests(run_id)
        log.info(
            "supervising %s (max_concurrent=%d, pid %d)",
            self.store.root,
            self.max_concurrent,
            os.getpid(),
        )

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.shutdown.is_set():
                try:
                    self.step()
                except Exception:  # one bad run or a full disk must not end supervision
                    log.exception("supervisor step failed; retrying")
                if not self._more_requests:  # a flood is being drained: next slice at once
                    self._idle()
        finally:
            self.close()

    def _idle(self) -> None:
        """Wait for a file event or the poll interval, keeping the heartbeat fresh: a long
        --poll never lets runner.json age past HEARTBEAT_SECONDS while the runner is fine."""
        end = time.monotonic() + self.poll
        while not self.shutdown.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            if self.wake.wait(min(left, max(0.05, self._next_heartbeat - time.time()))):
                break
            with contextlib.suppress(OSError):  # a full disk: the next step logs it
                self.heartbeat()
        self.wake.clear()

    def close(self) -> None:
        """Leave training processes running: a new supervisor adopts them."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._lock.is_locked:
            self._lock.release()
        log.info("runner stopped; %d training process(es) left running", len(self.handles))

    def step(self) -> None:
        """One pass: intake, requests, process checks, scheduling. Safe to call any time."""
        self._more_requests = False
        self.load_settings()
        self.intake()
        for run_id in self.store.run_ids():
            self._contained(run_id, "requests", self.handle_requests, run_id)
            self.heartbeat()  # time-gated: cheap, and fresh through a flood over many runs
        self.check_processes()
        if self._adopt_again:
            self._adopt_again = False
            self.adopt()
        self.media.check()
        self.schedule()
        self.heartbeat()

    def load_settings(self) -> None:
        """Apply runs/settings.yaml when it changed; a bad file keeps the last good settings."""
        path = settings_path(self.store.root)
        stamp = file_stamp(path)
        if stamp == self._settings_stamp:
            return
        self._settings_stamp = stamp
        try:
            settings = load_settings(self.store.root)
        except (SettingsError, OSError) as exc:
            log.error("ignored %s (keeping the previous settings): %s", path, printable(str(exc)))
            return
        for name in ("max_concurrent", "stop_grace"):
            pinned = self._pinned[name]
            setattr(self, name, pinned if pinned is not None else getattr(settings, name))
        self.config_defaults = settings.config_defaults()
        log.info(
            "settings: max_concurrent=%d stop_grace=%.0f s defaults=%s",
            self.max_concurrent,
            self.stop_grace,
            self.config_defaults or "none",
        )
        self._next_heartbeat = 0.0  # runner.json shows the new max_concurrent at once

    def heartbeat(self, force: bool = False) -> None:
        now = time.time()
        if force or now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            self.store.write_runner_info(
                RunnerInfo(
                    pid=os.getpid(),
                    host=socket.gethostname(),
                    started=self._started,
                    heartbeat_at=now,
                    version=VERSION,
                    max_concurrent=self.max_concurrent,
                )
            )

    # -- intake ---------------------------------------------------------------------------

    def intake(self) -> None:
        files = self.store.queue_files()
        if self._stuck or self._first_seen:  # forget files that left the queue
            names = {p.name for p in files}
            self._stuck = {k: v for k, v in self._stuck.items() if k in names}
            self._first_seen = {k: v for k, v in self._first_seen.items() if k in names}
        for path in files:
            if self._backing_off(path):
                continue
            try:
                config = self.store.read_queue_file(path, self.config_defaults)
            except FileNotFoundError:
                continue  # claimed or removed meanwhile
            except ConfigError as exc:
                if self._is_fresh(path):
                    continue
                self._reject(path, exc.problems)
                continue
            except OSError as exc:
                self._reject(path, [f"could not read the file: {exc}"])
                continue
            except Exception as exc:  # a validator bug must not block every later file
                log.exception("reading %s failed", printable(path.name))
                self._reject(path, [f"could not validate the file ({exc!r}); please report"])
                continue
            record = self.store.accept(path, config)
            if record is not None:
                log.info("queued %s from %s", record.id, printable(path.name))
                self._watch_requests(record.id)

    def _reject(self, path: Path, problems: list[str]) -> None:
        """Move a bad file to rejected/. When that fails (the folder is not writable, or a
        file sits in its place) the file stays in the queue with a note beside it and is
        retried with a growing delay, so one stuck file neither blocks the files after it
        nor makes the runner spin; a changed file is looked at again at once."""
        try:
            target = self.store.reject(path, problems)
        except FileNotFoundError:
            return  # removed meanwhile
        except OSError as exc:
            stamp = file_stamp(path)
            _, _, delay = self._stuck.get(path.name, (None, 0.0, REJECT_RETRY_SECONDS / 2))
            delay = min(delay * 2, REJECT_RETRY_MAX_SECONDS)
            if path.name not in self._stuck:
                log.error(
                    "could not move %s to %s (%s); it stays in the queue and is retried after "
                    "%.0f s, then less often (every %.0f s at most)",
                    printable(path.name),
                    self.store.rejected_dir,
                    printable(str(exc)),
                    REJECT_RETRY_SECONDS,
                    REJECT_RETRY_MAX_SECONDS,
                )
                self.store.note_unmovable(path, problems, exc)
            self._stuck[path.name] = (stamp, time.monotonic() + delay, delay)
            return
        self._stuck.pop(path.name, None)
        # Names (and problems quoting them) are escaped: a newline in a file name must not
        # forge a log line, nor an ANSI escape or U+202E rewrite what a terminal shows.
        log.warning("rejected %s: %s", printable(path.name), printable("; ".join(problems)))
        log.info("moved to %s", printable(str(target)))

    def _backing_off(self, path: Path) -> bool:
        stuck = self._stuck.get(path.name)
        if stuck is None:
            return False
        stamp, retry_at, _ = stuck
        if file_stamp(path) != stamp:  # edited or replaced: look at it now
            del self._stuck[path.name]
            return False
        return time.monotonic() < retry_at

    def _is_fresh(self, path: Path) -> bool:
        """True while an invalid file may still be being written (modified < 1 s ago).

        An mtime in the future (a clock set back, a file from another machine or a tool that
        sets times) says nothing about that: such a file is fresh only for its first second
        as seen by this runner, and a change to it starts that second again."""
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return False
        if age >= 0:
            self._first_seen.pop(path.name, None)
            return age < FRESH_FILE_SECONDS
        stamp, now = file_stamp(path), time.monotonic()
        seen = self._first_seen.get(path.name)
        if seen is None or seen[0] != stamp:
            self._first_seen[path.name] = seen = (stamp, now)
        return now - seen[1] < FRESH_FILE_SECONDS

    def _watch_requests(self, run_id: str) -> None:
        if self._observer is None or run_id in self._watched:
            return
        folder = self.store.paths(run_id).requests
        folder.mkdir(exist_ok=True)
        self._observer.schedule(_Wake(self.wake), str(folder), recursive=False)
        self._watched.add(run_id)

    # -- scheduling -----------------------------------------------------------------------

    def schedule(self) -> None:
        free = self.max_concurrent - len(self.handles)
        if free <= 0:
            return
        queued = []
        for run_id in self.store.run_ids():
            record = self._contained(run_id, "reading run.json", self._read_run, run_id)
            if record is not None and record.state == RunState.QUEUED:
                queued.append(record)
        queued.sort(key=lambda r: (r.queued_at, r.id))
        for record in queued[:free]:
            self._contained(record.id, "starting", self.launch, record)

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
        self._set_state(record, RunState.STARTING, "spawning the training process")
        _rotate(paths.trainer_log)
        try:  # cores, nice, GPU and the memory preflight (runner/resources.py)
            plan, warnings = resources.prepare(self.store.read_config(record.id))
        except (ValueError, OSError) as exc:
            record.reason = f"cannot start: {exc}"
            self._set_state(record, RunState.FAILED, record.reason)
            return
        for warning in warnings:
            record.record("preflight-warning", warning)
        try:
            handle = process.spawn_trainer(paths.dir, paths.trainer_log, plan)
        except OSError as exc:
            record.reason = f"could not start the training process: {exc}"
            self._set_state(record, RunState.FAILED, record.reason)
            return
        record.pid, record.pgid, record.create_time = handle.pid, handle.pgid, handle.create_time
        record.record("spawned", f"pid {handle.pid}")
        record.record("resources", plan.describe())
        for note in handle.notes:
            record.record("resources-warning", note)
        self._write_run(record)
        self.handles[record.id] = handle
        log.info("started %s (pid %d)", record.id, handle.pid)

    # -- requests -------------------------------------------------------------------------

    def handle_requests(self, run_id: str) -> None:
        """Apply a run's pending requests, oldest first, at most MAX_REQUESTS_PER_STEP of
        them (the rest wait for the next step, which comes at once), and write run.json once
        for all of them: a flood costs one fsync'd rewrite per slice, not one per request."""
        stuck = sum(1 for p in self._unremovable if p.parent.parent.name == run_id)
        limit = MAX_REQUESTS_PER_STEP + stuck
        try:
            requests, invalid = self.store.pending_requests(run_id, limit=limit)
        except OSError:
            return
        for path in invalid:
            if path in self._unremovable:
                continue
            log.warning("ignored %s: not a request file", printable(str(path)))
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a folder: leave it, and do not fail every step over it
                self._unremovable.add(path)
        more = len(requests) + len(invalid) >= limit  # then the next step comes at once
        if not requests:
            self._more_requests |= more
            return
        if self._read_run(run_id) is None:
            return  # run.json unreadable and nothing known of it: the requests wait
        self._more_requests |= more
        # The files go once run.json says what they did: a runner killed in between applies
        # them again (each is harmless twice) rather than losing one. When run.json cannot
        # be written (a full disk, damage in its place) the runner's copy keeps the outcome
        # and goes to disk with the next write; the requests are done either way.
        done: list[Path] = []
        self._deferred = {}
        try:
            for request in requests:
                record = self._read_run(run_id)
                if record is None:  # deleted by an earlier request of this slice
                    break
                self.apply(record, request)
                done.append(request.path)
        finally:
            deferred, self._deferred = self._deferred, None
            for record in deferred.values():
                if record.id not in self._records:  # deleted meanwhile
                    continue
                try:
                    self._write_run(record)
                except OSError as exc:
                    log.error("%s: could not write run.json (%s)", record.id, exc)
            for path in done:
                path.unlink(missing_ok=True)

    def apply(self, record: RunRecord, request: Request) -> None:
        action, state = request.action, record.state
        handle = self.handles.get(record.id)
        note = f"{action} requested ({request.source})"
        if action == "delete":
            self.delete(record, handle)
        elif action in ("record", "timelapse"):
            self.media.start(record, request)
        elif action == "pause" and state in (RunState.RUNNING, RunState.STARTING) and handle:
            if self._signalled(record, process.suspend(handle)):
                self._set_state(record, RunState.PAUSED, note)
        elif action == "resume" and state == RunState.PAUSED and handle:
            if self._signalled(record, process.resume(handle)):
                self._set_state(record, RunState.RUNNING, note)
        elif action == "resume" and state in RESUMABLE_STATES:
            ckpt, _ = checkpoints.latest_complete(self.store.paths(record.id).checkpoints)
            where = f"from {ckpt.dir.name}" if ckpt else "from the start (no checkpoint)"
            record.queued_at = time.time()
            record.reason = ""
            self._set_state(record, RunState.QUEUED, f"{note}; will continue {where}")
        elif action == "stop" and state.is_live and state != RunState.STOPPING and handle:
            if self._signalled(record, process.request_stop(handle)):
                self.deadlines[record.id] = time.monotonic() + self.stop_grace
                self._set_state(record, RunState.STOPPING, note)
        elif action == "trust":  # sign an imported run with this folder's key (its trainer
            # writes manifests, so never while one runs: checkpoints.trust_run)
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
        elif action == "stop" and state == RunState.QUEUED:
            record.ended_at = time.time()
            record.reason = "stopped before it started"
            self._set_state(record, RunState.STOPPED, note)
        else:
            self._ignored(record, action, state)

    def delete(self, record: RunRecord, handle: Handle | None) -> None:
        """Delete a run: its process group is killed first (a checkpoint about to be deleted
        is not worth a graceful stop), then its folder goes."""
        if handle is not None:
            process.kill(handle)
            deadline = time.monotonic() + 10
            while handle.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        elif record.state.is_live and record.pgid:
            sent = process.send(record.pid, record.pgid, record.create_time, signal.SIGKILL)
            if sent.refused:  # the folder goes: the runner's log keeps the reason
                log.warning("delete %s: %s", record.id, sent.reason)
        self.media.kill(record)
        self.handles.pop(record.id, None)
        self.deadlines.pop(record.id, None)
        self._records.pop(record.id, None)
        try:
            self.store.delete_run(record.id)
        except OSError:  # a dying worker wrote one last file; the second pass gets it
            time.sleep(0.5)
            self.store.delete_run(record.id)
        log.info("deleted %s (was %s)", record.id, record.state.value)

    # -- watching processes ---------------------------------------------------------------

    def check_processes(self) -> None:
        for run_id, handle in list(self.handles.items()):
            self._contained(run_id, "checking its process", self._check_process, run_id, handle)

    def _check_process(self, run_id: str, handle: Handle) -> None:
        """One run of ``check_processes``: its exit, its start, its stop deadline."""
        record = self._read_run(run_id)
        if record is None:
            if self._folder_gone(run_id):  # the folder was deleted under us
                process.kill(handle)
                del self.handles[run_id]
            return  # run.json unreadable and never known: leave the trainer alone
        if not handle.is_alive():
            self.finish(record, handle)
            return
        handle.sample_rss()
        if record.state == RunState.STARTING:
            status = self.store.read_status(run_id)
            if status and status.pid == handle.pid and status.phase != "starting":
                self._set_state(record, RunState.RUNNING, "training")
        elif record.state == RunState.STOPPING:
            deadline = self.deadlines.setdefault(run_id, time.monotonic() + self.stop_grace)
            if time.monotonic() > deadline:
                log.warning("%s did not stop within %.0f s; killing it", run_id, self.stop_grace)
                record.record("killed", f"no exit {self.stop_grace:.0f} s after stop")
                self._write_run(record)
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
        code = handle.exit_code()
        record.exit_code = code
        record.ended_at = time.time()
        record.diagnosis = status.diagnosis if status and status.pid == handle.pid else None
        outcome = status.outcome if status and status.pid == handle.pid else None
        if outcome in ("completed", "stopped", "failed"):
            state = RunState(outcome)
            record.reason = status.reason if status else ""
            if state == RunState.COMPLETED and record.state == RunState.STOPPING:
                state = RunState.STOPPED  # a stop that raced the last step
        elif code is not None:
            state = RunState.FAILED
            sig = process.signal_name(code)
            record.diagnosis = explain(
                _tail(self.store.paths(record.id).trainer_log),
                None,
                exit_signal=-code if code < 0 else None,
                rss_bytes=handle.peak_rss or None,
                mem_total_bytes=psutil.virtual_memory().total,
            ).to_dict()
            record.reason = (
                f"the training process was killed by {sig} before it could record an outcome"
                if sig
                else f"the training process exited with code {code} without recording an outcome"
            )
            if record.state == RunState.STOPPING and sig in ("SIGKILL", "SIGTERM"):
                # SIGTERM before the trainer installed its handler (still importing), or the
                # kill after the grace period: either way the stop the user asked for.
                state = RunState.STOPPED
                record.reason = f"stopped ({sig} before it could save a checkpoint)"
        else:
            state = RunState.LOST
            record.reason = "the training process vanished without recording an outcome"
        self._set_state(record, state, record.reason)
        log.info("%s %s: %s", record.id, state.value, printable(record.reason))

    def adopt(self) -> None:
        """Take over runs a previous supervisor left: live ones are adopted by (pid, create
        time); those whose process is gone get the outcome they recorded, or ``lost``."""
        for run_id in self.store.run_ids():
            self._contained(run_id, "adopting", self._adopt_one, run_id)

    def _adopt_one(self, run_id: str) -> None:
        """One run of ``adopt``."""
        if run_id in self.handles:  # already ours (adopt runs again: see _read_run)
            return
        record = self._read_run(run_id)
        if record is None or not record.state.is_live:
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
                self._set_state(
                    record, RunState.QUEUED, "the runner stopped before the spawn; queued again"
                )
                return
        if proc is None:
            # Only now: a live trainer's temp files are its status.json being written.
            remove_stale_temp_files(self.store.paths(run_id).dir)
            handle = Handle(record.pid or 0, record.pgid or 0, record.create_time or 0.0)
            self.finish(record, handle)
            return
        handle, mismatch = process.adopted(proc, record.pgid)
        if mismatch:  # signals go to the group it leads, never to the recorded number
            record.record("signal-refused", f"pid {proc.pid}: {mismatch}")
        self.handles[run_id] = handle
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
        log.info("adopted %s (pid %d, %s)", run_id, proc.pid, record.state.value)

    # -- helpers --------------------------------------------------------------------------

    def _contained(self, run_id: str, what: str, work: Callable[..., T], *args: Any) -> T | None:
        """``work(*args)`` for one run; whatever it raises is that run's problem, not the
        step's: the other runs, intake and the heartbeat go on. It is logged with its
        traceback once (not twice a second while it lasts) and once more when it is over;
        None stands for the result."""
        key = (run_id, what)
        try:
            result = work(*args)
        except Exception as exc:
            said = f"{type(exc).__name__}: {exc}"[:300]
            if self._failing.get(key) != said:
                self._failing[key] = said
                log.exception(
                    "%s: %s failed (%s); the other runs go on, and it is tried again each step",
                    run_id,
                    what,
                    printable(said),
                )
            return None
        if self._failing.pop(key, None) is not None:
            log.info("%s: %s works again", run_id, what)
        return result

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

    def _attempt_status(self, record: RunRecord) -> TrainStatus | None:
        """status.json if the trainer of the current attempt wrote it (not an earlier one)."""
        status = self.store.read_status(record.id)
        began = max((e.at for e in record.events if e.kind == "starting"), default=None)
        if status is None or began is None or (status.started_at or 0.0) < began:
            return None
        return status

    def _read_run(self, run_id: str) -> RunRecord | None:
        """run.json, parsed again only when it changed on disk; None when the run is gone.

        The loop looks at every run twice a second; with hundreds of run folders, parsing
        each document every time would keep an idle runner busy.

        Only a run folder that is really gone means the run was deleted. A run.json that
        cannot be read (cut short, garbage, missing, a folder in its place, EACCES, EMFILE)
        while the folder is there is damage: the runner goes on with the copy it keeps of
        every run it has read or written, says so once (log and a run event), and rewrites
        the file from that copy. A valid run.json written by someone else that contradicts
        the process this runner holds for the run (its state, pid or create time) is
        treated the same way: the runner, its only writer, knows better. Without a copy
        (damaged before this runner ever read it) the run is left alone until it is fixed.
        """
        try:
            run_json = self.store.paths(run_id).run_json
        except UnsafePathError:  # a link planted in the folder's place: not our run now
            return None
        key = file_stamp(run_json)
        cached = self._records.get(run_id)
        if cached is not None and key is not None and cached[0] == key:
            return cached[1]
        damaged = self._damaged.get(run_id)
        if cached is not None and damaged is not None and key is not None and damaged[2] == key:
            return self._damaged_run(cached[1], key, "")  # the same damage: not read again
        record = self.store.read_run(run_id) if key is not None else None
        if record is not None and record.id != run_id:  # another run's run.json, copied in
            record = None
        if record is not None:
            known = cached[1] if cached is not None else None
            if (
                known is None
                or run_id not in self.handles
                or _lifecycle(record) == _lifecycle(known)
            ):
                self._records[run_id] = (key, record)
                self._damaged.pop(run_id, None)
                if run_id in self._unreadable_logged:
                    self._unreadable_logged.discard(run_id)
                    # Fixed at last: a live run nobody adopted (damaged when this runner
                    # started) is adopted now, or ends with the truth.
                    self._adopt_again |= record.state.is_live and run_id not in self.handles
                return record
            return self._damaged_run(
                known,
                key,
                f"was replaced by one that says {record.state.value} (pid {record.pid})",
                "run-json-replaced",
            )
        if self._folder_gone(run_id):
            self._records.pop(run_id, None)
            self._damaged.pop(run_id, None)
            return None
        if cached is None:
            if run_id not in self._unreadable_logged:
                self._unreadable_logged.add(run_id)
                log.error(
                    "%s: run.json is unreadable (%s) and this runner has no copy of it; "
                    "the run is left alone until the file is fixed",
                    run_id,
                    _unreadable_why(run_json, key),
                )
            return None
        what = "" if damaged else f"is unreadable ({_unreadable_why(run_json, key)})"
        return self._damaged_run(cached[1], key, what, "run-json-damaged")

    def _damaged_run(
        self, record: RunRecord, stamp: tuple[int, int] | None, what: str, kind: str = ""
    ) -> RunRecord:
        """Go on with the runner's copy of a run whose run.json is damaged: log and record
        it once, then, after DAMAGE_GRACE_SECONDS, write the copy back (each step until that
        works, an error logged once)."""
        now = time.monotonic()
        seen = self._damaged.get(record.id)
        if seen is None:
            self._damaged[record.id] = (now, False, stamp)
            log.warning(
                "%s: run.json %s; the training process is left alone and run.json is "
                "rewritten from the runner's copy",
                record.id,
                what,
            )
            record.record(kind, f"run.json {what}; rewritten from the runner's copy")
            return record
        first, failure_logged, _ = seen
        self._damaged[record.id] = (first, failure_logged, stamp)
        if now - first < DAMAGE_GRACE_SECONDS:
            return record
        try:
            self._write_run(record)
        except OSError as exc:
            if not failure_logged:
                self._damaged[record.id] = (first, True, stamp)
                log.error("%s: could not rewrite run.json (%s); trying again", record.id, exc)
        return record

    def _folder_gone(self, run_id: str) -> bool:
        """The run folder no longer exists (deleted), or a link stands in its place."""
        try:
            return not self.store.paths(run_id).dir.is_dir()
        except UnsafePathError:
            return True

    def _write_run(self, record: RunRecord) -> None:
        """Write run.json and keep what was written as the runner's copy (under the file's
        new stamp, so it is not parsed back). While a run's requests are applied the write
        waits for the end of the slice (``handle_requests``)."""
        if self._deferred is not None:
            self._deferred[record.id] = record
            return
        # The stamp of what was written, not of the path afterwards: a run.json someone
        # wrote in between must not be cached as ours (and so never looked at).
        self._records[record.id] = (self.store.write_run(record), record)
        self._damaged.pop(record.id, None)

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
        self._write_run(record)

    def _set_state(self, record: RunRecord, state: RunState, detail: str = "") -> None:
        record.state = state
        record.record(state.value, detail)
        self._write_run(record)


def _lifecycle(record: RunRecord) -> tuple:
    """What ties a run.json to its process: a foreign change to these is not believed."""
    return record.state, record.pid, record.create_time


def _ignored_base(event: RunEvent) -> str:
    return event.detail.split(" (", 1)[0]


def _unreadable_why(path: Path, stamp: tuple[int, int] | None) -> str:
    """Why run.json cannot be read, in a few words (for the log and the run's event)."""
    from runstore import safeio

    if stamp is None:
        return "missing"
    try:  # only to learn the error (a link, a FIFO, a folder, EACCES, EMFILE); a plain open
        # of a FIFO would wait for a writer, and the runner with it
        with safeio.open_file(path) as fh:
            fh.read(1)
    except safeio.UnsafeFileError as exc:
        return f"it {exc.reason}"
    except OSError as exc:
        return f"{exc.strerror or exc}"
    return f"not a valid run record (damaged, too deep, a number out of range), {stamp[0]} bytes"


def _tail(path: Path, size: int = 16_384) -> str:
    """The end of a run's log for the failure classifier; "" when missing or refused (a
    link, a FIFO: ``runstore.safeio``), so a planted file neither leaks nor hangs the loop."""
    from runstore import safeio  # here: the rest of this module is edited in parallel

    try:
        return safeio.read_tail(path, limit=size).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _rotate(log_path: Path, max_bytes: int = 10 * 2**20) -> None:
    """Keep the trainer's stdout log bounded: one previous generation at most."""
    try:
        if log_path.stat().st_size > max_bytes:
            os.replace(log_path, log_path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
