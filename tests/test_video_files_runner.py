"""``video`` requests through a real runner process (issue 18): a clip deleted with its sidecar
kept, a journey deleted with every companion, a link refused and left, a hand-written request
for another file refused, a deletion refused while a media job is recorded for the run (and
done once it ended), titles set, kept once when asked twice, and removed; and the CLI's
``video-rename`` and ``video-delete``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil

from runstore import RunRecord, RunState, RunStore
from runstore.models import MediaJob, RunEvent
from runstore.video_files import VideoChange, write_video_request
from runstore.videos import ClipMeta, JourneyMeta, clip_name, journey_file
from training.video import ClipWriter

from .conftest import Runs, accept, cartpole, wait_for
from .test_organise import cli

CLIP = clip_name(1_000)
LINKED = clip_name(2_000)
COMPANIONS = (".json", ".chapters.txt", ".description.txt", ".png")


def ended_run(store: RunStore, name: str) -> str:
    """A completed run folder (the runner leaves it alone but for its requests)."""
    run_id = accept(store, cartpole(10_000, 1_000) + f"name: {name}\n", f"{name}.yaml")
    record = store.read_run(run_id)
    assert record is not None
    record.state = RunState.COMPLETED
    record.record("completed", "made by the test")
    store.write_run(record)
    return run_id


def solid_clip(store: RunStore, run_id: str, step: int) -> None:
    """A tiny real clip and its sidecar, as the trainer writes them."""
    videos = store.paths(run_id).videos
    videos.mkdir(parents=True, exist_ok=True)
    writer = ClipWriter(videos / clip_name(step), 15, 8, overlay=None)
    for i in range(8):
        writer.add(np.full((210, 160, 3), 30 * i, dtype=np.uint8))
    writer.close(ClipMeta(step=step, run_name="test", env="CartPole-v1", algo="ppo"))


def journey(store: RunStore, run_id: str, label: str) -> None:
    """A journey's mp4 and its four companions (the contents do not matter to the runner)."""
    videos = store.paths(run_id).videos
    meta = JourneyMeta(
        label=label, seconds=20, frames=600, fps=30, width=1280, height=720, chapters=[]
    )
    for suffix in COMPANIONS:
        journey_file(videos, label, suffix).write_bytes(b"companion")
    journey_file(videos, label, ".json").write_text(json.dumps(meta.model_dump(mode="json")))
    journey_file(videos, label).write_bytes(b"\x00" * 4096)


def events(runs: Runs, run_id: str, kind: str, count: int = 1) -> list[RunEvent]:
    """The run's events of ``kind`` once there are ``count`` of them and no request waits."""

    def found() -> list[RunEvent] | None:
        if runs.store.pending_requests(run_id)[0]:
            return None
        hits = [e for e in runs.record(run_id).events if e.kind == kind]
        return hits if len(hits) >= count else None

    return wait_for(found, 60, f"{count} {kind} event(s) of {run_id}")  # type: ignore[return-value]


def settled(runs: Runs, run_id: str) -> RunRecord:
    """run.json once the runner has applied (and removed) every request of the run."""
    wait_for(lambda: not runs.store.pending_requests(run_id)[0], 60, "the requests applied")
    return runs.record(run_id)


def ask(store: RunStore, run_id: str, op: str, name: str, title: str = "") -> None:
    write_video_request(store, run_id, VideoChange(op, name, title), source="test")


