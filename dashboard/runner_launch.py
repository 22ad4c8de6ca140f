"""Start a local runner when none supervises the runs folder: the dashboard's one act on
processes (docs/architecture.md, "The processes"). The runner runs detached in its own
session, so it outlives a restarted dashboard and a Ctrl-C in the dashboard's terminal does
not reach it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from runstore import safeio
from runstore.store import RunStore

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunnerLaunch:
    started: bool
    pid: int | None
    message: str
    failed: bool = False  # the start itself failed (message says why)


def ensure_runner(rs: RunStore) -> RunnerLaunch:
    """Use the runner holding ``rs.root`` if there is one, else start one in the background."""
    if rs.runner_is_alive():
        info = rs.read_runner_info()
        pid = info.pid if info else None
        return RunnerLaunch(False, pid, "A runner is already supervising this runs folder.")
    try:  # a read-only runs folder, or a link planted at runner.log: say so, start nothing
        rs.ensure_layout()
        with safeio.open_append(rs.runner_log) as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runner", "--runs-dir", str(rs.root)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
    except OSError as exc:
        return RunnerLaunch(False, None, f"Could not start a runner for {rs.root}: {exc}", True)
    return RunnerLaunch(
        True,
        proc.pid,
        f"No runner was supervising this runs folder, so the dashboard started one in the "
        f"background (pid {proc.pid}, log: {rs.runner_log}). It keeps running when the "
        "dashboard stops; `python -m runner ls` talks to it.",
    )
