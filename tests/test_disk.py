"""Disk use and clean-up (issue 17, "Organising runs", Disk): sizes by kind measured without
following links, a clean-up plan that keeps what resume, best and other runs' init_from need,
and the runner as the one process that deletes (a ``cleanup`` request it checks itself).

The store's side runs on folders built through ``runstore`` (checkpoints committed and signed
by ``runstore.checkpoints``, clips by name); the runner's side through ``Supervisor.apply``
here and a real runner process with real CartPole training in ``test_disk_runner.py``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from runstore import checkpoints
from runstore.cleanup import (
    CHECKPOINT,
    CLIP,
    LEFTOVER,
    CleanupPlan,
    Deletion,
    carry_out,
    plan_cleanup,
)
from runstore.disk import run_size
from runstore.models import MediaJob, RunRecord, RunState
from runstore.store import Request, RunStore
from runstore.timeline import lifecycle_events
from runstore.videos import clip_name

from .conftest import cartpole


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def checkpoint(folder: Path, step: int, model_bytes: int = 1000) -> checkpoints.Checkpoint:
    """A signed checkpoint as the trainer commits one (a real zip, a manifest, a buffer)."""
    staging = checkpoints.staging_dir(folder, step)
    with zipfile.ZipFile(staging / checkpoints.MODEL, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data", "x" * model_bytes)
    (staging / checkpoints.REPLAY_BUFFER).write_bytes(b"b" * 500)
    return checkpoints.commit(staging, step)


def best(folder: Path, step: int) -> None:
    staging = checkpoints.best_staging(folder)
    with zipfile.ZipFile(staging, "w") as zf:
        zf.writestr("data", "best")
    checkpoints.commit_best(staging, step, 42.0)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    return store


def new_run(store: RunStore, extra: str = "", name: str = "a.yaml") -> RunRecord:
    path = store.submit(cartpole(steps=64, extra=extra), name)
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    record.state = RunState.STOPPED
    store.write_run(record)
    return record


def test_sizes_by_kind_count_a_link_as_itself_and_never_follow_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "checkpoints" / "step-000000000064" / "model.zip", 1000)
    write(run / "checkpoints" / "best.zip", 300)
    write(run / "videos" / "step-000000064.mp4", 2000)
    write(run / "videos" / "step-000000064.json", 100)
    write(run / "tb" / "train_1" / "events.out.tfevents.1", 400)
    write(run / "logs" / "trainer.log", 50)
    write(run / "run.json", 10)
    write(run / "requests" / "1-stop.json", 5)
    # Links: to a big file outside, to a big folder outside (never descended), to a folder
    # in place of tb/'s subfolder; and a hard link (the same bytes counted once).
    outside = write(tmp_path / "elsewhere" / "huge.bin", 1_000_000)
    (run / "videos" / "step-000000128.mp4").symlink_to(outside)
    (run / "checkpoints" / "step-000000000128").symlink_to(outside.parent, target_is_directory=True)
    os.link(run / "logs" / "trainer.log", run / "logs" / "trainer.log.1")
    link_sizes = {
        "videos": len(str(outside)),
        "checkpoints": len(str(outside.parent)),
    }

    size = run_size(run)

    assert size.by_category() == {
        "checkpoints": 1300 + link_sizes["checkpoints"],
        "videos": 2100 + link_sizes["videos"],
        "events": 400,
        "logs": 50,
        "other": 15,
    }
    assert size.total == sum(size.by_category().values()) and size.unreadable == 0
    assert run_size(tmp_path / "gone") == run_size(tmp_path / "gone")  # missing: zeros
    assert run_size(tmp_path / "gone").total == 0


def test_vanishing_files_are_skipped_and_unlistable_folders_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trainer pruning while the walk runs, and a folder this user may not list."""
    run = tmp_path / "run"
    write(run / "logs" / "trainer.log", 50)
    pruned = write(run / "checkpoints" / "step-000000000064" / "model.zip", 1000)
    write(run / "videos" / "step-000000064.mp4", 2000)
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "videos":
            raise PermissionError(13, "Permission denied", str(path))
        listing = real_scandir(path)
        if Path(path) == pruned.parent:  # listed, then deleted before its stat
            entries = list(listing)
            pruned.unlink()
            listing.close()
            return _Listing(entries)
        return listing

    monkeypatch.setattr(os, "scandir", scandir)
    size = run_size(run)
    assert (size.logs, size.checkpoints, size.videos, size.unreadable) == (50, 0, 0, 1)