def test_the_runner_deletes_videos_and_keeps_titles(runs: Runs, tmp_path: Path) -> None:
    store = runs.store
    run_id = ended_run(store, "videos")
    videos = store.paths(run_id).videos
    solid_clip(store, run_id, 1_000)
    journey(store, run_id, "20s")
    journey(store, run_id, "60s")  # another journey: untouched by the first one's deletion
    outside = tmp_path / "precious.mp4"
    outside.write_bytes(b"not the run's")
    os.symlink(outside, videos / LINKED)
    runs.runner()

    # Titles: set, the same again (no change, no event), removed.
    ask(store, run_id, "rename", CLIP, "First points")
    (renamed,) = events(runs, run_id, "video-renamed")
    assert renamed.detail == f"{CLIP}: titled 'First points' (by test)"
    assert runs.record(run_id).video_titles == {CLIP: "First points"}
    ask(store, run_id, "rename", CLIP, "First points")
    assert [e.kind for e in settled(runs, run_id).events].count("video-renamed") == 1
    ask(store, run_id, "rename", CLIP, "")
    removed = events(runs, run_id, "video-renamed", 2)[-1]
    assert removed.detail == f"{CLIP}: title removed (by test)"
    assert runs.record(run_id).video_titles == {}
    assert (videos / CLIP).exists()  # a title never renames the file

    # Delete a clip: the mp4 goes, its sidecar (what it scored) stays, and its title goes.
    ask(store, run_id, "rename", CLIP, "Gone soon")
    events(runs, run_id, "video-renamed", 3)
    size = (videos / CLIP).stat().st_size
    ask(store, run_id, "delete", CLIP)
    (deleted,) = events(runs, run_id, "video-deleted")
    assert deleted.detail.startswith(f"{CLIP}: freed ") and deleted.detail.endswith("(by test)")
    assert size > 0 and not (videos / CLIP).exists()
    assert (videos / CLIP).with_suffix(".json").exists()
    assert runs.record(run_id).video_titles == {}

    # Delete a journey: the mp4 and all four companions go; the other journey stays.
    ask(store, run_id, "delete", "journey-20s.mp4")
    journey_deleted = events(runs, run_id, "video-deleted", 2)[-1]
    assert "journey-20s.mp4: freed" in journey_deleted.detail
    assert "journey-20s.chapters.txt" in journey_deleted.detail
    for suffix in (".mp4", *COMPANIONS):
        assert not journey_file(videos, "20s", suffix).exists(), suffix
        assert journey_file(videos, "60s", suffix).exists(), suffix

    # A link with a clip's name is refused and left, and what it points at is untouched.
    ask(store, run_id, "delete", LINKED)
    (refused,) = events(runs, run_id, "video-refused")
    assert f"videos/{LINKED} is a symbolic link; left alone" in refused.detail
    assert (videos / LINKED).is_symlink() and outside.read_bytes() == b"not the run's"

    # A request file written by hand for another file: refused, nothing deleted.
    for _ in range(2):  # the same bad request twice is one event, counted
        store.write_request(run_id, "video", "hand", {"op": "delete", "name": "../run.json"})
    refused = events(runs, run_id, "video-refused", 2)
    assert "never a path" in refused[-1].detail and refused[-1].count == 2
    store.write_request(run_id, "video", "hand", {"op": "delete", "name": "config.yaml"})
    refused = events(runs, run_id, "video-refused", 3)
    assert "is not a video of a run" in refused[-1].detail
    assert store.paths(run_id).config.exists() and store.paths(run_id).run_json.exists()
    # A title for a video that is not there is refused too.
    ask(store, run_id, "rename", CLIP, "ghost")
    refused = events(runs, run_id, "video-refused", 4)
    assert f"there is no videos/{CLIP} to give a title to" in refused[-1].detail
    assert runs.record(run_id).state == RunState.COMPLETED  # none of this touched the run


def test_a_deletion_waits_for_the_media_job_and_the_cli_asks_for_both(runs: Runs) -> None:
    store = runs.store
    run_id = ended_run(store, "busy")
    solid_clip(store, run_id, 1_000)
    # A media job the runner adopts at start: a process of the test's own, in its own group.
    job = subprocess.Popen(["sleep", "600"], start_new_session=True)
    runs.extra_pgids.add(job.pid)
    record = runs.record(run_id)
    record.media_job = MediaJob(
        action="timelapse",
        pid=job.pid,
        pgid=job.pid,
        create_time=psutil.Process(job.pid).create_time(),
        started_at=time.time(),
    )
    store.write_run(record)
    runs.runner()

    out = cli(store, "video-delete", "busy", CLIP)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"delete of {CLIP} requested for {run_id}"
    (refused,) = events(runs, run_id, "video-refused")
    assert "a timelapse job is running" in refused.detail and "try again" in refused.detail
    assert (store.paths(run_id).videos / CLIP).exists()
    # A title may be set while the job runs: it only changes run.json.
    out = cli(store, "video-rename", "busy", CLIP, "While busy")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"title 'While busy' for {CLIP} requested for {run_id}"
    events(runs, run_id, "video-renamed")
    assert runs.record(run_id).video_titles == {CLIP: "While busy"}

    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    wait_for(lambda: runs.record(run_id).media_job is None, 60, "the job noted as ended")
    assert cli(store, "video-delete", "busy", CLIP).returncode == 0
    events(runs, run_id, "video-deleted")
    assert not (store.paths(run_id).videos / CLIP).exists()
    assert runs.record(run_id).video_titles == {}

    # Bad input is refused before a file is written, with what to do.
    bad = cli(store, "video-delete", "busy", "../run.json")
    assert bad.returncode == 2 and "never a path" in bad.stderr
    bad = cli(store, "video-rename", "busy", "timelapse.mp4", "a\u202eb")
    assert bad.returncode == 2 and "U+202E" in bad.stderr
    assert store.pending_requests(run_id)[0] == []
