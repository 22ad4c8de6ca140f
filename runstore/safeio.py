"""Reading a file inside the runs folder without following links out of it.

A runs folder can hold files this installation did not write (a colleague's tarball, a shared
folder), and the dashboard shows them to anyone on the LAN. A ``videos/timelapse.mp4`` that is
a symlink to ``~/.ssh/id_rsa`` must not be served; a FIFO at ``logs/trainer.log`` must not hang
a page or the runner; a link to ``/dev/zero`` must not be read without end. So every read the
dashboard and the runner make in the runs folder goes through this module:

- each folder between the base (the runs folder; see ``open_file``) and the file is opened with
  ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before it (``dir_fd``), so ``videos/`` or
  ``logs/`` being a link out is refused too, not only the last name, and nothing can be
  swapped in between a check and the open;
- the file itself is opened ``O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`` (opening a FIFO
  without a writer does not block) and ``fstat`` must say it is a regular file;
- every read is bounded by a cap the caller states (``read_tail`` reads the last bytes);
- every JSON document is parsed by ``parse_json`` (``read_json`` reads and parses), bounded in
  depth and in its numbers, so a valid but hostile document (``[`` 50,000 deep, ``10**400``,
  ``NaN``) is a damaged document (ValueError, or None from ``read_json``), never a
  ``RecursionError`` or a number that breaks a page later.

A refusal is an ``UnsafeFileError``, a subclass of ``OSError``: callers that already treat an
unreadable file as "unknown" (``except OSError``) refuse links without a change; pages show its
text, which names the file (relative to the runs folder) and why.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from array import array
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

from runstore.paths import is_run_id

#: Caps for the documents of the store (each is a few KB when our code wrote it).
JSON_LIMIT = 4 * 2**20
TEXT_LIMIT = 4 * 2**20
#: The deepest nesting a JSON document of the store may have. Ours are 4 levels deep at most
#: (run.json: events, a diagnosis); ``json.loads`` recurses once per level and raises
#: ``RecursionError`` (not a ValueError) near a thousand, and every later ``json.dumps`` or
#: model of the document would recurse as deep.
MAX_JSON_DEPTH = 64
#: Integers of the store's documents fit in 64 bits (steps, pids, counts): what polars, numpy
#: and ``float()`` take without an error. ``10**400`` is valid JSON, and "int too large to
#: convert to float" wherever a page divides or charts it.
MAX_JSON_INT = 2**63 - 1

_POSIX = (
    hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and os.open in os.supports_dir_fd
    and os.stat in os.supports_dir_fd
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows
# What an O_NOFOLLOW open of a symlink fails with: ELOOP (Linux, macOS), EMLINK (FreeBSD).
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}

_KINDS = {
    stat.S_IFLNK: "symbolic link",
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


class UnsafeFileError(OSError):
    """A file in the runs folder that is refused: a symbolic link, not a regular file, under
    a folder that is a link, outside its base, or larger than the caller's cap.

    An ``OSError``, so code that treats an unreadable file as unknown handles it unchanged.
    ``shown`` is the path as a page may show it (relative to the runs folder), ``reason``
    says why (``"is a symbolic link"``, ``"is not a regular file (FIFO)"``...).
    """

    def __init__(self, path: Path | str, reason: str, shown: str | None = None) -> None:
        super().__init__(errno.EPERM, reason, str(path))
        self.path = Path(path)
        self.reason = reason
        self.shown = shown or self.path.name

    def __str__(self) -> str:
        return f"refused to read {self.shown}: it {self.reason}"


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def refusal(mode: int) -> str:
    """Why a file of this mode (``lstat``) is refused, in the words of ``UnsafeFileError``:
    for code that finds files by listing a folder and must say why it skipped one."""
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    return f"is not a regular file ({_kind(mode)})"


def _mode_error(path: Path | str, shown: str, mode: int) -> UnsafeFileError:
    return UnsafeFileError(path, refusal(mode), shown)


def default_base(path: Path | str) -> Path:
    """The folder whose inside is checked: the runs folder when ``path`` lies in a run folder
    (its nearest ancestor named like a run id), else the file's own folder."""
    return Path(_split(path, None)[1])


def _split(path: Path | str, base: Path | str | None) -> tuple[str, str, list[str]]:
    """(absolute path, absolute base, the names from the base down to the file)."""
    full = os.path.abspath(path)
    names = full.split(os.sep)
    if base is None:
        # Nearest ancestor named like a run id (the last name is the file itself).
        for i in range(len(names) - 2, 0, -1):
            if is_run_id(names[i]):
                return full, os.sep.join(names[:i]) or os.sep, names[i:]
        return full, os.path.dirname(full), names[-1:]
    root = os.path.abspath(base)
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not full.startswith(prefix):
        raise UnsafeFileError(full, f"is outside {os.path.basename(root) or root}")
    return full, root, full[len(prefix) :].split(os.sep)


