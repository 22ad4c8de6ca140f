"""Checkpoint sets are complete or ignored; resume picks the newest complete one."""

from __future__ import annotations

import zipfile
from pathlib import Path

from runstore import checkpoints


def make(folder: Path, step: int, *, buffer: bool = False) -> checkpoints.Checkpoint:
    staging = checkpoints.staging_dir(folder, step)
    with zipfile.ZipFile(staging / checkpoints.MODEL, "w") as zf:
        zf.writestr("data", "x" * 1000)
    if buffer:
        (staging / checkpoints.REPLAY_BUFFER).write_bytes(b"b" * 500)
    return checkpoints.commit(staging, step)


def test_newest_complete_checkpoint_wins(tmp_path: Path):
    for step in (100, 200, 300):
        make(tmp_path, step)
    ckpt, skipped = checkpoints.latest_complete(tmp_path)
    assert ckpt.step == 300 and skipped == []


def test_truncated_zip_is_skipped(tmp_path: Path):
    make(tmp_path, 100)
    newest = make(tmp_path, 200)
    data = newest.model.read_bytes()
    newest.model.write_bytes(data[: len(data) // 2])
    ckpt, skipped = checkpoints.latest_complete(tmp_path)
    assert ckpt.step == 100 and [s.step for s in skipped] == [200]


def test_model_without_its_replay_buffer_is_not_a_checkpoint(tmp_path: Path):
    """A crash after the model but before the buffer must not pair model@N with buffer@N-k."""
    make(tmp_path, 100, buffer=True)
    newest = make(tmp_path, 200, buffer=True)
    newest.replay_buffer.unlink()
    ckpt, _ = checkpoints.latest_complete(tmp_path)
    assert ckpt.step == 100 and ckpt.replay_buffer is not None


def test_staging_folders_are_never_checkpoints(tmp_path: Path):
    make(tmp_path, 100)
    staging = checkpoints.staging_dir(tmp_path, 200)
    (staging / checkpoints.MODEL).write_bytes(b"partial")
    assert checkpoints.latest_complete(tmp_path)[0].step == 100


def test_prune_keeps_the_newest(tmp_path: Path):
    for step in (100, 200, 300, 400):
        make(tmp_path, step)
    checkpoints.staging_dir(tmp_path, 500)
    checkpoints.prune(tmp_path, keep=2)
    assert [c.step for c in checkpoints.list_checkpoints(tmp_path)] == [400, 300]
    assert not list(tmp_path.glob(".staging-*"))


def test_saving_a_step_again_never_leaves_a_half_deleted_checkpoint(tmp_path: Path):
    """The old folder is renamed aside before the new one takes its name, so a kill at any
    point leaves either the old or the new checkpoint complete under that name, or none."""
    make(tmp_path, 100)
    again = make(tmp_path, 100, buffer=True)
    assert checkpoints.is_complete(again.dir) and again.replay_buffer is not None
    assert [c.step for c in checkpoints.list_checkpoints(tmp_path)] == [100]
    assert not list(tmp_path.glob(".trash-*"))
