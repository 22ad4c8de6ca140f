"""Checkpoint sets: complete or absent, never half.

SB3 streams a model zip straight into its final path and writes the replay buffer and the
VecNormalize statistics as separate files, so a crash can leave a torn zip or a model without
its buffer. Each checkpoint is therefore a folder written under a temp name, closed by a
manifest, and renamed into place; resume only considers folders whose manifest matches the
files on disk.

Each manifest (and ``best.json`` for ``best.zip``) also lists the SHA-256 of its files and is
signed with the runs folder's key (``runstore.trust``). *Complete* and *trusted* are separate
questions: an incomplete checkpoint (a torn write) is skipped, while a complete one that is
not signed here (a folder from elsewhere, an edited manifest, a manifest from before signing)
is refused with ``NotTrustedError``, never skipped: nothing falls back to an older checkpoint
or to training from scratch over an imported run. Every loader opens its files through
``open_trusted``, which checks the signature and the file's hash on the descriptor it hands
back. Manifests from before signing count as not trusted; ``trust_run`` (``python -m runner
trust RUN``) signs them. The trainer writes manifests; ``trust_run`` rewrites them only while
no trainer runs for that run (the runner refuses it for a live run), so each file still has
one writer at a time.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runstore import safeio, trust
from runstore.atomic import atomic_write_json
from runstore.trust import NOT_TRUSTED, NotTrustedError

#: A checkpoint folder's name: this prefix and the step in this many digits. The one
#: definition: ``checkpoint_name`` writes it, ``CHECKPOINT_NAME_REGEX`` checks it (here, and
#: in the runner's requests and the config's ``init_from``).
_NAME_PREFIX = "step-"
_STEP_DIGITS = 12
CHECKPOINT_NAME_REGEX = f"{_NAME_PREFIX}[0-9]{{{_STEP_DIGITS}}}"  # no groups: embeddable
_CKPT = re.compile(f"^{CHECKPOINT_NAME_REGEX}$")
MANIFEST = "manifest.json"
MODEL = "model.zip"
REPLAY_BUFFER = "replay_buffer.pkl"
VECNORMALIZE = "vecnormalize.pkl"


@dataclass(frozen=True)
class Checkpoint:
    dir: Path
    step: int

    @property
    def model(self) -> Path:
        return self.dir / MODEL

    @property
    def replay_buffer(self) -> Path | None:
        path = self.dir / REPLAY_BUFFER
        return path if path.exists() else None

    @property
    def vecnormalize(self) -> Path | None:
        path = self.dir / VECNORMALIZE
        return path if path.exists() else None


def checkpoint_name(step: int) -> str:
    return f"{_NAME_PREFIX}{step:0{_STEP_DIGITS}d}"


def _step_of(name: str) -> int:
    """The step in a name ``_CKPT`` matched."""
    return int(name[len(_NAME_PREFIX) :])


def staging_dir(checkpoints_dir: Path, step: int) -> Path:
    """Where the trainer writes a checkpoint's files before ``commit`` publishes them."""
    path = checkpoints_dir / f".staging-{checkpoint_name(step)}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def runs_root(checkpoints_dir: Path) -> Path:
    """The runs folder a run's ``checkpoints/`` belongs to (whose key signs it)."""
    return Path(checkpoints_dir).absolute().parent.parent


def commit(
    staging: Path, step: int, extra: dict | None = None, key: bytes | None = None
) -> Checkpoint:
    """Seal the staged files with a signed manifest and rename the folder into place (atomic).

    ``key`` defaults to the key of the runs folder the checkpoint belongs to."""
    files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
    if MODEL not in files:
        raise FileNotFoundError(f"{staging / MODEL} was not written")
    hashes = {name: trust.sha256_file(staging / name) for name in files}
    key = key or trust.folder_key(runs_root(staging.parent))
    assert key is not None
    doc = {**(extra or {}), "step": step, "files": files, trust.SHA256_FIELD: hashes}
    atomic_write_json(staging / MANIFEST, trust.sign(doc, key))
    final = staging.parent / checkpoint_name(step)
    if final.exists():  # the same step saved twice (e.g. stop right after a periodic save)
        discard(final)
    staging.rename(final)
    return Checkpoint(final, step)


def discard(ckpt_dir: Path) -> None:
    """Delete a published checkpoint: renamed aside first, then removed. An rmtree in place,
    killed halfway, would leave a half-deleted checkpoint under its published name."""
    trash = ckpt_dir.parent / f".trash-{ckpt_dir.name}-{time.time_ns()}"
    ckpt_dir.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def is_complete(ckpt_dir: Path) -> bool:
    """Manifest present, every listed file there with its size, and the model zip readable."""
    try:
        manifest = safeio.read_json(ckpt_dir / MANIFEST)
        for name, size in manifest["files"].items():
            if (ckpt_dir / name).lstat().st_size != size:
                return False
        with safeio.open_file(ckpt_dir / MODEL) as fh, zipfile.ZipFile(fh) as zf:
            return zf.testzip() is None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return False


