"""Trust: load nothing that this runs folder did not write (docs/architecture.md, "Trust").

SB3 model zips (their ``data`` entry), replay buffers and VecNormalize files are pickles:
loading one runs whatever it contains. A run folder copied in from elsewhere (a colleague's
tarball, a shared or NFS folder) must therefore never be loaded just because it sits in
``runs/``. Each runs folder has a secret key, ``runs/.secret`` (32 random bytes, mode 0600,
created on first use, never shown anywhere); every checkpoint manifest and ``best.json``
lists the SHA-256 of its files and carries an HMAC-SHA256 over the rest of the document with
that key. A loader checks the HMAC, then reads the file through one open descriptor whose
bytes it hashes before handing it on (so a file swapped after the check is never the one
loaded).

What is not signed with this folder's key (another folder's key, a forged or edited
manifest, a manifest from before signing existed) is *not trusted*: its curves and clips can
be viewed, nothing of it is unpickled until a user who may act trusts it explicitly
(``python -m runner trust RUN`` or the Trust button), which re-signs it with this folder's
key and is logged in run.json.

This module holds the primitives (key, signature, verified reads); ``runstore.checkpoints``
applies them to checkpoint sets. Torch-free, and it imports nothing outside ``runstore``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from pathlib import Path
from typing import BinaryIO

from runstore import safeio

SECRET = ".secret"
KEY_BYTES = 32
HMAC_FIELD = "hmac"
SHA256_FIELD = "sha256"
#: What the dashboard and every refusal call a folder that fails the check.
NOT_TRUSTED = "imported: not trusted"
_CHUNK = 1 << 20


class NotTrustedError(PermissionError):
    """A file that this runs folder's key does not vouch for; nothing of it was loaded."""


class SecretError(NotTrustedError):
    """The runs folder's key is missing, unreadable or not safe to use."""


def how_to_trust(run_id: str) -> str:
    """What the user can do with a run that is not trusted (the end of every refusal)."""
    return (
        "Its curves and clips can be viewed; to resume or record from it, trust it first "
        f"if you know where it came from: python -m runner trust {run_id} (or the Trust "
        "button on its Run page)."
    )


# -- the key of a runs folder ---------------------------------------------------------------


def secret_path(runs_root: Path) -> Path:
    return Path(runs_root) / SECRET


def folder_key(runs_root: Path, create: bool = True) -> bytes | None:
    """The runs folder's key; made on first use when ``create`` (else None if there is none).

    Creation is race-free: the key is written to a private temp file and hard-linked to
    ``.secret`` (the link fails if another process got there first, whose key we then read),
    so nobody ever reads a half-written key. Where hard links are not supported, the file is
    created with ``O_CREAT | O_EXCL`` and a reader waits briefly for its 32 bytes.
    """
    path = secret_path(runs_root)
    key = _read_key(path)
    if key is not None or not create:
        return key
    Path(runs_root).mkdir(parents=True, exist_ok=True)
    new = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f"{SECRET}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        except OSError:  # no hard links here (some network file systems)
            _create_exclusive(path, new)
    finally:
        tmp.unlink(missing_ok=True)
    for _ in range(50):  # the O_EXCL fallback's winner may still be writing its bytes
        key = _read_key(path)
        if key is not None:
            return key
        time.sleep(0.02)
    raise SecretError(f"{path} could not be read back after it was created")


def _create_exclusive(path: Path, key: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())


def _read_key(path: Path) -> bytes | None:
    """The key, None when there is no key file yet; SecretError when it is unsafe.

    Opened through ``safeio`` (no link, checked to be a regular file before the open, and
    opened non-blocking): a FIFO planted at ``.secret`` fails at once instead of blocking
    every loader of a checkpoint until someone writes to it."""
    try:
        fh = safeio.open_file(path, base=Path(path).parent)
    except FileNotFoundError:
        return None
    except safeio.UnsafeFileError as exc:
        raise SecretError(
            f"{path} {exc.reason}, not this runs folder's key; remove it (a new key is made, "
            "and every run here must then be trusted again)"
        ) from exc
    except OSError as exc:
        raise SecretError(f"cannot open {path} ({exc}); it must be a plain file") from exc
    with fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):  # safeio checked already; kept as the last word
            raise SecretError(f"{path} is not a plain file; remove it (a new key is made)")
        if os.name == "posix":
            if st.st_uid != os.geteuid():
                raise SecretError(
                    f"{path} belongs to another user (uid {st.st_uid}); a key someone else "
                    "placed here proves nothing. Remove it: a new key is made (and every run "
                    "here must then be trusted again)"
                )
            if st.st_mode & 0o077:
                raise SecretError(
                    f"{path} can be read or written by other users (mode "
                    f"{stat.S_IMODE(st.st_mode):o}); run chmod 600 {path}, or remove it "
                    "(every run here must then be trusted again)"
                )
        data = fh.read(KEY_BYTES + 1)
    if len(data) < KEY_BYTES:
        return None  # still being written (the O_EXCL fallback); the creator's caller retries
    if len(data) > KEY_BYTES:
        raise SecretError(f"{path} is not a key of this program ({KEY_BYTES} bytes expected)")
    return data


# -- signatures -------------------------------------------------------------------------------


def _canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != HMAC_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(doc: dict, key: bytes) -> dict:
    """``doc`` with an HMAC-SHA256 over its canonical JSON (every field but the HMAC)."""
    body = {k: v for k, v in doc.items() if k != HMAC_FIELD}
    return {**body, HMAC_FIELD: hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()}


def signature_problem(doc: object, key: bytes | None) -> str | None:
    """None when ``doc`` is signed with ``key``; else why not, in words."""
    if not isinstance(doc, dict):
        return "its manifest is unreadable"
    mac = doc.get(HMAC_FIELD)
    if not isinstance(mac, str):
        return "it is not signed (written elsewhere, or before runs were signed)"
    if key is None:
        return "this runs folder has no key yet, so nothing in it was signed here"
    expected = hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode()):
        return "its signature is not this runs folder's (signed elsewhere, or edited)"
    return None


# -- files ------------------------------------------------------------------------------------


def open_regular(path: Path) -> BinaryIO:
    """Open a file for reading through ``safeio`` (no link followed, in the file or the folders
    above it; nothing but a plain file); a refusal is a ``NotTrustedError``."""
    try:
        return safeio.open_file(path)
    except safeio.UnsafeFileError as exc:
        raise NotTrustedError(str(exc)) from exc


def sha256_of(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open_regular(path) as fh:
        return sha256_of(fh)


def open_verified(path: Path, sha256: object) -> BinaryIO:
    """``path`` opened for reading, positioned at 0, after its bytes hashed to ``sha256``.

    The caller loads from this very file object: a file renamed over ``path`` after the
    check is not the one it reads.
    """
    if not isinstance(sha256, str):
        raise NotTrustedError(f"{Path(path).name} is not listed in the signed manifest")
    fh = open_regular(path)
    try:
        actual = sha256_of(fh)
        if not hmac.compare_digest(actual, sha256):
            raise NotTrustedError(
                f"{Path(path).name} is not the file that was signed (its SHA-256 differs): "
                "it was replaced or changed after it was written"
            )
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh


@contextlib.contextmanager
def verified(path: Path, sha256: object):  # type: ignore[no-untyped-def]
    fh = open_verified(path, sha256)
    try:
        yield fh
    finally:
        fh.close()
