"""A failing training ends ``failed`` with the reason in plain words and the traceback kept."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runstore import RunState, RunStore

from .conftest import ROOT, Runs, cartpole, wait_for

# Plain SGD with an absurd step size: the weights overflow within a few updates.
DIVERGING = """\
algo: ppo
env: CartPole-v1
n_timesteps: 20000
hyperparams:
  learning_rate: 1.0e+30
  max_grad_norm: 1.0e+30
  n_steps: 64
  batch_size: 64
  policy_kwargs: {optimizer_class: sgd}
"""


def queued_run(store: RunStore, text: str) -> str:
    path = store.submit(text, "run.yaml")
    record = store.accept(path, store.read_queue_file(path))
    return record.id


def test_cuda_requested_on_a_machine_without_it(runs: Runs):
    """This machine has no GPU: asking for one must fail fast and say what to do."""
    runs.runner()
    runs.submit(cartpole(steps=500, extra="device: cuda\n"), "gpu.yaml")
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.FAILED, RunState.COMPLETED, timeout=120)
    assert record.state == RunState.FAILED
    status = runs.status(run_id)
    assert "CUDA" in status.reason and "device: cuda" in status.reason
    assert status.diagnosis.code in ("cuda_unavailable", "cuda_not_compiled")
    assert any("device: cpu" in step for step in status.diagnosis.steps)
    assert record.diagnosis == status.diagnosis
    traceback = runs.store.paths(run_id).traceback.read_text()
    assert "DeviceUnavailableError" in traceback


def test_nan_loss_fails_the_run_by_hand(tmp_path: Path):
    """``python -m training RUN_DIR`` without a runner: diverging weights stop the run."""
    store = RunStore(tmp_path)
    store.ensure_layout()
    run_id = queued_run(store, DIVERGING)
    run = store.paths(run_id)
    result = subprocess.run(
        [sys.executable, "-m", "training", str(run.dir)], cwd=ROOT, capture_output=True, timeout=120
    )
    assert result.returncode == 1
    status = store.read_status(run_id)
    assert status.outcome == "failed"
    assert status.diagnosis.code == "nan_or_inf"
    assert "learning_rate" in " ".join(status.diagnosis.steps)
    assert run.traceback.exists()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    return result.returncode == 0


def fill_disk(mount: Path, filler: Path, leave: int) -> None:
    """Fill the filesystem up to ``leave`` free bytes (or completely, if the run races us)."""
    with open(filler, "wb", buffering=0) as fh:
        while True:
            stat = os.statvfs(mount)
            free = stat.f_bavail * stat.f_frsize - leave
            if free <= 0:
                return
            try:
                fh.write(b"\0" * min(free, 1 << 20))
            except OSError:
                return


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_disk_full_fails_the_run_with_a_diagnosis_and_keeps_the_rest(tmp_path: Path):
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "8m"):
        pytest.skip("needs root to mount a small tmpfs (the disk-full case cannot be faked)")
    try:
        runs = Runs(small / "runs")
        try:
            runs.runner()
            runs.submit(cartpole(steps=300, extra="name: done\n"), "done.yaml")
            done = runs.only_run()
            runs.wait_state(done, RunState.COMPLETED, timeout=120)
            before = _digest(runs.store.paths(done).dir)

            runs.submit(cartpole(ckpt=500, extra="name: full\nkeep_checkpoints: 1000\n"), "f.yaml")
            full = wait_for(
                lambda: [i for i in runs.store.run_ids() if i != done], 10, "the second run"
            )[0]
            runs.wait_steps(full, 1000)
            filler = small / "filler"
            fill_disk(small, filler, leave=48 * 1024)
            record = runs.wait_state(full, RunState.FAILED, RunState.COMPLETED, timeout=120)
            assert record.state == RunState.FAILED
            status = runs.store.read_status(full)
            assert status.diagnosis.code == "disk_full", status.reason
            assert "space" in status.reason.lower()
            assert _digest(runs.store.paths(done).dir) == before  # the other run is intact
            runs.store.read_config(full)  # and this run's own files still read
            filler.unlink()
        finally:
            runs.cleanup()
    finally:
        subprocess.run(["umount", "-l", str(small)])