def list_checkpoints(checkpoints_dir: Path) -> list[Checkpoint]:
    """Every published checkpoint, newest first (complete or not)."""
    found = []
    if checkpoints_dir.is_dir():
        for path in checkpoints_dir.iterdir():
            if _CKPT.match(path.name) and path.is_dir() and not path.is_symlink():
                found.append(Checkpoint(path, _step_of(path.name)))
    return sorted(found, key=lambda c: c.step, reverse=True)


def latest_complete(checkpoints_dir: Path) -> tuple[Checkpoint | None, list[Checkpoint]]:
    """The newest loadable checkpoint, and the newer ones skipped because they are broken."""
    skipped = []
    for ckpt in list_checkpoints(checkpoints_dir):
        if is_complete(ckpt.dir):
            return ckpt, skipped
        skipped.append(ckpt)
    return None, skipped


def prune(checkpoints_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints, and leftover staging folders."""
    removed = []
    complete = [c for c in list_checkpoints(checkpoints_dir) if is_complete(c.dir)]
    for ckpt in complete[keep:]:
        discard(ckpt.dir)
        removed.append(ckpt.dir)
    for stale in [*checkpoints_dir.glob(".staging-*"), *checkpoints_dir.glob(".trash-*")]:
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


# -- the best model by evaluation return, and naming a checkpoint to load -----------------

BEST_MODEL = "best.zip"
BEST_META = "best.json"
BEST = "best"
#: What may name a model to load (a record request, ``init_from``): ``best`` or a checkpoint.
CHECKPOINT_REF_REGEX = f"(?:{BEST}|{CHECKPOINT_NAME_REGEX})"


def best_model(checkpoints_dir: Path) -> Path | None:
    """``checkpoints/best.zip``: the model with the highest evaluation return so far."""
    path = checkpoints_dir / BEST_MODEL
    return path if path.is_file() and not path.is_symlink() else None


def read_best(checkpoints_dir: Path) -> dict | None:
    """``{"step": ..., "eval_return": ...}`` of best.zip, or None when there is none."""
    data = safeio.read_json(checkpoints_dir / BEST_META)
    return data if isinstance(data, dict) and best_model(checkpoints_dir) else None


def best_staging(checkpoints_dir: Path) -> Path:
    """Where the trainer saves a new best model before ``commit_best`` replaces the old."""
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    return checkpoints_dir / ".staging-best.zip"


def commit_best(
    staging: Path,
    step: int,
    eval_return: float,
    extra: dict | None = None,
    key: bytes | None = None,
) -> Path:
    final = staging.parent / BEST_MODEL
    with zipfile.ZipFile(staging) as zf:  # never replace a good best.zip by a torn one
        if zf.testzip() is not None:
            raise zipfile.BadZipFile(f"{staging} is corrupt")
    digest = trust.sha256_file(staging)
    key = key or trust.folder_key(runs_root(staging.parent))
    assert key is not None
    os.replace(staging, final)
    meta = {**(extra or {}), "step": step, "eval_return": eval_return}
    atomic_write_json(staging.parent / BEST_META, trust.sign(_best_doc(meta, digest), key))
    return final


def _best_doc(meta: dict, digest: str) -> dict:
    return {**meta, trust.SHA256_FIELD: {BEST_MODEL: digest}}


class CheckpointNotFoundError(LookupError):
    pass


def resolve_model(checkpoints_dir: Path, name: str | None) -> tuple[Path, int]:
    """The model zip a name points at, and its training step.

    ``name`` is ``best``, a checkpoint folder name (``step-000000500000``) or None for the
    newest complete checkpoint. Only files our trainer wrote in this folder qualify: a
    name is never a path, so nothing outside the run is ever loaded this way, and the
    checkpoint must be signed with this runs folder's key (``NotTrustedError`` otherwise;
    the file itself is checked again, hash and all, by ``open_trusted`` when it is loaded).
    """
    if name in (None, ""):
        ckpt, _ = latest_complete(checkpoints_dir)
        if ckpt is None:
            raise CheckpointNotFoundError(f"no complete checkpoint in {checkpoints_dir}")
        check_signed(ckpt.model)
        return ckpt.model, ckpt.step
    if name == BEST:
        best = read_best(checkpoints_dir)
        path = best_model(checkpoints_dir)
        if path is None or best is None:
            raise CheckpointNotFoundError(
                f"no best model in {checkpoints_dir} yet (it is written by the first "
                "evaluation; set eval_every in the config)"
            )
        check_signed(path)
        return path, int(best.get("step", 0))
    if _CKPT.match(name) is None:
        raise CheckpointNotFoundError(
            f"{name!r} is not a checkpoint name: use 'best' or a folder name like "
            f"{checkpoint_name(500_000)}"
        )
    ckpt_dir = checkpoints_dir / name
    if ckpt_dir.is_symlink() or not is_complete(ckpt_dir):
        have = ", ".join(c.dir.name for c in list_checkpoints(checkpoints_dir)) or "none"
        raise CheckpointNotFoundError(f"checkpoint {name} is missing or incomplete (have: {have})")
    check_signed(ckpt_dir / MODEL)
    return ckpt_dir / MODEL, _step_of(name)


# -- trust: signed manifests, checked before anything is loaded ---------------------------


def _manifest_of(path: Path) -> Path:
    """The signed document that vouches for a loadable file: best.json for best.zip, else
    the manifest of the checkpoint folder the file is in."""
    path = Path(path)
    return path.parent / (BEST_META if path.name == BEST_MODEL else MANIFEST)


def _refusal(path: Path, problem: str) -> NotTrustedError:
    path = Path(path).absolute()
    run_id = _checkpoints_dir_of(path).parent.name
    where = BEST if path.name == BEST_MODEL else path.parent.name
    return NotTrustedError(
        f"{NOT_TRUSTED}: {where} of run {run_id} was not written by this runs folder "
        f"({problem}); nothing of it was loaded. {trust.how_to_trust(run_id)}"
    )


def check_signed(path: Path) -> dict:
    """The signed manifest (or best.json) that covers ``path``; NotTrustedError if it is not
    signed with this runs folder's key. Cheap: no file is hashed."""
    doc_path = _manifest_of(path)
    try:
        key = trust.folder_key(_root_of(path), create=False)
    except trust.SecretError as exc:
        raise _refusal(path, str(exc)) from None
    doc = safeio.read_json(doc_path)
    problem = trust.signature_problem(doc, key)
    if problem is not None:
        raise _refusal(path, problem)
    assert isinstance(doc, dict)
    return doc


