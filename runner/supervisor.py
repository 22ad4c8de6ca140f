"""The runner supervisor: the main loop that ties intake, requests, trainers and the heartbeat.

It is the only component that starts or signals training processes, and the only writer of
run.json. Everything it decides comes from the store (queue files, request files, status.json)
and from the process table, so a new supervisor can pick up exactly where a killed one stopped.

Each job has its module: ``runner.intake`` (queue files), ``runner.requests`` (request
files), ``runner.trainers`` (launch, watch, reap, adopt), ``runner.outcome`` (how a trainer
ended), ``runner.records`` (the runner's copy of run.json), ``runner.heartbeat``
(runner.json) and ``runner.media`` (clip jobs). This module holds the loop, the settings it
follows and the containment of one run's failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from filelock import Timeout
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from runner.dirwatch import DirWatch
from runner.heartbeat import HEARTBEAT_SECONDS, VERSION, Heartbeat
from runner.intake import QueueIntake
from runner.media import MediaJobs
from runner.outcome import _tail
from runner.process import Handle
from runner.records import DAMAGE_GRACE_SECONDS, RunRecords, _unreadable_why
from runner.reports import ReportJobs
from runner.requests import MAX_REQUESTS_PER_STEP, Requests
from runner.trainers import Trainers
from runstore.atomic import remove_stale_temp_files
from runstore.models import RunRecord, RunState
from runstore.paths import file_stamp, is_run_id
from runstore.settings import SettingsError, load_settings, settings_path
from runstore.store import Request, RunStore, printable
from runstore.sweeps import sweep_ids

if TYPE_CHECKING:
    from runner.cluster.runs import ClusterRuns
    from runner.sweeps import Sweeps

# Names other code and the tests import from here (their homes are the modules above).
__all__ = [
    "DAMAGE_GRACE_SECONDS",
    "HEARTBEAT_SECONDS",
    "MAX_REQUESTS_PER_STEP",
    "VERSION",
    "AlreadyRunningError",
    "Supervisor",
    "_tail",
    "_unreadable_why",
]

log = logging.getLogger("runner")
T = TypeVar("T")
Stamp = tuple[int, int] | None

#: A run whose requests/ has no file watch (inotify missing, the watch limit reached, no
#: folder or a link in its place) is looked at this often (a stat of its requests/, more
#: only when it changed): its requests are applied within this long.
SWEEP_SECONDS = 3.0
#: Every run is looked at this often whatever the watches say (a stat of its requests/ and
#: run.json): a safety net for a lost event, and a damaged or replaced run.json of a run
#: nothing happens to is rewritten from the runner's copy within this long. Runs where
#: something is under way (live, queued, damaged) are looked at every step.
FULL_SWEEP_SECONDS = 60.0
#: A folder modified less than this long ago may change again within the same timestamp
#: tick, so it is not yet trusted as settled ("racy" stamps).
SETTLE_SECONDS = 2.0
_ROOT_KEY = ""  # the DirWatch key of the runs folder itself (no run id is empty)
#: The idle wait wakes this often to see a SIGTERM (exit within a second).
SHUTDOWN_CHECK_SECONDS = 0.25


class AlreadyRunningError(RuntimeError):
    pass


class _Wake(FileSystemEventHandler):
    def __init__(self, event: threading.Event):
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


def _dir_stamp(path: str) -> Stamp:
    """(inode, mtime in ns) of a folder itself (a link in its place is stamped, not
    followed), None if it cannot be stat'ed."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _settled(stamps: tuple[Stamp, Stamp]) -> bool:
    """Both stamps are old enough that a change would give them a new one."""
    now = time.time_ns()
    return all(s is None or now - s[1] > SETTLE_SECONDS * 1e9 for s in stamps)


