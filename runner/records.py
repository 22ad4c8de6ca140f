"""The runner's copy of every run.json: the runner is its only writer.

run.json is parsed again only when it changed on disk, written once per slice of requests
(``defer``/``flush``), and kept through damage: an unreadable or contradicting run.json is
rewritten from the runner's copy instead of being believed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from runstore import safeio
from runstore.models import RunRecord, RunState
from runstore.paths import UnsafePathError, file_stamp
from runstore.store import RunStore

log = logging.getLogger("runner")

#: An unreadable run.json is rewritten from the runner's copy once it has stayed unreadable
#: this long: a hand edit being saved, or an ``rm -rf`` of the folder under way, is not
#: raced (a folder that is really gone counts as deleted).
DAMAGE_GRACE_SECONDS = 1.0

Stamp = tuple[int, int] | None


class RunRecords:
    """What the runner knows of each run, read from and written to run.json."""

    def __init__(self, store: RunStore, held: Mapping[str, object]):
        self.store = store
        # The runs whose training process this runner holds (the supervisor's handles): a
        # foreign run.json contradicting one of them is not believed.
        self._held = held
        self._records: dict[str, tuple[Stamp, RunRecord]] = {}
        # run.json files that could not be read: run id -> (first seen, monotonic; the
        # rewrite failed and that was logged; the damaged file's stamp, not read again).
        self._damaged: dict[str, tuple[float, bool, Stamp]] = {}
        self._unreadable_logged: set[str] = set()  # damaged with no copy to rewrite from
        # While requests of one run are applied, run.json is written once, at the end.
        self._deferred: dict[str, RunRecord] | None = None
        #: A live run whose run.json was fixed at last: the supervisor adopts again.
        self.adopt_again = False
        #: Runs last known queued or in a live state: the ones the supervisor looks at every
        #: step and schedules from (the others only at its sweep).
        self.active: set[str] = set()

    @property
    def damaged(self) -> set[str]:
        """Runs whose run.json is damaged (or unreadable with no copy to rewrite it from):
        looked at every step until it is rewritten, or fixed (then a live one is adopted)."""
        return set(self._damaged) | self._unreadable_logged

    def known_stamp(self, run_id: str) -> Stamp:
        """The stamp of the run.json the runner's copy came from (or wrote), None when it
        has none or the file is damaged: a run.json still at this stamp needs no read."""
        cached = self._records.get(run_id)
        if cached is None or run_id in self._damaged:
            return None
        return cached[0]

    def _note(self, record: RunRecord) -> None:
        if record.state.is_live or record.state == RunState.QUEUED:
            self.active.add(record.id)
        else:
            self.active.discard(record.id)

    def read(self, run_id: str) -> RunRecord | None:
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
            return self._read_valid(run_id, key, record, cached[1] if cached else None)
        if self.folder_gone(run_id):
            self.forget(run_id)
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

    def _read_valid(
        self, run_id: str, key: Stamp, record: RunRecord, known: RunRecord | None
    ) -> RunRecord:
        """``read`` of a valid run.json: believed, unless it contradicts the process this
        runner holds for the run (then it is damage, and the runner's copy wins)."""
        if known is None or run_id not in self._held or _lifecycle(record) == _lifecycle(known):
            self._records[run_id] = (key, record)
            self._note(record)
            self._damaged.pop(run_id, None)
            if run_id in self._unreadable_logged:
                self._unreadable_logged.discard(run_id)
                # Fixed at last: a live run nobody adopted (damaged when this runner
                # started) is adopted now, or ends with the truth.
                self.adopt_again |= record.state.is_live and run_id not in self._held
            return record
        return self._damaged_run(
            known,
            key,
            f"was replaced by one that says {record.state.value} (pid {record.pid})",
            "run-json-replaced",
        )

    def _damaged_run(self, record: RunRecord, stamp: Stamp, what: str, kind: str = "") -> RunRecord:
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
            self.write(record)
        except OSError as exc:
            if not failure_logged:
                self._damaged[record.id] = (first, True, stamp)
                log.error("%s: could not rewrite run.json (%s); trying again", record.id, exc)
        return record

    def folder_gone(self, run_id: str) -> bool:
        """The run folder no longer exists (deleted), or a link stands in its place."""
        try:
            return not self.store.paths(run_id).dir.is_dir()
        except UnsafePathError:
            return True

    def write(self, record: RunRecord) -> None:
        """Write run.json and keep what was written as the runner's copy (under the file's
        new stamp, so it is not parsed back). Between ``defer`` and ``flush`` the write
        waits for the flush."""
        if self._deferred is not None:
            self._deferred[record.id] = record
            return
        # The stamp of what was written, not of the path afterwards: a run.json someone
        # wrote in between must not be cached as ours (and so never looked at).
        self._records[record.id] = (self.store.write_run(record), record)
        self._note(record)
        self._damaged.pop(record.id, None)

    def set_state(self, record: RunRecord, state: RunState, detail: str = "") -> None:
        record.state = state
        record.record(state.value, detail)
        self.write(record)

    def defer(self) -> None:
        """Hold writes until ``flush``: a slice of requests costs one fsync'd rewrite."""
        self._deferred = {}

    def flush(self) -> None:
        """Write what ``defer`` held, once per run; a failed write is logged, and the
        runner's copy goes to disk with the next write."""
        deferred, self._deferred = self._deferred or {}, None
        for record in deferred.values():
            if record.id not in self._records:  # deleted meanwhile
                continue
            try:
                self.write(record)
            except OSError as exc:
                log.error("%s: could not write run.json (%s)", record.id, exc)

    def forget(self, run_id: str) -> None:
        """The run was deleted: drop the runner's copy."""
        self._records.pop(run_id, None)
        self._damaged.pop(run_id, None)
        self.active.discard(run_id)


def _lifecycle(record: RunRecord) -> tuple:
    """What ties a run.json to its process: a foreign change to these is not believed."""
    return record.state, record.pid, record.create_time


def _unreadable_why(path: Path, stamp: Stamp) -> str:
    """Why run.json cannot be read, in a few words (for the log and the run's event)."""
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
