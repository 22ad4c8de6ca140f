"""The run store: one object that reads and writes the runs folder for every process.

Writers: the runner owns ``run.json``, ``runner.json`` and queue intake; the trainer owns
``status.json`` and the run's outputs; the dashboard and the CLI only add queue files and
request files. All writes are atomic (``runstore.atomic``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import stat as stat_mod
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from filelock import FileLock
from pydantic import BaseModel

from runstore import safeio, sweep_config
from runstore.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from runstore.config import (
    ConfigError,
    ConfigListing,
    RunConfig,
    StoredConfig,
    parse_config,
    read_config_listing,
    read_run_config,
    to_stored_yaml,
)
from runstore.models import RunnerInfo, RunRecord, TensorBoardInfo, TrainStatus
from runstore.paths import (
    RunPaths,
    UnsafePathError,
    contained_run_dir,
    is_run_id,
    member,
    new_run_id,
)
from runstore.sweep_config import Sweep
from runstore.yamlsafe import ConfigSyntaxError, load_yaml_mapping

log = logging.getLogger(__name__)
_Model = TypeVar("_Model", bound=BaseModel)

QUEUE_SUFFIXES = (".yaml", ".yml")
# Editors and copy tools write these while a file is still being written; never claim them.
_IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".swp", ".crdownload", "~")
REQUEST_ACTIONS = (
    "stop",
    "pause",
    "resume",
    "delete",
    "record",
    "timelapse",
    "journey",
    "cancel-media",
    "trust",
    "annotate",
    "cleanup",
    "video",
)
#: Games a ``record`` request may ask for (1 to this): the dashboard's field, the runner's
#: check of the request and ``python -m training.record`` all hold to this one number.
MAX_RECORD_EPISODES = 20
MAX_QUEUE_NAME = 200
#: The reason a queue file was refused, beside it (in rejected/, or in the queue itself when
#: it could not be moved there).
ERROR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class Request:
    path: Path
    action: str
    at: float
    source: str
    params: dict = field(default_factory=dict)  # record: checkpoint, episodes; journey: ...


#: Characters escaped in a name shown or logged (``printable``): controls (C0, DEL, C1),
#: format characters (bidi overrides and isolates, zero-width ones), lone surrogates (bytes
#: of a name that is not UTF-8), and line and paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` (a file or run name) safe to write into a log, a note or a page.

    A queue file's name is whatever its author chose: a newline forges a second log line, an
    ANSI escape repaints the terminal that tails runner.log, U+202E shows ``evil\u202egnp.yaml``
    as ``evilpng.yaml``, and bytes that are not UTF-8 come from ``os.scandir`` as lone
    surrogates that no UTF-8 writer (a note, a log file, Streamlit) can encode. Each such
    character is written as ``repr`` would (``\\n``, ``\\x1b``, ``\\u202e``), and a
    surrogate that stands for a byte as that byte (``\\xff``); everything else, other
    scripts included, stays as it is."""
    if text.isprintable():  # the usual case: nothing to escape
        return text
    out = []
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
            continue
        if unicodedata.category(ch) not in _ESCAPED_CATEGORIES:
            out.append(ch)
            continue
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            code -= 0xDC00
        if code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _utf8(text: str) -> str:
    """Text a UTF-8 writer can write: anything left that cannot be encoded (a surrogate in a
    problem's wording) as a backslash escape, never a UnicodeEncodeError mid-rejection."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refusal(path: Path, problems: list[str]) -> str:
    return _utf8(
        f"{printable(path.name)} was not started:\n"
        + "\n".join(f"- {p}" for p in problems)
        + "\n\nFix the file and drop it into the queue again.\n"
    )


class RunStore:
    """Paths and documents of one runs folder."""

    def __init__(self, root: Path | str):
        self.root = Path(root).absolute()

    # -- layout ---------------------------------------------------------------------------

    queue_dir = member("root", "queue")
    rejected_dir = member("queue_dir", "rejected")
    lock_path = member("root", ".runner.lock")

    def ensure_layout(self) -> None:
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.rejected_dir.mkdir(exist_ok=True)
        except OSError as exc:  # not fatal: bad files then stay in the queue with a note
            log.error(
                "cannot make %s (%s): rejected configs stay in the queue", self.rejected_dir, exc
            )

    def paths(self, run_id: str) -> RunPaths:
        """Paths of a run, refusing ids that are not ours or that escape the folder."""
        if is_run_id(run_id):
            # The common case without the two resolve() calls (a runner looks at thousands
            # of runs): an id has no separator and no "..", so a folder entry that is not a
            # link lies inside the runs folder; a link (or anything odd) gets the full check.
            path = self.root / run_id
            try:
                if not stat_mod.S_ISLNK(os.lstat(path).st_mode):
                    return RunPaths(path)
            except OSError:
                pass
        return RunPaths(contained_run_dir(self.root, run_id))

    def runner_lock(self) -> FileLock:
        """The supervisor's lock: a kernel lock (flock), freed when its holder dies."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.lock_path), is_singleton=False)

    def runner_is_alive(self) -> bool:
        """True when some process holds the runner lock on this folder."""
        lock = self.runner_lock()
        try:
            lock.acquire(timeout=0)
        except Exception:
            return True
        lock.release()
        return False

    # -- runs -----------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        """Ids of every run folder with a run.json, oldest first."""
        if not self.root.is_dir():
            return []
        ids = []
        for entry in os.scandir(self.root):
            if (
                is_run_id(entry.name)
                and entry.is_dir(follow_symlinks=False)
                and os.path.exists(os.path.join(entry.path, "run.json"))
            ):
                ids.append(entry.name)
        return sorted(ids)

    def read_run(self, run_id: str) -> RunRecord | None:
        return read_document(self.paths(run_id).run_json, RunRecord)

    def write_run(self, record: RunRecord) -> tuple[int, int]:
        """Write run.json; returns the stamp of what was written (``atomic_write_bytes``)."""
        return atomic_write_json(self.paths(record.id).run_json, record.document())

    def read_status(self, run_id: str) -> TrainStatus | None:
        return read_status_file(self.paths(run_id).status_json)

    def read_config(self, run_id: str) -> RunConfig:
        """The run's resolved config, read tolerantly (``read_stored_config``: keys this
        version does not know are ignored); ``safeio.UnsafeFileError`` (an OSError) when
        config.yaml is a link or not a plain file, ConfigError when it is invalid."""
        return self.read_stored_config(run_id).config

    def read_stored_config(self, run_id: str) -> StoredConfig:
        """``read_config`` with the format version, the ignored keys and the warnings."""
        return read_run_config(self.paths(run_id).config)

    def read_config_listing(self, run_id: str) -> ConfigListing:
        """The game and algorithm of the run's config.yaml only, for a listing of many runs
        (``read_config_listing``: the rest of the file is not read into a config)."""
        return read_config_listing(self.paths(run_id).config)

    def delete_run(self, run_id: str) -> None:
        shutil.rmtree(self.paths(run_id).dir)

    # -- queue intake (runner) ------------------------------------------------------------

    def queue_files(self) -> list[Path]:
        """Files waiting in the queue, oldest first (FIFO by arrival)."""
        if not self.queue_dir.is_dir():
            return []
        files = []
        for entry in os.scandir(self.queue_dir):
            name = entry.name
            if name.startswith(".") or name.endswith(_IN_PROGRESS_SUFFIXES + (ERROR_SUFFIX,)):
                continue
            if name == self.rejected_dir.name:  # whatever sits in its place is no config
                continue
            if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                try:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue
                files.append((mtime, name, Path(entry.path)))
        return [p for _, _, p in sorted(files)]

    def read_queue_file(self, path: Path, defaults: dict | None = None) -> RunConfig | Sweep:
        """Validate a queue file: a run's config, or a sweep file (one with a ``sweep:``
        block); raises ConfigError with every problem in plain words.

        ``defaults`` (runner settings) fill keys the file leaves out."""
        if path.is_symlink():
            raise ConfigError(["the queue file is a symlink; copy the file itself into the queue"])
        if not path.name.endswith(QUEUE_SUFFIXES):
            raise ConfigError([f"{path.name!r} is not a .yaml or .yml file"])
        if len(path.name) > MAX_QUEUE_NAME:
            raise ConfigError([f"the file name is longer than {MAX_QUEUE_NAME} characters"])
        try:  # no FIFO or device either, and no link swapped in after the check above
            with safeio.open_file(path, base=path.parent) as fh:
                data = fh.read(1024 * 1024)
        except safeio.UnsafeFileError as exc:
            problem = f"the queue file {exc.reason}; copy a plain file into the queue"
            raise ConfigError([problem]) from None
        if sweep_config.is_sweep_file(_peek_mapping(data)):
            return sweep_config.parse_sweep(data, defaults)
        return parse_config(data, defaults)

    def reject(self, path: Path, problems: list[str]) -> Path:
        """Move a bad queue file to queue/rejected/ with NAME.error.txt beside it."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        target = self.rejected_dir / path.name
        if target.exists() or len(path.name) > MAX_QUEUE_NAME:
            stem = path.name[:MAX_QUEUE_NAME]
            target = self.rejected_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
        # The note first: whoever sees the file in rejected/ finds its reason beside it.
        note = target.with_name(target.name + ERROR_SUFFIX)
        atomic_write_text(note, _refusal(path, problems))
        try:
            os.replace(path, target)
        except OSError:
            with contextlib.suppress(OSError):
                note.unlink()
            raise
        with contextlib.suppress(OSError):  # a note left when rejected/ was broken
            path.with_name(path.name + ERROR_SUFFIX).unlink()
        return target

    def note_unmovable(self, path: Path, problems: list[str], error: OSError) -> None:
        """Explain, beside a bad queue file, that it could not be moved to rejected/ (the
        file stays where it is, so nothing is lost); best effort, the queue may be read-only."""
        text = _refusal(path, problems) + _utf8(
            f"\nIt stays in the queue: moving it to {self.rejected_dir} failed "
            f"({printable(str(error))}). Make that folder writable (or remove whatever is in "
            "its place); the runner tries again.\n"
        )
        with contextlib.suppress(OSError):
            atomic_write_text(path.with_name(path.name + ERROR_SUFFIX), text)

    def refusal_note(self, path: Path) -> str | None:
        """Why a file was refused: the note beside it in rejected/, or the one
        ``note_unmovable`` left beside it in the queue; None if there is none."""
        note = path.with_name(path.name + ERROR_SUFFIX)
        try:
            with safeio.open_file(note, base=self.root) as fh:
                return fh.read(16_000).decode("utf-8", errors="replace")[:4000]
        except safeio.UnsafeFileError as exc:  # a planted link: say so, never follow it
            return f"({exc})"
        except OSError:
            return None

    def accept(self, path: Path, config: RunConfig) -> RunRecord | None:
        """Turn a valid queue file into a queued run, atomically.

        The run folder is assembled under a hidden name (queue file moved in, config.yaml and
        run.json written) and renamed into place, so a crash at any point leaves either the
        queue file or a complete run — ``recover_partial`` puts a half-made one back.
        Returns None if another process claimed the file first.
        """
        run_id = new_run_id(config.display_name)
        while (self.root / run_id).exists():  # same second, same name, same suffix: rare
            run_id = new_run_id(config.display_name)
        staging = self.root / f".partial-{run_id}"
        staging.mkdir(parents=True)
        run = RunPaths(staging)
        try:
            os.rename(path, run.source)
        except FileNotFoundError:
            staging.rmdir()
            return None
        run.make_dirs()
        atomic_write_text(run.config, to_stored_yaml(config))
        source = printable(path.name)  # run.json is shown on pages: no raw bytes or controls
        record = RunRecord(
            id=run_id, name=config.display_name, host=socket.gethostname(), source_file=source
        )
        record.record("queued", f"from {source}")
        atomic_write_json(run.run_json, record.document())
        os.rename(staging, self.root / run_id)
        return record

    def recover_partial(self) -> list[Path]:
        """Put back queue files of run folders a killed runner left half-made."""
        restored = []
        for staging in self.root.glob(".partial-*"):
            source = staging / "source.yaml"
            if source.exists():
                original = self.queue_dir / f"recovered-{staging.name.removeprefix('.partial-')}"
                os.replace(source, original.with_suffix(".yaml"))
                restored.append(original.with_suffix(".yaml"))
            shutil.rmtree(staging, ignore_errors=True)
        return restored

    def submit(self, yaml_text: str, filename: str) -> Path:
        """Drop a config into the queue (dashboard, tests): hidden temp name, then rename."""
        # A leading dot would hide the file from intake forever; a name past the limit would
        # not fit the temp name (OSError) and would be rejected anyway.
        name = Path(filename.replace("\x00", "")).name.lstrip(".") or "config"
        if not name.endswith(QUEUE_SUFFIXES):
            name += ".yaml"
        if len(name) > MAX_QUEUE_NAME:
            name = name[: MAX_QUEUE_NAME - 5] + ".yaml"
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        target = self.queue_dir / name
        tmp = self.queue_dir / f".{name}.submit"
        atomic_write_bytes(tmp, yaml_text.encode("utf-8"))
        os.replace(tmp, target)
        return target

    # -- requests (dashboard/CLI write, runner consumes) -----------------------------------

    def write_request(
        self, run_id: str, action: str, source: str = "cli", params: dict | None = None
    ) -> Path:
        if action not in REQUEST_ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(REQUEST_ACTIONS)}")
        run = self.paths(run_id)
        if not run.run_json.exists():
            raise UnsafePathError(f"no run {run_id} in {self.root}")
        if run.requests.is_symlink():
            raise UnsafePathError(f"{run.requests} is a symlink; refusing to write through it")
        run.requests.mkdir(exist_ok=True)
        now = time.time()
        path = run.requests / f"{time.time_ns()}-{action}.json"
        doc = {"action": action, "at": now, "source": source, "params": params or {}}
        atomic_write_json(path, doc)
        return path

    def pending_requests(
        self, run_id: str, limit: int | None = None
    ) -> tuple[list[Request], list[Path]]:
        """Valid requests oldest first, and files in requests/ that are not requests.

        ``limit`` bounds how many files are read (valid and invalid together, the oldest
        first): a flood of thousands of requests is then consumed a slice at a time, in
        order, and only names are listed for the rest."""
        folder = self.paths(run_id).requests
        valid: list[Request] = []
        invalid: list[Path] = []
        if folder.is_symlink():  # planted: never read (or delete) files through it
            return valid, [folder]
        if not folder.is_dir():
            return valid, invalid
        names = sorted(e.name for e in os.scandir(folder) if not e.name.startswith("."))
        for name in names[:limit]:
            path = folder / name
            data = safeio.read_json(path)  # a link, FIFO or folder is no request
            action = data.get("action") if isinstance(data, dict) else None
            if action in REQUEST_ACTIONS and path.name.endswith(f"-{action}.json"):
                at = data.get("at")
                valid.append(
                    Request(
                        path=path,
                        action=action,
                        at=float(at) if isinstance(at, int | float) else 0.0,
                        source=str(data.get("source", "?"))[:40],
                        params=data["params"] if isinstance(data.get("params"), dict) else {},
                    )
                )
            else:
                invalid.append(path)
        return valid, invalid

    # -- runner heartbeat -----------------------------------------------------------------

    runner_json = member("root", "runner.json")
    runner_log = member(
        "root", "runner.log", "Output of a runner the dashboard started in the background."
    )

    def write_runner_info(self, info: RunnerInfo) -> None:
        atomic_write_json(self.runner_json, info.document())

    def read_runner_info(self) -> RunnerInfo | None:
        return read_document(self.runner_json, RunnerInfo)

    # -- TensorBoard started by the dashboard ---------------------------------------------

    tensorboard_json = member("root", "tensorboard.json")
    tensorboard_log = member("root", "tensorboard.log")

    def write_tensorboard_info(self, info: TensorBoardInfo) -> None:
        atomic_write_json(self.tensorboard_json, info.document())

    def read_tensorboard_info(self) -> TensorBoardInfo | None:
        return read_document(self.tensorboard_json, TensorBoardInfo)

    def clear_tensorboard_info(self) -> None:
        self.tensorboard_json.unlink(missing_ok=True)


def _peek_mapping(data: bytes) -> dict:
    """The document's top level when it is a YAML mapping, else {} (the full parse that
    follows reports what is wrong with it)."""
    try:
        return load_yaml_mapping(data)
    except ConfigSyntaxError:
        return {}


def read_document(path: Path, model: type[_Model]) -> _Model | None:
    """The typed document in a JSON file of the store, or None when it is missing, refused (a
    link, a FIFO, too big: ``safeio.read_json``), not JSON, not an object, or not valid for
    ``model``. Readers of the store treat None as "unknown"."""
    data = safeio.read_json(path)  # never through a link, never blocked by a FIFO, bounded
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except ValueError:
        return None


def read_status_file(path: Path) -> TrainStatus | None:
    return read_document(path, TrainStatus)


def write_status_file(path: Path, status: TrainStatus) -> None:
    atomic_write_json(path, status.document())


__all__ = [
    "Request",
    "RunStore",
    "printable",
    "read_document",
    "read_status_file",
    "write_status_file",
]
