"""Atomic file writes and tolerant reads.

Every file in the store has one writer and many concurrent readers (runner, dashboards,
TensorBoard). A reader must never see half a document, so writers go through a temp file in
the same folder, fsync, then ``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from runstore import safeio

_REPLACE_RETRIES = 10  # Windows: a reader holding the target open makes os.replace fail briefly.


def atomic_write_bytes(path: Path, data: bytes) -> tuple[int, int]:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a mix.

    Returns the written file's stamp (size, mtime in ns; ``runstore.paths.file_stamp``),
    taken from the file itself before it is renamed into place: a caller that caches what
    it wrote under the path's stamp read *after* the write could take someone else's newer
    file for its own."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
        for attempt in range(_REPLACE_RETRIES):
            try:
                os.replace(tmp, path)
                break
            except PermissionError:
                if attempt == _REPLACE_RETRIES - 1:
                    raise
                time.sleep(0.01)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return st.st_size, st.st_mtime_ns


def atomic_write_text(path: Path, text: str) -> tuple[int, int]:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> tuple[int, int]:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any | None:
    """Return the parsed document, or None when it is missing or unreadable.

    Callers treat None as "unknown" and keep their last good value; a corrupt file is a
    problem to show on that run, never a crash.
    """
    return safeio.read_json(path)  # never through a link or a FIFO, never unbounded


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files a killed writer left behind (``.<name>.*.tmp``)."""
    removed = 0
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
