"""Sweeps in the run store: ``runs/sweeps/<sweep-id>/`` and its files.

::

    sweeps/<sweep-id>/
      sweep.yaml      the sweep file as the user wrote it
      resolved.yaml   the same with the runner's settings.yaml defaults under it: what every
                      trial is made from (a later change of the settings changes no trial)
      study.journal   Optuna's journal storage (absent when the sweep names a PostgreSQL one)
      sweep.json      state and progress, written by the runner only (``SweepState``)

A sweep's trials are ordinary runs; each is queued as ``queue/<trial_file_name>`` and its
config carries ``sweep: {id, trial, seed_index}``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from runstore.atomic import atomic_write_json, atomic_write_text
from runstore.models import Int64, MaybeFloat, Timestamp, _Doc
from runstore.paths import member, new_run_id
from runstore.safeio import read_bytes
from runstore.safeio import read_json as safe_read_json
from runstore.store import read_document

SWEEPS_DIR = "sweeps"
SweepStatus = Literal["running", "paused", "complete", "stopped", "failed"]
#: What may be asked of a whole sweep (``sweeps/<id>/requests/``, consumed by the runner).
SWEEP_ACTIONS = ("stop", "pause", "resume", "promote")
MAX_SWEEP_REQUESTS = 100  # read per step; a flood is consumed a slice at a time


@dataclass(frozen=True)
class SweepPaths:
    """The files of one sweep folder."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    spec = member("dir", "sweep.yaml")
    resolved = member("dir", "resolved.yaml")
    journal = member("dir", "study.journal")
    state = member("dir", "sweep.json")
    requests = member("dir", "requests")


@dataclass(frozen=True)
class SweepRequest:
    path: Path
    action: str
    source: str
    params: dict[str, Any]


class SweepState(_Doc):
    """sweep.json: what the Sweeps page and ``runner sweeps`` show; written by the runner."""

    id: str
    name: str
    state: SweepStatus = "running"
    reason: str = ""
    created_at: Timestamp = Field(default_factory=time.time)
    updated_at: Timestamp = Field(default_factory=time.time)
    metric: str = ""
    direction: str = "maximize"
    n_trials: Int64 | None = None
    seeds: Int64 = 1
    asked: Int64 = 0
    running: Int64 = 0
    complete: Int64 = 0
    pruned: Int64 = 0
    failed: Int64 = 0
    best_trial: Int64 | None = None
    best_value: MaybeFloat = None
    best_params: dict[str, Any] = Field(default_factory=dict)
    trial_runs: dict[str, list[str]] = Field(default_factory=dict)  # trial -> its run ids


def sweeps_root(runs_root: Path) -> Path:
    return runs_root / SWEEPS_DIR


def sweep_paths(runs_root: Path, sweep_id: str) -> SweepPaths:
    return SweepPaths(sweeps_root(runs_root) / sweep_id)


def sweep_ids(runs_root: Path) -> list[str]:
    """Every sweep with a sweep.yaml, oldest first (ids sort by creation time)."""
    root = sweeps_root(runs_root)
    if not root.is_dir():
        return []
    return sorted(
        e.name
        for e in os.scandir(root)
        if not e.name.startswith(".")
        and e.is_dir(follow_symlinks=False)
        and os.path.exists(os.path.join(e.path, "sweep.yaml"))
    )


def create_sweep(
    runs_root: Path, queue_file: Path, name: str, resolved: dict[str, Any]
) -> SweepPaths | None:
    """Turn an accepted sweep file into a sweep folder, atomically (like a run's intake):
    assembled under a hidden name, the queue file moved in, then renamed into place. None if
    another process took the file first."""
    root = sweeps_root(runs_root)
    root.mkdir(exist_ok=True)
    sweep_id = new_run_id(name)
    staging = root / f".partial-{sweep_id}"
    staging.mkdir()
    paths = SweepPaths(staging)
    try:
        os.rename(queue_file, paths.spec)
    except FileNotFoundError:
        staging.rmdir()
        return None
    atomic_write_text(paths.resolved, yaml.safe_dump(resolved, sort_keys=False))
    os.rename(staging, root / sweep_id)
    return sweep_paths(runs_root, sweep_id)


def recover_partial_sweeps(runs_root: Path, queue_dir: Path) -> None:
    """Put back the sweep file of a sweep folder a killed runner left half-made."""
    root = sweeps_root(runs_root)
    for staging in root.glob(".partial-*") if root.is_dir() else ():
        spec = SweepPaths(staging).spec
        if spec.exists():
            os.replace(spec, queue_dir / f"recovered-{staging.name.removeprefix('.partial-')}.yaml")
        shutil.rmtree(staging, ignore_errors=True)


def read_resolved(paths: SweepPaths) -> bytes:
    return read_bytes(paths.resolved, limit=1 << 20)


def read_sweep_state(paths: SweepPaths) -> SweepState | None:
    return read_document(paths.state, SweepState)


def write_sweep_state(paths: SweepPaths, state: SweepState) -> None:
    state.updated_at = time.time()
    atomic_write_json(paths.state, state.document())


def trial_file_name(sweep_id: str, trial: int, seed_index: int) -> str:
    """The queue file of one run of a trial: fixed, so a runner restarted after a crash can
    tell a run it already queued from one it still has to."""
    return f"sweep-{sweep_id}-t{trial:05d}-s{seed_index:03d}.yaml"


_TRIAL_FILE = re.compile(r"^sweep-(?P<id>.+)-t\d{5,}-s\d{3,}\.yaml$")


def sweep_of_queue_file(name: str) -> str | None:
    """The sweep a run was queued for, from the queue file name its run.json keeps
    (``source_file``): what a listing of thousands of runs can tell without reading each
    config.yaml (whose ``sweep:`` says the same)."""
    match = _TRIAL_FILE.match(name)
    return match["id"] if match else None


def write_sweep_request(
    paths: SweepPaths, action: str, source: str = "cli", params: dict[str, Any] | None = None
) -> Path:
    """Ask the runner to act on a whole sweep (written by the CLI and the dashboard)."""
    if action not in SWEEP_ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(SWEEP_ACTIONS)}")
    if not paths.spec.exists():
        raise LookupError(f"no sweep {paths.id}")
    if paths.requests.is_symlink():
        raise OSError(f"{paths.requests} is a symlink; refusing to write through it")
    paths.requests.mkdir(exist_ok=True)
    path = paths.requests / f"{time.time_ns()}-{action}.json"
    doc = {"action": action, "at": time.time(), "source": source, "params": params or {}}
    atomic_write_json(path, doc)
    return path


def pending_sweep_requests(paths: SweepPaths) -> tuple[list[SweepRequest], list[Path]]:
    """Valid requests oldest first (at most ``MAX_SWEEP_REQUESTS``), and files that are not."""
    folder = paths.requests
    if folder.is_symlink():
        return [], []
    if not folder.is_dir():
        return [], []
    valid, invalid = [], []
    names = sorted(e.name for e in os.scandir(folder) if not e.name.startswith("."))
    for name in names[:MAX_SWEEP_REQUESTS]:
        path = folder / name
        data = safe_read_json(path)
        action = data.get("action") if isinstance(data, dict) else None
        if action in SWEEP_ACTIONS and name.endswith(f"-{action}.json"):
            params = data.get("params")
            source = str(data.get("source", "?"))[:40]
            valid.append(
                SweepRequest(path, action, source, params if isinstance(params, dict) else {})
            )
        else:
            invalid.append(path)
    return valid, invalid
