"""The run store: atomic documents, safe names, queue intake and request files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runstore import RunRecord, RunStore, UnsafePathError
from runstore.atomic import atomic_write_json, read_json, remove_stale_temp_files
from runstore.config import parse_config
from runstore.paths import is_run_id, new_run_id

from .conftest import cartpole


def test_readers_never_see_half_a_document(tmp_path: Path):
    """A writer replaces a 200 kB document 300 times while we read it as fast as we can."""
    target = tmp_path / "status.json"
    atomic_write_json(target, {"n": -1, "pad": "x" * 200_000})
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                from pathlib import Path
                from runstore.atomic import atomic_write_json
                for n in range(300):
                    atomic_write_json(Path({str(target)!r}), {{"n": n, "pad": "x" * 200_000}})
                """
            ),
        ]
    )
    seen = set()
    while writer.poll() is None:
        doc = json.loads(target.read_text())  # raises on a torn document
        seen.add(doc["n"])
    assert writer.wait() == 0
    assert json.loads(target.read_text())["n"] == 299
    assert len(seen) > 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_killed_writer_leaves_old_document_and_a_temp_file_we_clean(tmp_path: Path):
    target = tmp_path / "run.json"
    atomic_write_json(target, {"state": "running"})
    code = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        import runstore.atomic as atomic
        os.replace = lambda *a: os._exit(9)  # die between the temp write and the rename
        atomic.atomic_write_json(Path({str(target)!r}), {{"state": "stopped"}})
        """
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert read_json(target) == {"state": "running"}
    assert remove_stale_temp_files(tmp_path) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_json_treats_garbage_as_unknown(tmp_path: Path):
    path = tmp_path / "status.json"
    path.write_text('{"timesteps": 12')
    assert read_json(path) is None
    assert read_json(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "..",
        "a/b",
        "/etc",
        "20261124-031205-pong/../../x",
        "x" * 300,
        "a\x00b",
        "",
        "20261124-031205-Pong-ppo-3f9a",
        "CON",
    ],
)
def test_run_ids_that_could_escape_are_refused(tmp_path: Path, bad: str):
    store = RunStore(tmp_path)
    with pytest.raises(UnsafePathError):
        store.paths(bad)


def test_symlinked_run_folder_is_refused(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text("{}")
    run_id = new_run_id("evil")
    (store.root / run_id).symlink_to(outside)
    assert run_id not in store.run_ids()
    with pytest.raises(UnsafePathError):
        store.paths(run_id)


def test_new_run_ids_are_safe_sortable_and_unique():
    ids = {new_run_id("Pong PPO / ../../etc") for _ in range(200)}
    assert len(ids) == 200
    assert all(is_run_id(i) for i in ids)
    assert all("/" not in i and ".." not in i for i in ids)


def test_accept_moves_the_queue_file_into_a_complete_run(tmp_path: Path):
    store = RunStore(tmp_path)
    store.ensure_layout()
    path = store.submit(cartpole(steps=500), "first.yaml")
    config = store.read_queue_file(path)
    record = store.accept(path, config)
    assert record is not None and not path.exists()
    run = store.paths(record.id)
    assert run.source.read_text() == cartpole(steps=500)
    assert store.read_config(record.id) == config
    assert store.read_run(record.id).state.value == "queued"
    assert all(p.is_dir() for p in (run.requests, run.tb, run.checkpoints, run.logs))


def test_a_half_made_run_folder_goes_back_to_the_queue(tmp_path: Path):
    """What a runner killed in the middle of ``accept`` leaves: no queue file may be lost."""
    store = RunStore(tmp_path)
    store.ensure_layout()
    staging = tmp_path / ".partial-20261125-000000-x-0000"
    staging.mkdir()
    (staging / "source.yaml").write_text(cartpole(steps=500))
    restored = store.recover_partial()
    assert len(restored) == 1 and restored[0].read_text() == cartpole(steps=500)
    assert restored[0] in store.queue_files()
    assert not staging.exists()


def test_reject_writes_the_reason_beside_the_file(tmp_path: Path):
    store = RunStore(tmp_path)
    store.ensure_layout()
    path = store.submit("algo: ppo\n", "bad.yaml")
    target = store.reject(path, ["env: required but missing"])
    assert target == store.rejected_dir / "bad.yaml"
    assert "env: required but missing" in (store.rejected_dir / "bad.yaml.error.txt").read_text()
    # A second file with the same name does not overwrite the first rejection.
    second = store.reject(store.submit("x", "bad.yaml"), ["other"])
    assert second != target and target.exists()


def test_queue_skips_files_still_being_written(tmp_path: Path):
    store = RunStore(tmp_path)
    store.ensure_layout()
    for name in (".hidden.yaml", "copy.yaml.tmp", "edit.yaml.swp", "x.yaml.part", "real.yaml"):
        (store.queue_dir / name).write_text("algo: ppo\n")
    assert [p.name for p in store.queue_files()] == ["real.yaml"]


def test_requests_are_validated(tmp_path: Path):
    store = RunStore(tmp_path)
    store.ensure_layout()
    record = store.accept(
        store.submit(cartpole(steps=500), "r.yaml"), parse_config(cartpole(steps=500).encode())
    )
    good = store.write_request(record.id, "pause")
    requests = store.paths(record.id).requests
    (requests / "123-delete.json").write_text(json.dumps({"action": "rm -rf /"}))
    (requests / "124-stop.json").write_text("not json")
    valid, invalid = store.pending_requests(record.id)
    assert [r.path for r in valid] == [good] and valid[0].action == "pause"
    assert sorted(p.name for p in invalid) == ["123-delete.json", "124-stop.json"]
    with pytest.raises(ValueError):
        store.write_request(record.id, "format-disk")
    with pytest.raises(UnsafePathError):
        store.write_request("../" + record.id, "stop")


def test_run_record_ignores_unknown_fields():
    record = RunRecord.model_validate({"id": "x", "name": "y", "state": "running", "new": 1})
    assert record.state.value == "running"
    assert os.path.sep not in record.id


def test_every_typed_document_is_read_one_way(tmp_path: Path):
    """run.json, status.json, runner.json and tensorboard.json go through one reader: a link,
    a value that is not an object, or an invalid document is "unknown" (None), never an error."""
    from runstore.models import RunnerInfo, TrainStatus
    from runstore.store import read_document

    store = RunStore(tmp_path)
    info = {"pid": 1, "host": "h", "started": 1.0, "heartbeat_at": 2.0, "version": "v"}
    real = tmp_path / "real.json"
    atomic_write_json(real, info)
    atomic_write_json(store.runner_json, info)
    assert store.read_runner_info() == RunnerInfo.model_validate(info)
    store.runner_json.unlink()
    store.runner_json.symlink_to(real)  # planted: refused like every other store read
    assert store.read_runner_info() is None
    for text in ("[1, 2]", "{}", '{"pid": "x"}', "not json"):
        (tmp_path / "doc.json").write_text(text)
        assert read_document(tmp_path / "doc.json", RunnerInfo) is None
    (tmp_path / "doc.json").write_text("{}")
    assert read_document(tmp_path / "doc.json", TrainStatus) == TrainStatus()