def _checkpoints_dir_of(path: Path) -> Path:
    path = Path(path).absolute()
    return path.parent if path.name == BEST_MODEL else path.parent.parent


def _root_of(path: Path) -> Path:
    return runs_root(_checkpoints_dir_of(path))


def open_trusted(path: Path) -> BinaryIO:
    """``path`` (a model zip, replay buffer or VecNormalize file of a checkpoint, or best.zip)
    opened for loading, after its manifest's signature and its own SHA-256 were checked.
    Load from the returned file object (not the path), then close it."""
    doc = check_signed(path)
    hashes = doc.get(trust.SHA256_FIELD)
    digest = hashes.get(Path(path).name) if isinstance(hashes, dict) else None
    try:
        return trust.open_verified(path, digest)
    except NotTrustedError as exc:
        raise _refusal(path, str(exc)) from None


@dataclass(frozen=True)
class TrustReport:
    """What ``run_trust`` found: every loadable thing of a run signed here, or not."""

    trusted: bool
    problems: tuple[str, ...] = ()
    checked: int = 0  # checkpoints (and best.zip) looked at


def run_trust(run_dir: Path) -> TrustReport:
    """Are the run's complete checkpoints and best.zip signed with this runs folder's key?

    Cheap (manifests only, no file is hashed), for the dashboard and the runner. A run
    with nothing to load is trusted: nothing of it can be unpickled."""
    checkpoints_dir = Path(run_dir) / "checkpoints"
    try:
        key = trust.folder_key(runs_root(checkpoints_dir), create=False)
    except trust.SecretError as exc:
        return TrustReport(False, (str(exc),))
    problems = []
    checked = 0
    for ckpt in list_checkpoints(checkpoints_dir):
        if not is_complete(ckpt.dir):
            continue
        checked += 1
        problem = trust.signature_problem(safeio.read_json(ckpt.dir / MANIFEST), key)
        if problem:
            problems.append(f"{ckpt.dir.name}: {problem}")
    if best_model(checkpoints_dir) is not None:
        checked += 1
        problem = trust.signature_problem(safeio.read_json(checkpoints_dir / BEST_META), key)
        if problem:
            problems.append(f"{BEST_MODEL}: {problem}")
    return TrustReport(not problems, tuple(problems), checked)


def trust_run(run_dir: Path, key: bytes | None = None) -> list[str]:
    """Sign a run's complete checkpoints and best.zip with this runs folder's key, as they
    are now: the explicit trust action (``python -m runner trust RUN``). Returns what it
    signed. Only while no trainer runs for the run: the runner refuses it for a live run.

    Incomplete checkpoints stay unsigned (a torn file must not become loadable), and a file
    a manifest does not list stays unloadable."""
    checkpoints_dir = Path(run_dir) / "checkpoints"
    key = key or trust.folder_key(runs_root(checkpoints_dir))
    assert key is not None
    signed = []
    for ckpt in list_checkpoints(checkpoints_dir):
        if not is_complete(ckpt.dir):
            continue
        doc = safeio.read_json(ckpt.dir / MANIFEST)
        assert isinstance(doc, dict)  # is_complete read it
        files = doc["files"]
        hashes = {name: trust.sha256_file(ckpt.dir / name) for name in files}
        atomic_write_json(ckpt.dir / MANIFEST, trust.sign({**doc, trust.SHA256_FIELD: hashes}, key))
        signed.append(ckpt.dir.name)
    best = best_model(checkpoints_dir)
    meta = safeio.read_json(checkpoints_dir / BEST_META)
    if best is not None and isinstance(meta, dict) and _zip_ok(best):
        doc = _best_doc(meta, trust.sha256_file(best))
        atomic_write_json(checkpoints_dir / BEST_META, trust.sign(doc, key))
        signed.append(BEST_MODEL)
    return signed


def _zip_ok(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False