class _Listing(list):
    """A finished ``os.scandir`` listing (a context manager, as the walk uses it)."""

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_plan_keeps_best_the_latest_complete_and_what_init_from_names(store: RunStore) -> None:
    record = new_run(store)
    paths = store.paths(record.id)
    old = [checkpoint(paths.checkpoints, step) for step in (64, 128, 192)]
    latest = checkpoint(paths.checkpoints, 256)
    broken = checkpoint(paths.checkpoints, 320)  # newer, but torn: resume skips it
    (broken.dir / checkpoints.MODEL).write_bytes(b"torn")
    best(paths.checkpoints, 128)
    write(paths.checkpoints / ".staging-step-000000000384" / "model.zip", 70)
    os.symlink("/", paths.checkpoints / ".trash-planted")  # a link: never in a plan
    write(paths.videos / clip_name(64), 2000)
    write(paths.videos / "step-000000064.json", 100)
    write(paths.videos / clip_name(128, "record"), 3000)
    write(paths.videos / "timelapse.mp4", 4000)
    os.symlink("/etc/hostname", paths.videos / clip_name(192))

    plan = plan_cleanup(paths.dir, checkpoints=True, clips=True, referenced={old[1].dir.name})

    by_kind = {
        kind: sorted(d.name for d in plan.deletions if d.kind == kind)
        for kind in (CHECKPOINT, LEFTOVER, CLIP)
    }
    assert by_kind == {
        CHECKPOINT: sorted(f"checkpoints/{c.dir.name}" for c in (old[0], old[2], broken)),
        LEFTOVER: ["checkpoints/.staging-step-000000000384"],
        CLIP: [
            "videos/step-000000064.mp4",
            "videos/step-000000128-record.mp4",
            "videos/timelapse.mp4",
        ],
    }
    assert plan.frees == sum(d.size for d in plan.deletions)
    assert sum(d.size for d in plan.deletions if d.kind == CLIP) == 9000
    kept = " ".join(plan.kept)
    assert latest.dir.name in kept and "best.zip" in kept and old[1].dir.name in kept
    assert "2 checkpoints" not in plan.summary() and "3 checkpoints" in plan.summary()
    # Only what was asked for.
    assert {d.kind for d in plan_cleanup(paths.dir, checkpoints=False, clips=True).deletions} == {
        CLIP
    }
    assert plan_cleanup(paths.dir, checkpoints=False, clips=False).deletions == ()

    freed, problems = carry_out(plan)

    assert (freed, problems) == (plan.frees, [])
    assert [c.dir.name for c in checkpoints.list_checkpoints(paths.checkpoints)] == [
        latest.dir.name,
        old[1].dir.name,
    ]
    assert checkpoints.latest_complete(paths.checkpoints)[0] == latest  # resume is unchanged
    assert checkpoints.run_trust(paths.dir).trusted  # every manifest left is still signed
    assert checkpoints.resolve_model(paths.checkpoints, checkpoints.BEST)[1] == 128
    assert checkpoints.resolve_model(paths.checkpoints, None)[1] == 256
    assert sorted(p.name for p in paths.videos.iterdir()) == [
        "step-000000064.json",  # the sidecar stays
        clip_name(192),  # the link: neither followed nor removed
    ]
    assert (paths.checkpoints / ".trash-planted").is_symlink()
    assert Path("/etc/hostname").exists()
    # Planned twice (a second request): the second finds nothing more to delete.
    again = plan_cleanup(paths.dir, checkpoints=True, clips=True, referenced={old[1].dir.name})
    assert again.deletions == () and carry_out(again) == (0, [])


def test_carry_out_leaves_a_path_that_became_a_link(store: RunStore, tmp_path: Path) -> None:
    record = new_run(store)
    paths = store.paths(record.id)
    clip = write(paths.videos / clip_name(64), 2000)
    plan = plan_cleanup(paths.dir, checkpoints=False, clips=True)
    victim = write(tmp_path / "victim.mp4", 10)
    clip.unlink()
    clip.symlink_to(victim)  # swapped between the plan and the act
    freed, problems = carry_out(plan)
    assert freed == 0 and "left alone" in problems[0]
    assert victim.exists() and clip.is_symlink()


def test_folders_linked_out_of_the_run_are_never_planned_or_deleted_through(
    store: RunStore, tmp_path: Path
) -> None:
    record = new_run(store)
    paths = store.paths(record.id)
    outside = tmp_path / "outside"
    for step in (64, 128):
        checkpoint(outside / "checkpoints", step)
    write(outside / "videos" / clip_name(64), 100)
    for name in ("checkpoints", "videos"):
        getattr(paths, name).rmdir()
        getattr(paths, name).symlink_to(outside / name, target_is_directory=True)
    plan = plan_cleanup(paths.dir, checkpoints=True, clips=True)
    assert plan.deletions == ()
    # A plan made before the swap: its folder is a link now, so nothing goes.
    doomed = checkpoints.list_checkpoints(outside / "checkpoints")[-1]
    stale = CleanupPlan(record.id, (Deletion(paths.checkpoints / doomed.dir.name, CHECKPOINT, 1),))
    freed, problems = carry_out(stale)
    assert freed == 0 and "no longer a plain folder" in problems[0]
    assert len(checkpoints.list_checkpoints(outside / "checkpoints")) == 2
    assert (outside / "videos" / clip_name(64)).exists()


