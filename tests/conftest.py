"""Shared fixtures: a runs folder, a real runner process, and cleanup that ends every process
a test started — by pid and process group, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from runner import process
from runstore import RunRecord, RunState, RunStore, TrainStatus

ROOT = Path(__file__).resolve().parent.parent

CARTPOLE_PPO = """\
algo: ppo
env: CartPole-v1
n_timesteps: {steps}
seed: 1
checkpoint_every: {ckpt}
hyperparams:
  n_envs: {n_envs}
  n_steps: 64
  batch_size: 64
  n_epochs: 2
"""


def cartpole(steps: int = 200_000, ckpt: int = 1_000, n_envs: int = 1, extra: str = "") -> str:
    return CARTPOLE_PPO.format(steps=steps, ckpt=ckpt, n_envs=n_envs) + extra


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")


class RunnerProcess:
    """``python -m runner`` as a real subprocess on a test's runs folder."""

    def __init__(self, store: RunStore, *args: str):
        self.store = store
        self.log = open(store.root / f"runner-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "--runs-dir", str(store.root), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        wait_for(
            lambda: self.proc.poll() is not None or self._ready(),
            timeout=30,
            what="the runner to start",
        )

    def _ready(self) -> bool:
        info = self.store.read_runner_info()
        return info is not None and info.pid == self.proc.pid

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


class Runs:
    """Helpers over one test's runs folder."""

    def __init__(self, root: Path):
        self.store = RunStore(root)
        self.store.ensure_layout()
        self.runners: list[RunnerProcess] = []
        self.extra_pgids: set[int] = set()

    def runner(self, *args: str) -> RunnerProcess:
        runner = RunnerProcess(self.store, *args)
        self.runners.append(runner)
        return runner

    def submit(self, text: str, name: str = "run.yaml") -> Path:
        return self.store.submit(text, name)

    def only_run(self, timeout: float = 30) -> str:
        ids = wait_for(lambda: self.store.run_ids(), timeout, "a run folder")
        assert len(ids) == 1, ids
        return ids[0]

    def record(self, run_id: str) -> RunRecord:
        record = self.store.read_run(run_id)
        assert record is not None
        return record

    def status(self, run_id: str) -> TrainStatus | None:
        return self.store.read_status(run_id)

    def wait_state(self, run_id: str, *states: RunState, timeout: float = 180) -> RunRecord:
        def reached() -> RunRecord | None:
            record = self.store.read_run(run_id)
            return record if record is not None and record.state in states else None

        wanted = "/".join(s.value for s in states)
        return wait_for(reached, timeout, f"{run_id} to be {wanted}")  # type: ignore[return-value]

    def wait_steps(self, run_id: str, at_least: int, timeout: float = 180) -> TrainStatus:
        def advanced() -> TrainStatus | None:
            record = self.store.read_run(run_id)
            if record is not None and record.state.is_ended:
                raise AssertionError(f"{run_id} ended {record.state.value}: {record.reason}")
            status = self.store.read_status(run_id)
            return status if status is not None and status.timesteps >= at_least else None

        return wait_for(advanced, timeout, f"{run_id} to pass {at_least} steps")  # type: ignore[return-value]

    def cleanup(self) -> None:
        for runner in self.runners:
            runner.kill()
            runner.log.close()
        kill_run_groups(self.store, self.extra_pgids)


def kill_run_groups(store: RunStore, pgids: set[int] | None = None) -> None:
    """SIGKILL ``pgids`` (groups the test itself started) and the process group of every
    trainer and media job of ``store``: recorded in run.json (signalled only when the record's
    (pid, create time) still identifies it, like every runner signal), or found by its
    command line when the record never got its pid."""
    for run_id in store.run_ids():
        record = store.read_run(run_id)
        if record is not None:
            process.send(record.pid, record.pgid, record.create_time, signal.SIGKILL)
            if (job := record.media_job) is not None:
                process.send(job.pid, job.pgid, job.create_time, signal.SIGKILL)
        for proc in process.find_trainers(store.paths(run_id).dir):
            with contextlib.suppress(psutil.Error, OSError):
                process.send(proc.pid, os.getpgid(proc.pid), proc.create_time(), signal.SIGKILL)
    for pgid in pgids or ():
        if pgid > 1 and pgid != os.getpgrp():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def dashboard_on(root: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    """Point the dashboard of this test (AppTest, in this process) at ``root``, with no runner
    started for it and no password set; the store, laid out."""
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    monkeypatch.delenv("RETRO_ML_PASSWORD", raising=False)
    store = RunStore(root)
    store.ensure_layout()
    return store


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    helper = Runs(tmp_path / "runs")
    try:
        yield helper
    finally:
        helper.cleanup()


def group_alive(pgid: int) -> list[psutil.Process]:
    return process.group_members(pgid)


def accept(store: RunStore, text: str, name: str) -> str:
    """A run folder from a config, as the runner's intake makes it (no runner); its id."""
    from runstore.config import parse_config

    path = store.submit(text, name)
    record = store.accept(path, parse_config(path.read_bytes()))
    assert record is not None
    return record.id


def train(store: RunStore, run_ids: list[str], timeout: float = 600) -> None:
    """Train run folders for real, side by side, with ``python -m training`` (no runner),
    and fail unless each exits 0; any still running at the end is killed with its group."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "training", str(store.paths(run_id).dir)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for run_id in run_ids
    ]
    try:
        for proc in procs:
            assert proc.wait(timeout=timeout) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
