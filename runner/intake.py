"""Queue intake: each file in ``queue/`` becomes a queued run, or goes to ``rejected/``.

A file that may still be being written is looked at again; one that cannot be moved to
``rejected/`` stays in the queue and is retried ever less often, so one stuck file neither
blocks the files after it nor makes the runner spin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstore.config import ConfigError
from runstore.paths import file_stamp
from runstore.store import RunStore, printable
from runstore.sweep_config import Sweep

log = logging.getLogger("runner")

# An invalid queue file this fresh may still be being written; look again before rejecting.
FRESH_FILE_SECONDS = 1.0
#: A bad file that cannot be moved to rejected/ is retried after 5 s, then ever less often.
REJECT_RETRY_SECONDS = 5.0
REJECT_RETRY_MAX_SECONDS = 300.0

Stamp = tuple[int, int] | None


class QueueIntake:
    def __init__(
        self,
        store: RunStore,
        on_queued: Callable[[str], None],
        on_sweep: Callable[[Path, Sweep], str | None],
    ):
        self.store = store
        self._on_queued = on_queued  # called with the id of each run made from a file
        self._on_sweep = on_sweep  # makes a sweep of a sweep file (runner.sweeps)
        # Queue files that could not be moved to rejected/: name -> (stamp, retry at, delay).
        self._stuck: dict[str, tuple[Stamp, float, float]] = {}
        # Queue files whose mtime lies in the future: name -> (stamp, first seen, monotonic).
        self._first_seen: dict[str, tuple[Stamp, float]] = {}

    def intake(self, defaults: dict[str, Any]) -> None:
        """One pass over the queue; ``defaults`` (settings.yaml) go under each file's keys."""
        files = self.store.queue_files()
        if self._stuck or self._first_seen:  # forget files that left the queue
            names = {p.name for p in files}
            self._stuck = {k: v for k, v in self._stuck.items() if k in names}
            self._first_seen = {k: v for k, v in self._first_seen.items() if k in names}
        for path in files:
            if self._backing_off(path):
                continue
            try:
                config = self.store.read_queue_file(path, defaults)
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
            if isinstance(config, Sweep):
                self._on_sweep(path, config)
                continue
            record = self.store.accept(path, config)
            if record is not None:
                log.info("queued %s from %s", record.id, printable(path.name))
                self._on_queued(record.id)

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
