"""Hostile names and planted symlinks: refused or contained, never followed out of the folder.

Run ids, run names and request files with separators, ``..``, NUL bytes and very long names;
symlinks placed inside a run folder pointing outside (requests/, status.json, run.json,
checkpoints/). Every check uses a real runner, a real trainer or the real store on a temp
folder with a sentinel folder *outside* it whose contents must not change.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.supervisor import Supervisor
from runstore import RunState, RunStore
from runstore.config import ConfigError
from runstore.paths import UnsafePathError, is_run_id, new_run_id

from .conftest import ROOT, Runs, cartpole, wait_for

pytestmark = pytest.mark.faults

BAD_IDS = [
    "", ".", "..", "../x", "a/b", "/etc", "x\x00y", "C:\\x", "..\\..\\x", "~root",
    "20261124-031205-pong-ppo-3f9a/..", "20261124-031205-pong-ppo-3f9a/../../x",
    "20261124-031205-pong-ppo-3f9a\x00", "20261124-031205-" + "a" * 300 + "-3f9a",
    "20261124-031205-pоng-3f9a",  # Cyrillic o
    "20261124-031205-pong-ppo-3F9A", " 20261124-031205-pong-ppo-3f9a",
]  # fmt: skip


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the runs folder that nothing may read through, write or delete."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.json").write_text('{"action": "stop", "at": 1}')
    (folder / "1-stop.json").write_text('{"action": "stop", "at": 1, "source": "x"}')
    (folder / "step-000000000064").mkdir()
    (folder / "step-000000000064" / "keep.txt").write_text("keep")
    return folder


@pytest.mark.parametrize("run_id", BAD_IDS)
def test_hostile_run_ids_are_refused(tmp_path: Path, run_id: str):
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    with pytest.raises(UnsafePathError):
        store.paths(run_id)
    with pytest.raises((UnsafePathError, ValueError)):
        store.write_request(run_id, "stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_cli_refuses_hostile_run_names(runs: Runs):
    for query in ("../../etc/passwd", "a/b", "..", "x" * 5000):
        result = subprocess.run(
            [sys.executable, "-m", "runner", "stop", query, "--runs-dir", str(runs.store.root)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 2 and "error:" in result.stderr
    assert runs.store.run_ids() == []


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=300))
def test_any_run_name_gives_a_safe_run_id(name: str):
    assert is_run_id(new_run_id(name))


def test_hostile_names_in_a_config_are_rejected():
    for name in ("../x", "a/b", "a\\b", "..", ".hidden", "x" * 65, "a\x00b", "<script>"):
        text = f"algo: ppo\nenv: CartPole-v1\nn_timesteps: 100\nname: {name!r}\n"
        with pytest.raises(ConfigError) as caught:
            from runstore.config import parse_config

            parse_config(text.encode())
        assert any("name" in p for p in caught.value.problems)


def test_hostile_queue_file_names_stay_in_the_folder(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    for name in ("../escape.yaml", "/tmp/x.yaml", "a/../../b.yaml", "..yaml", "x" * 300, "a\x00b"):
        path = store.submit(cartpole(steps=100), name)
        assert path.parent == store.queue_dir
        assert path in store.queue_files(), f"{name!r} became {path.name!r}, hidden from intake"
    outside_link = store.queue_dir / "link.yaml"
    target = tmp_path / "target.yaml"
    target.write_text(cartpole(steps=100))
    outside_link.symlink_to(target)
    with pytest.raises(ConfigError):
        store.read_queue_file(outside_link)
    assert target.read_text() == cartpole(steps=100)
    long = store.queue_dir / ("y" * 240 + ".yaml")
    long.write_text(cartpole(steps=100))
    with pytest.raises(ConfigError) as caught:
        store.read_queue_file(long)
    rejected = store.reject(long, caught.value.problems)
    assert rejected.parent == store.rejected_dir and len(rejected.name) <= 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "target.yaml"]


def _queued(runs: Runs, text: str = "") -> str:
    path = runs.submit(text or cartpole(steps=300, ckpt=100), "run.yaml")
    return runs.store.accept(path, runs.store.read_queue_file(path)).id


def test_requests_folder_symlinked_outside_is_refused(runs: Runs, outside: Path):
    """Before: the runner read the request files out there, acted on them and deleted them."""
    run_id = _queued(runs)
    requests = runs.store.paths(run_id).requests
    requests.rmdir()
    requests.symlink_to(outside, target_is_directory=True)
    before = _tree(outside)
    with pytest.raises(UnsafePathError):
        runs.store.write_request(run_id, "stop")
    valid, invalid = runs.store.pending_requests(run_id)
    assert valid == []
    runs.runner("--poll", "0.2")
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.STOPPED, RunState.FAILED)
    assert record.state == RunState.COMPLETED, "a request from outside the folder was obeyed"
    assert _tree(outside) == before


def test_a_folder_in_requests_does_not_stall_the_runner(runs: Runs):
    """Before: unlinking it raised IsADirectoryError in every step, so nothing was scheduled."""
    run_id = _queued(runs)
    (runs.store.paths(run_id).requests / "123-stop.json").mkdir()
    runner = runs.runner("--poll", "0.2")
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=120)
    assert record.state == RunState.COMPLETED
    assert "step failed" not in runner.output()


def test_status_and_run_json_symlinked_outside_are_not_read_or_written(runs: Runs, outside: Path):
    run_id = _queued(runs)
    run = runs.store.paths(run_id)
    run.status_json.symlink_to(outside / "secret.json")
    assert runs.store.read_status(run_id) is None  # not read through the link
    before = _tree(outside)
    runs.runner("--poll", "0.2")
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=120)
    assert record.state == RunState.COMPLETED
    assert not run.status_json.is_symlink()  # replaced by the trainer's own file
    assert _tree(outside) == before


def test_checkpoints_symlinked_outside_fail_the_run_and_touch_nothing(runs: Runs, outside: Path):
    """Before: the trainer wrote checkpoints out there and pruned (deleted) folders in it."""
    run_id = _queued(runs)
    run = runs.store.paths(run_id)
    run.checkpoints.rmdir()
    run.checkpoints.symlink_to(outside, target_is_directory=True)
    before = _tree(outside)
    runs.runner("--poll", "0.2")
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=120)
    assert record.state == RunState.FAILED
    assert "symlink" in record.reason
    assert _tree(outside) == before
    assert sorted(p.name for p in outside.iterdir()) == sorted(
        ["secret.json", "1-stop.json", "step-000000000064"]
    )


def test_deleting_a_run_does_not_follow_symlinks_out(runs: Runs, outside: Path):
    run_id = _queued(runs)
    run = runs.store.paths(run_id)
    (run.logs / "link").symlink_to(outside, target_is_directory=True)
    (run.dir / "file-link.json").symlink_to(outside / "secret.json")
    before = _tree(outside)
    runs.store.delete_run(run_id)
    assert not run.dir.exists() and _tree(outside) == before


def test_a_validator_crash_on_one_file_does_not_block_the_queue(runs: Runs, monkeypatch):
    """Intake catches anything a validator raises: that file is rejected, the next one runs."""
    store = runs.store
    bad = store.submit(cartpole(steps=100), "bad.yaml")
    good = store.submit(cartpole(steps=100, extra="name: good\n"), "good.yaml")
    real = store.read_queue_file

    def read(path, *args, **kwargs):
        if path.name == "bad.yaml":
            raise TypeError("unhashable type: 'list'")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store, "read_queue_file", read)
    Supervisor(store).intake()
    assert (store.rejected_dir / "bad.yaml").exists() and not bad.exists()
    assert not good.exists()
    assert [store.read_run(i).name for i in store.run_ids()] == ["good"]
    wait_for(lambda: True, 1)