def _open_fd(path: Path | str, base: Path | str | None, append: bool = False) -> int:
    full, root, parts = _split(path, base)
    if not parts or parts == [""]:
        raise UnsafeFileError(full, "is not a regular file (directory)")
    shown = "/".join(parts)
    if _POSIX:
        return _open_posix(full, root, parts, shown, append)
    if append:
        raise UnsafeFileError(full, "cannot be opened safely for writing on this platform", shown)
    return _open_portable(Path(full), Path(root), parts, shown)


def _open_posix(full: str, root: str, parts: list[str], shown: str, append: bool = False) -> int:
    # The base itself is trusted (the runs folder may be a link the user made on purpose).
    dfd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                nfd = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dfd)
            except OSError as exc:  # a link or not a folder: say which
                if exc.errno not in _LINK_ERRNOS | {errno.ENOTDIR}:
                    raise
                where = "/".join(parts[: i + 1])
                try:
                    mode = os.stat(part, dir_fd=dfd, follow_symlinks=False).st_mode
                    what = "a symbolic link" if stat.S_ISLNK(mode) else f"a {_kind(mode)}"
                except OSError:
                    what = "not a plain folder"
                raise UnsafeFileError(full, f"lies under {where}, which is {what}", shown) from None
            os.close(dfd)
            dfd = nfd
        name = parts[-1]
        # Checked before opening, so not even an open reaches a device or a FIFO.
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            if not append:
                raise
        else:
            if not stat.S_ISREG(st.st_mode):
                raise _mode_error(full, shown, st.st_mode)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT if append else os.O_RDONLY
        try:
            fd = os.open(name, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o644, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise UnsafeFileError(full, "is a symbolic link", shown) from None
            raise
    finally:
        os.close(dfd)
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # swapped between the stat and the open
            raise _mode_error(full, shown, fst.st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_portable(full: Path, root: Path, parts: list[str], shown: str) -> int:
    """Without ``dir_fd``/``O_NOFOLLOW`` (Windows): lstat each name, open, and check that the
    file opened is the one lstat saw."""
    here = root
    for i, part in enumerate(parts[:-1]):
        here = here / part
        st = os.lstat(here)
        if not stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            where = "/".join(parts[: i + 1])
            raise UnsafeFileError(full, f"lies under {where}, which is not a plain folder", shown)
    st = os.lstat(full)
    if not stat.S_ISREG(st.st_mode):
        raise _mode_error(full, shown, st.st_mode)
    fd = os.open(full, os.O_RDONLY | _BINARY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise UnsafeFileError(full, "changed while it was being opened", shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: Path | str, *, base: Path | str | None = None) -> BinaryIO:
    """Open a regular file for reading, refusing links and anything else that is not one.

    ``base`` is the folder inside which no link is followed; by default the runs folder when
    ``path`` lies in a run folder (nearest ancestor named like a run id), else the file's own
    folder. Raises ``UnsafeFileError`` (an ``OSError``) on refusal, ``FileNotFoundError`` when
    it is missing. The caller closes the file (``with``) and bounds its own reads; for whole
    reads prefer ``read_bytes``/``read_tail``, which do.
    """
    return os.fdopen(_open_fd(path, base), "rb")


def open_append(path: Path | str, *, base: Path | str | None = None) -> BinaryIO:
    """Open (or create) a log file for appending, with the same refusals as ``open_file``.

    The runner hands trainers and media jobs a log in the run folder; a planted link there
    would make training output land in the link's target, and a FIFO would block the runner.
    """
    return os.fdopen(_open_fd(path, base, append=True), "ab")


def check_file(path: Path | str, *, base: Path | str | None = None) -> int:
    """The size of the regular file at ``path``, after the same checks as ``open_file``
    (whether a button for it may be offered); raises like ``open_file``."""
    fd = _open_fd(path, base)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_bytes(path: Path | str, *, limit: int, base: Path | str | None = None) -> bytes:
    """The whole file, refused (``UnsafeFileError``) when it holds more than ``limit`` bytes:
    a document cut at a cap would be a different document."""
    with open_file(path, base=base) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError(
            path, f"is larger than {limit:,} bytes", _shown(path, base) or Path(path).name
        )
    return data


def read_tail(path: Path | str, *, limit: int, base: Path | str | None = None) -> bytes:
    """The last ``limit`` bytes of the file (a log tail): seeks to its end minus ``limit``."""
    with open_file(path, base=base) as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - limit))
        return fh.read(limit)


def read_text(path: Path | str, *, limit: int = TEXT_LIMIT, base: Path | str | None = None) -> str:
    """``read_bytes`` decoded as UTF-8 (undecodable bytes replaced)."""
    return read_bytes(path, limit=limit, base=base).decode("utf-8", errors="replace")


class DocumentError(ValueError):
    """A JSON document refused by ``parse_json``: nested too deep, or a number out of range.
    A ValueError, as ``json.JSONDecodeError`` is, so every reader's ``except ValueError``
    (a damaged document: unknown, shown as a problem of its run) takes it unchanged."""


# A JSON string (escapes included) or a run of characters that are neither brackets nor a
# quote: what the depth scan deletes, leaving the brackets outside strings. Possessive
# quantifiers: no backtracking, so the scan is linear in the document.
_NOT_BRACKETS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[^\[\]{}"]++', re.DOTALL)
# Brackets as signed steps: an opening one +1, a closing one -1 (255 read as a signed byte).
_STEPS = str.maketrans({"[": "\x01", "{": "\x01", "]": "\xff", "}": "\xff", '"': None})


def json_depth(text: str) -> int:
    """How deep the arrays and objects of ``text`` nest, brackets in strings not counted.

    Linear and in C: one regex pass deletes strings and everything but brackets, and the
    running sum of +1/-1 steps over what is left is taken with ``accumulate`` (a document of
    4 MB of brackets costs a fraction of a second). For a valid document this is exactly the
    depth ``json.loads`` recurses to; for an invalid one it bounds the depth the parser can
    reach before it fails (it stops at the first bracket that does not match)."""
    brackets = _NOT_BRACKETS.sub("", text)
    opens = brackets.count("[") + brackets.count("{")
    if opens <= MAX_JSON_DEPTH:  # the usual case: no deeper than the brackets it has
        return opens
    steps = array("b", brackets.translate(_STEPS).encode("latin-1"))
    return max(accumulate(steps), default=0)


def _parse_int(literal: str) -> int:
    # Bound the digits first: int() of a long literal is quadratic (CPython caps it at 4300
    # digits with a ValueError; 20 digits hold every 64-bit value).
    value = int(literal) if len(literal.lstrip("-")) <= 19 else None
    if value is None or not -MAX_JSON_INT - 1 <= value <= MAX_JSON_INT:
        raise DocumentError(f"the integer {literal[:24]} does not fit in 64 bits")
    return value


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 overflows to inf
        raise DocumentError(f"the number {literal[:24]} is too large")
    return value


def _parse_constant(name: str) -> float:
    raise DocumentError(f"{name} is not a number a document of the store may hold")


def parse_json(data: bytes | str) -> Any:
    """A JSON document of the store, bounded: at most ``MAX_JSON_DEPTH`` deep, every number
    finite (no NaN, Infinity or an overflowing float) and every integer within 64 bits; a lone
    surrogate escaped in a string (``"\\udcff"``) comes back written out (``\\xff``), so
    every string of a document can be shown and written again.

    Raises ValueError (``DocumentError`` for the bounds, ``json.JSONDecodeError`` or
    ``UnicodeDecodeError`` for the rest): the error every reader of the store already treats
    as a damaged document. The depth is checked before parsing, so ``json.loads`` never
    recurses far enough to raise ``RecursionError``, which no caller catches. Bytes are
    decoded as ``json.loads`` would (UTF-8, or UTF-16/32 by their first bytes)."""
    if isinstance(data, str):
        text = data
    else:  # as json.loads decodes bytes
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise DocumentError(f"nested {depth} deep (at most {MAX_JSON_DEPTH})")
    doc = json.loads(
        text,
        parse_int=_parse_int,
        parse_float=_parse_float,
        parse_constant=_parse_constant,
    )
    if _SURROGATE_ESCAPE.search(text):  # rare: only then walk the document
        doc = _mend(doc)
    return doc


# ``\udcff`` written out in a JSON string: valid JSON, and a lone surrogate once parsed (what
# json.dumps makes of a name that was not UTF-8). Nothing can encode it as UTF-8: a page
# showing it (Streamlit) or a writer saving it fails.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): as that byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def _mend(value: Any) -> Any:
    """The document with each lone surrogate in its strings (keys too) written as an escape
    (``\\xff``); pairs were already joined by json.loads. Bounded by MAX_JSON_DEPTH."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(_escape_surrogate, value)
    if isinstance(value, list):
        return [_mend(v) for v in value]
    if isinstance(value, dict):
        return {_mend(k): _mend(v) for k, v in value.items()}
    return value


def read_json(
    path: Path | str, *, limit: int = JSON_LIMIT, base: Path | str | None = None
) -> Any | None:
    """The parsed document, or None when it is missing, refused, not JSON, or outside the
    bounds of ``parse_json`` (too deep, a number out of range): readers of the store treat
    None as "unknown", a problem shown on that run (see ``runstore.atomic.read_json``)."""
    try:
        return parse_json(read_bytes(path, limit=limit, base=base))
    except (OSError, ValueError):
        return None


def _shown(path: Path | str, base: Path | str | None) -> str | None:
    try:
        return "/".join(_split(path, base)[2])
    except OSError:
        return None


def problem(exc: OSError, what: str = "") -> str:
    """An error as a page shows it: a refusal in its own words, anything else briefly."""
    if isinstance(exc, UnsafeFileError):
        return str(exc)
    name = what or (Path(exc.filename).name if exc.filename else "the file")
    return f"cannot read {name}: {exc.strerror or exc}"


__all__ = [
    "JSON_LIMIT",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INT",
    "TEXT_LIMIT",
    "DocumentError",
    "UnsafeFileError",
    "check_file",
    "default_base",
    "json_depth",
    "open_file",
    "parse_json",
    "problem",
    "read_bytes",
    "read_json",
    "read_tail",
    "read_text",
    "refusal",
]
