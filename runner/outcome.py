"""How a training process ended, from what it recorded (status.json) or, failing that, from
its exit code and the end of its log (the failure classifier)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from machine.failures import explain
from runner import process
from runner.process import Handle
from runstore import safeio
from runstore.models import RunRecord, RunState, TrainStatus
from runstore.store import RunStore


def judge(
    store: RunStore, record: RunRecord, handle: Handle, status: TrainStatus | None
) -> RunState:
    """The state a run whose trainer exited ends in; its exit code, end time, reason and
    diagnosis go into ``record``. ``status`` counts only when this trainer wrote it."""
    code = handle.exit_code()
    record.exit_code = code
    record.ended_at = time.time()
    record.diagnosis = status.diagnosis if status and status.pid == handle.pid else None
    outcome = status.outcome if status and status.pid == handle.pid else None
    if outcome in ("completed", "stopped", "failed"):
        state = RunState(outcome)
        record.reason = status.reason if status else ""
        if state == RunState.COMPLETED and record.state == RunState.STOPPING:
            state = RunState.STOPPED  # a stop that raced the last step
        return state
    if code is None and handle.remote is not None and not handle.pid and not handle.vanished():
        record.reason = "stopped before it started on a cluster node"
        return RunState.STOPPED  # taken off Ray's queue (``RemoteProcess.signal``)
    if code is None:
        record.reason = handle.vanished() or (
            "the training process vanished without recording an outcome"
        )
        return RunState.LOST
    state = RunState.FAILED
    sig = process.signal_name(code)
    record.diagnosis = explain(
        _tail(store.paths(record.id).trainer_log),
        None,
        exit_signal=-code if code < 0 else None,
        rss_bytes=handle.peak_rss or None,
        mem_total_bytes=psutil.virtual_memory().total,
    )
    record.reason = (
        f"the training process was killed by {sig} before it could record an outcome"
        if sig
        else f"the training process exited with code {code} without recording an outcome"
    )
    if record.state == RunState.STOPPING and sig in ("SIGKILL", "SIGTERM"):
        # SIGTERM before the trainer installed its handler (still importing), or the
        # kill after the grace period: either way the stop the user asked for.
        state = RunState.STOPPED
        record.reason = f"stopped ({sig} before it could save a checkpoint)"
    return state


def _tail(path: Path, size: int = 16_384) -> str:
    """The end of a run's log for the failure classifier; "" when missing or refused (a
    link, a FIFO: ``runstore.safeio``), so a planted file neither leaks nor hangs the loop."""
    try:
        return safeio.read_tail(path, limit=size).decode("utf-8", errors="replace")
    except OSError:
        return ""
