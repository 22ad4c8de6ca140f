"""Many folders watched by one inotify instance and one thread (Linux).

watchdog gives every watched folder its own thread: a watch on each run's ``requests/`` was
thousands of threads with thousands of runs. Here one inotify file descriptor holds any
number of watches (one kernel watch each, no thread each), and one thread reads them all and
calls back with the key the folder was added under and the entry's name.

Where inotify is missing (not Linux) or a watch cannot be added (the per-user limit,
``fs.inotify.max_user_watches``; a link or no folder in its place) ``add`` returns False and
the caller looks at that folder some other way (the supervisor's sweep).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import struct
import threading
from collections.abc import Callable

log = logging.getLogger("runner")

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: What a new or renamed-in entry, or the folder going, looks like.
MASK = (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE | IN_DELETE_SELF) | (
    IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
)
_HEADER = struct.Struct("iIII")

#: ``on_event(key, name)``; key None: the kernel's queue overflowed, anything may have changed.
Callback = Callable[[str | None, str], None]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1  # noqa: B018 (only to see it exists)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


class DirWatch:
    """Folders watched under a key each; ``on_event`` runs on the watch's one thread."""

    def __init__(self, on_event: Callback):
        self._on_event = on_event
        self._lock = threading.Lock()
        self._by_wd: dict[int, str] = {}
        self._by_key: dict[str, int] = {}
        self._libc = _libc() if os.uname().sysname == "Linux" else None
        self._fd = -1
        if self._libc is not None:
            fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd >= 0:
                self._fd = fd
            else:
                log.warning("no inotify (%s); run folders are looked at by the sweep only",
                            os.strerror(ctypes.get_errno()))  # fmt: skip
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        if self._fd >= 0:
            self._thread = threading.Thread(target=self._run, name="dirwatch", daemon=True)
            self._thread.start()

    @property
    def available(self) -> bool:
        return self._fd >= 0

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def add(self, key: str, path: str) -> bool:
        """Watch ``path`` (a folder, not followed through a link) under ``key``; False when it
        cannot be watched."""
        if self._fd < 0 or self._libc is None:
            return False
        with self._lock:
            if key in self._by_key:
                return True
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), MASK)
            if wd < 0:
                return False
            self._by_wd[wd] = key
            self._by_key[key] = wd
        return True

    def remove(self, key: str) -> None:
        with self._lock:
            wd = self._by_key.pop(key, None)
            if wd is None:
                return
            self._by_wd.pop(wd, None)
            if self._fd >= 0 and self._libc is not None:
                self._libc.inotify_rm_watch(self._fd, wd)  # gone already: EINVAL, harmless

    def close(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
            self._thread.join(timeout=1)
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._by_wd.clear()
            self._by_key.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        fd, wake = self._fd, self._wake_r
        while True:
            try:
                ready, _, _ = select.select([fd, wake], [], [])
            except (OSError, ValueError):
                return
            if wake in ready:
                return
            try:
                data = os.read(fd, 64 * 1024)
            except BlockingIOError:
                continue
            except OSError:
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size : offset + _HEADER.size + length]
            offset += _HEADER.size + length
            name = os.fsdecode(raw.rstrip(b"\0"))
            if mask & IN_Q_OVERFLOW:
                key: str | None = None
            else:
                with self._lock:
                    key = self._by_wd.get(wd)
                    if mask & IN_IGNORED and key is not None:  # the folder went
                        self._by_wd.pop(wd, None)
                        self._by_key.pop(key, None)
                if key is None:
                    continue
            try:
                self._on_event(key, name)
            except Exception:  # the watch thread must live on
                log.exception("handling a file event failed")