class Supervisor:
    def __init__(
        self,
        store: RunStore,
        max_concurrent: int | None = None,
        stop_grace: float | None = None,
        poll: float = 0.5,
        ray_address: str | None = None,
    ):
        self.store = store
        self.media = MediaJobs(store)  # clip/time-lapse jobs, beside training (runner/media.py)
        self.reports = ReportJobs(store)  # report jobs on request (runner/reports.py)
        handles: dict[str, Handle] = {}
        self.records = RunRecords(store, held=handles)
        self.trainers = Trainers(store, self.records, self.media, handles)
        self.requests = Requests(store, self.records, self.trainers, self.media)
        self._sweeps: Sweeps | None = None  # made when the first sweep appears (.sweeps)
        self.queue = QueueIntake(
            store,
            on_queued=self._queued,
            on_sweep=lambda path, sweep: self.sweeps.accept(path, sweep),
        )
        self._heartbeat = Heartbeat(store)
        # None: follow settings.yaml in the runs folder; a value (a CLI flag) pins it.
        self._pinned = {
            "max_concurrent": max_concurrent,
            "stop_grace": stop_grace,
            "ray_address": ray_address,
        }
        self.max_concurrent = max_concurrent or 1
        self.stop_grace = stop_grace or 30.0
        #: The Ray cluster runs are placed on ("": this machine); fixed at start, because
        #: the runs already placed stay where they are (docs/cluster.md).
        self.ray_address = ray_address or ""
        self.cluster: ClusterRuns | None = None
        self.config_defaults: dict = {}
        self._settings_stamp: tuple[int, int] | None = (-1, -1)  # no file's: load at start
        self.poll = poll
        self.wake = threading.Event()
        self.shutdown = threading.Event()
        self._lock = store.runner_lock()
        self._observer: Observer | None = None  # the queue folder's watch
        # One inotify instance for the runs folder itself (a run folder appearing or going)
        # and every run's requests/: one thread whatever the number of runs (``_watch``).
        self._dirwatch: DirWatch | None = None
        self._events_lock = threading.Lock()
        self._marked: set[str] = set()  # runs a file event named since the last step
        self._relist = True  # the runs folder changed: list it again
        self._unwatched: set[str] = set()  # runs the sweep must look at (no watch)
        self._new: set[str] = set()  # run folders the last listing found for the first time
        # The run folders, listed again when the runs folder changes and at each full sweep.
        self._ids: list[str] = []
        self._sweep_at = 0.0  # monotonic: the next sweep of unwatched runs; 0: at once
        self._full_sweep_at = 0.0  # the next look at every run; 0: the first step
        self._full = True  # this pass stats run.json too (only at full sweeps and hot runs)
        self._stamp_paths: dict[str, tuple[str, str]] = {}  # run id -> (requests/, run.json)
        # run id -> the stamps (requests/, run.json) under which it was last found with
        # nothing to do: a run whose two stamps still match is skipped (``_look_at``).
        self._settled: dict[str, tuple[Stamp, Stamp]] = {}
        # Runs to look at again on the next step (requests just applied or left over, a
        # run just made), whatever the sweep's cadence.
        self._again: set[str] = set()
        # Per-run work that raised: (run id, what) -> the error, logged once (``_contained``).
        self._failing: dict[tuple[str, str], str] = {}

    # -- what the parts share ---------------------------------------------------------------

    @property
    def handles(self) -> dict[str, Handle]:
        """run id -> its training process, for the runs this supervisor holds."""
        return self.trainers.handles

    @property
    def deadlines(self) -> dict[str, float]:
        return self.trainers.deadlines

    @property
    def max_concurrent(self) -> int:
        return self.trainers.max_concurrent

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        self.trainers.max_concurrent = value

    @property
    def stop_grace(self) -> float:
        return self.trainers.stop_grace

    @stop_grace.setter
    def stop_grace(self, value: float) -> None:
        self.trainers.stop_grace = value

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
        if self.ray_address:
            self._join_cluster()
        remove_stale_temp_files(self.store.root)
        for restored in self.store.recover_partial():
            log.warning(
                "put back %s from a run folder a killed runner left half-made",
                printable(str(restored)),
            )
        self.adopt()
        self.media.adopt()
        self._contained("reports", "adopting report jobs", self.reports.adopt)
        self.heartbeat(force=True)
        self._dirwatch = DirWatch(self._on_file_event)
        self._dirwatch.add(_ROOT_KEY, str(self.store.root))
        self._relist = True
        self._observer = Observer()
        self._observer.schedule(_Wake(self.wake), str(self.store.queue_dir), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        log.info(
            "supervising %s (max_concurrent=%d, pid %d)",
            self.store.root,
            self.max_concurrent,
            os.getpid(),
        )

    def _join_cluster(self) -> None:
        """Place runs on the Ray cluster from now on. Ray is imported here and only here:
        without an address the runner never loads it. An unreachable cluster is said in
        runner.json and tried again each step; queued runs wait for it."""
        from runner.cluster.backend import Cluster
        from runner.cluster.runs import ClusterRuns

        self.cluster = ClusterRuns(Cluster(self.ray_address, self.store.root), self.trainers)
        self.trainers.cluster = self.media.cluster = self.cluster
        self.cluster.cluster.refresh(force=True)
        if self.cluster.cluster.error:
            log.error("%s; queued runs wait for it", self.cluster.cluster.error)

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.shutdown.is_set():
                try:
                    self.step()
                except Exception:  # one bad run or a full disk must not end supervision
                    log.exception("supervisor step failed; retrying")
                if not self.requests.more:  # a flood is being drained: next slice at once
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
            # At most SHUTDOWN_CHECK_SECONDS at a time: a SIGTERM (which sets ``shutdown``
            # from the signal handler) ends the runner well within a second, whatever --poll.
            wait = min(left, SHUTDOWN_CHECK_SECONDS)
            if self.wake.wait(min(wait, max(0.05, self._heartbeat.next_at - time.time()))):
                break
            with contextlib.suppress(OSError):  # a full disk: the next step logs it
                self.heartbeat()
        self.wake.clear()

    def close(self) -> None:
        """Leave training processes running: a new supervisor adopts them."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=1)
        if self._dirwatch is not None:
            self._dirwatch.close()
            self._dirwatch = None
        if self.cluster is not None:
            self.cluster.cluster.close()
        if self._lock.is_locked:
            self._lock.release()
        log.info("runner stopped; %d training process(es) left running", len(self.handles))

    def step(self) -> None:
        """One pass: intake, requests, process checks, scheduling. Safe to call any time."""
        self.requests.more = False
        self.load_settings()
        if self.cluster is not None:
            self._contained("cluster", "following the Ray cluster", self.cluster.step)
        self.intake()
        for i, run_id in enumerate(self._to_look_at()):
            if self.shutdown.is_set():  # SIGTERM: the rest waits for the next runner
                return
            self._look_at(run_id)
            if i % 64 == 0:  # time-gated: fresh through a flood over many runs
                self.heartbeat()
        self.check_processes()
        if self._sweeps is not None or sweep_ids(self.store.root):
            self._contained("sweeps", "advancing the sweeps", self.sweeps.advance)
        if self.records.adopt_again:
            self.records.adopt_again = False
            self.adopt()
            if self.cluster is not None:  # connected at last: media jobs on its nodes too
                self.media.adopt()
        self.media.check()
        self._contained("reports", "making reports", self.reports.step)
        self.schedule()
        self.heartbeat()

    @property
    def sweeps(self) -> Sweeps:
        """The sweep engine, imported on first use: Optuna, polars and the metrics reader
        (numba) cost a runner with no sweep about 100 MB and half a second at start, and
        every ``python -m runner`` command imports this module."""
        if self._sweeps is None:
            from runner.sweeps import Sweeps

            self._sweeps = Sweeps(self.store, read_run=self.records.read)
        return self._sweeps

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
        address = self._pinned["ray_address"]
        address = settings.ray_address if address is None else address
        if self._observer is None:  # at start only: placed runs stay where they are
            self.ray_address = address
        elif address != self.ray_address:
            log.warning("ray_address is now %r: it takes effect when the runner restarts", address)
        self.config_defaults = settings.config_defaults()
        log.info(
            "settings: max_concurrent=%d stop_grace=%.0f s defaults=%s",
            self.max_concurrent,
            self.stop_grace,
            self.config_defaults or "none",
        )
        self._heartbeat.next_at = 0.0  # runner.json shows the new max_concurrent at once

    def heartbeat(self, force: bool = False) -> None:
        cluster = self.cluster
        self._heartbeat.beat(
            self.max_concurrent,
            force=force,
            cluster=(lambda: cluster.info()) if cluster is not None else None,
        )

    # -- each part, over every run ----------------------------------------------------------

    def intake(self) -> None:
        self.queue.intake(self.config_defaults)

    def _queued(self, run_id: str) -> None:
        """Intake made a run: look at it on this step's pass (its folder's event lists it)."""
        self._again.add(run_id)
        with self._events_lock:
            self._relist = True

    def _to_look_at(self) -> list[str]:
        """The runs this step looks at: every run at a full sweep (the first step, then every
        FULL_SWEEP_SECONDS); otherwise the runs a file event named, the runs without a watch
        every SWEEP_SECONDS, and the runs where something can be under way: held trainers
        and media jobs, live and queued runs, damaged run.json files, runs with requests
        left over or just applied. An idle runs folder of thousands of finished runs then
        costs nothing between full sweeps, and a stat or two per run at each."""
        now = time.monotonic()
        with self._events_lock:
            marked, self._marked = self._marked, set()
            relist, self._relist = self._relist, False
        if relist or now >= self._full_sweep_at:
            self._list_runs()
            marked |= self._new
        self._full = True
        if now >= self._full_sweep_at:
            self._full_sweep_at = now + FULL_SWEEP_SECONDS
            self._sweep_at = now + SWEEP_SECONDS
            self._again.clear()
            return self._ids
        hot = set(self.handles) | set(self.media.handles) | self.records.active
        hot |= self.records.damaged | self._again | marked
        self._again = set()
        if now >= self._sweep_at:
            self._sweep_at = now + SWEEP_SECONDS
            self._full = False
            for run_id in list(self._unwatched):  # requests/ may be there now
                self._watch(run_id)
            hot |= self._unwatched
        return sorted(hot)

    def _on_file_event(self, key: str | None, name: str) -> None:
        """From the watch thread: note what changed, and wake the loop."""
        with self._events_lock:
            if key is None:  # the kernel dropped events: look at everything
                self._relist = True
                self._full_sweep_at = 0.0
            elif key == _ROOT_KEY:
                if not is_run_id(name):  # runner.json, settings.yaml, temp files
                    return
                self._relist = True
                self._marked.add(name)
            else:
                self._marked.add(key)
        self.wake.set()

    def _list_runs(self) -> None:
        """List the run folders (``RunStore.run_ids``) without a stat per known run (a name
        seen before with a run.json is trusted to keep it: a missing one is damage, found
        when the run is read), watch the new ones' requests/ and forget the gone ones."""
        known = set(self._ids)
        ids = []
        try:
            entries = list(os.scandir(self.store.root))
        except OSError:
            entries = []
        for entry in entries:
            name = entry.name
            if name in known or (
                is_run_id(name)
                and entry.is_dir(follow_symlinks=False)
                and os.path.exists(os.path.join(entry.path, "run.json"))
            ):
                ids.append(name)
        current = set(ids)
        for run_id in known - current:
            self._settled.pop(run_id, None)
            self._stamp_paths.pop(run_id, None)
            self._unwatched.discard(run_id)
            if self._dirwatch is not None:
                self._dirwatch.remove(run_id)
        self._new = current - known
        for run_id in self._new:
            self._watch(run_id)
        self._ids = sorted(ids)

    def _watch(self, run_id: str) -> None:
        """Watch the run's requests/; without a watch (no folder yet: a run folder being
        copied in is not written to) the sweep looks at it every SWEEP_SECONDS and tries
        the watch again."""
        if self._dirwatch is None:
            return
        try:
            folder = self.store.paths(run_id).requests
        except ValueError:  # a link in the run folder's place
            folder = None
        if folder is not None and self._dirwatch.add(run_id, str(folder)):
            self._unwatched.discard(run_id)
            return
        self._unwatched.add(run_id)

    def _stamps(self, run_id: str) -> tuple[Stamp, Stamp]:
        """(requests/, run.json) stamps: an entry added to or removed from requests/ changes
        the folder's; the runner's own writes of run.json are known (``RunRecords``)."""
        paths = self._stamp_paths.get(run_id)
        if paths is None:
            base = os.path.join(self.store.root, run_id)
            paths = os.path.join(base, "requests"), os.path.join(base, "run.json")
            self._stamp_paths[run_id] = paths
        return _dir_stamp(paths[0]), file_stamp(paths[1])

    def _look_at(self, run_id: str) -> None:
        """Apply a run's requests and read its run.json, unless neither changed since it was
        last found settled (then a stat or two is the whole cost: run.json's not at the
        sweep of unwatched runs, only at full sweeps and for hot runs)."""
        settled = self._settled.get(run_id)
        if settled is not None and not self._full:
            paths = self._stamp_paths[run_id]
            if _dir_stamp(paths[0]) == settled[0]:
                return
        before = self._stamps(run_id)
        if settled == before:
            return
        self._settled.pop(run_id, None)
        more = self.requests.more
        self.requests.more = False
        self._contained(run_id, "requests", self.handle_requests, run_id)
        left = self.requests.more
        self.requests.more = more or left
        record = self._contained(run_id, "reading run.json", self.records.read, run_id)
        if record is None:
            if self.records.folder_gone(run_id):
                self._again.discard(run_id)
            return
        after = self._stamps(run_id)
        if left or before != after:
            self._again.add(run_id)  # requests applied or left: again on the next step
        elif _settled(after) and self.records.known_stamp(run_id) == after[1]:
            self._settled[run_id] = after

    def handle_requests(self, run_id: str) -> None:
        self.requests.handle(run_id)

    def apply(self, record: RunRecord, request: Request) -> None:
        self.requests.apply(record, request)

    def schedule(self) -> None:
        free = self.max_concurrent - len(self.handles)
        if free <= 0 or (self.cluster is not None and not self.cluster.ready()):
            return
        queued = []
        for run_id in sorted(self.records.active):  # queued runs are among them
            record = self._contained(run_id, "reading run.json", self.records.read, run_id)
            if record is not None and record.state == RunState.QUEUED:
                if self.cluster is not None and self.cluster.may_wait(record):
                    continue  # no node for it while the nodes change: asked again next step
                queued.append(record)
        queued.sort(key=lambda r: (r.queued_at, r.id))
        for record in queued[:free]:
            self._contained(record.id, "starting", self.launch, record)

    def launch(self, record: RunRecord) -> None:
        self.trainers.launch(record)

    def check_processes(self) -> None:
        for run_id, handle in list(self.handles.items()):
            self._contained(run_id, "checking its process", self.trainers.check, run_id, handle)

    def adopt(self) -> None:
        """Take over runs a previous supervisor left (``Trainers.adopt_one``)."""
        for run_id in self.store.run_ids():
            self._contained(run_id, "adopting", self.trainers.adopt_one, run_id)

    def _read_run(self, run_id: str) -> RunRecord | None:
        return self.records.read(run_id)

    def _write_run(self, record: RunRecord) -> None:
        self.records.write(record)

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