def apply(store: RunStore, record: RunRecord, params: dict) -> RunRecord:
    """A cleanup request applied by the runner's own request handling (no process needed)."""
    from runner.supervisor import Supervisor

    request = Request(path=Path("x"), action="cleanup", at=0.0, source="dashboard", params=params)
    Supervisor(store).apply(record, request)
    done = store.read_run(record.id)
    assert done is not None
    return done


def test_runner_refuses_a_live_run_and_says_why(store: RunStore) -> None:
    record = new_run(store)
    paths = store.paths(record.id)
    for step in (64, 128):
        checkpoint(paths.checkpoints, step)
    for state in (RunState.RUNNING, RunState.PAUSED, RunState.STARTING, RunState.STOPPING):
        record.state = state
        done = apply(store, record, {"checkpoints": True, "clips": True})
        event = done.events[-1]
        assert event.kind == "cleanup-refused", event
        assert f"the run is {state.value}" in event.detail and "stop it first" in event.detail
    assert len(checkpoints.list_checkpoints(paths.checkpoints)) == 2  # nothing deleted


def test_runner_refuses_while_a_clip_job_runs_and_bad_params(store: RunStore) -> None:
    record = new_run(store)
    paths = store.paths(record.id)
    write(paths.videos / clip_name(64), 2000)
    record.media_job = MediaJob(action="record", pid=1, pgid=1, create_time=1.0, started_at=1.0)
    assert "clip job" in apply(store, record, {"clips": True}).events[-1].detail
    record.media_job = None
    for params in ({}, {"clips": "yes"}, {"checkpoints": False, "clips": False}):
        event = apply(store, record, params).events[-1]
        assert event.kind == "cleanup-refused" and "say what to delete" in event.detail
    assert (paths.videos / clip_name(64)).exists()


def test_runner_recomputes_the_plan_and_ignores_paths_in_the_request(store: RunStore) -> None:
    parent = new_run(store, name="parent.yaml")
    paths = store.paths(parent.id)
    kept_for_child = checkpoint(paths.checkpoints, 64)
    doomed = checkpoint(paths.checkpoints, 128)
    checkpoint(paths.checkpoints, 192)
    new_run(store, extra=f"init_from: {parent.id}/{kept_for_child.dir.name}\n", name="child.yaml")
    done = apply(
        store,
        parent,
        {"checkpoints": True, "paths": ["../../elsewhere", "config.yaml"]},  # never read
    )
    event = done.events[-1]
    assert event.kind == "cleaned-up", event
    assert "freed" in event.detail and "1 checkpoint:" in event.detail
    shown = lifecycle_events(done)[-1].text  # the Run page's timeline says what it freed
    assert shown.startswith("Cleaned up — cleanup requested (dashboard): freed ")
    assert "another run's init_from" in event.detail
    names = [c.dir.name for c in checkpoints.list_checkpoints(paths.checkpoints)]
    assert doomed.dir.name not in names and kept_for_child.dir.name in names
    assert paths.config.exists()


def test_cli_previews_with_dry_run_and_otherwise_asks_the_runner(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner import cli

    record = new_run(store)
    paths = store.paths(record.id)
    for step in (64, 128):
        checkpoint(paths.checkpoints, step)
    root = str(store.root)
    assert cli.main(["cleanup", record.id, "checkpoints", "--dry-run", "--runs-dir", root]) == 0
    out = capsys.readouterr().out
    assert "checkpoints/step-000000000064" in out and "would free" in out
    assert "keeps step-000000000128 (the latest complete checkpoint" in out
    assert store.pending_requests(record.id) == ([], [])
    assert len(checkpoints.list_checkpoints(paths.checkpoints)) == 2
    assert cli.main(["cleanup", record.id, "clips", "checkpoints", "--runs-dir", root]) == 0
    requests, _ = store.pending_requests(record.id)
    assert [(r.action, r.source, r.params) for r in requests] == [
        ("cleanup", "cli", {"checkpoints": True, "clips": True})
    ]
    with pytest.raises(SystemExit):  # nothing to delete named: a usage error
        cli.main(["cleanup", record.id, "--runs-dir", root])
