"""Journey videos from a real run: a short Pong run with checkpoints and filmed evaluations,
then journeys made from it and decoded back.

- 20 s through the runner (a ``journey`` request, as the Run page writes it): the video's
  length, size and codec; its chapter cuts found in the decoded frames (every chapter opens
  on a card of a colour no game frame has) against the chapter file and the sidecar; the
  thumbnail; the description's final score from status.json; the Run page showing it.
- 60 s as the runner starts it (``python -m journey``): longer than the run's footage, so it
  records more from checkpoints first; its peak memory, measured while it runs, stays far
  below what holding the frames would take.
- A cancelled journey stops, and leaves nothing under a journey's names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import psutil
import pytest

from journey.frames import CARD
from journey.make import make_journey
from journey.story import JourneyError
from journey.texts import timestamp
from runstore import RunState, RunStore
from runstore.units import format_score
from runstore.videos import ClipMeta, JourneyMeta, journey_file, list_clips, list_journeys
from tests.conftest import ROOT, Runs, accept, cartpole, dashboard_on, train, wait_for
from tests.test_organise import run_page

# 1,024 steps of Pong: evaluations (filmed, 100 frames = 6.7 s each) every 256 steps and
# checkpoints every 128, so half the checkpoints have no clip yet; the ALE ends each game
# after 2,000 frames, which keeps the evaluations short.
PONG = """\
algo: ppo
env: ALE/Pong-v5
n_timesteps: 1024
seed: 1
eval_every: 256
video_every: 256
eval_episodes: 1
checkpoint_every: 128
video_length: 100
hyperparams:
  n_envs: 2
  n_steps: 64
  batch_size: 64
  n_epochs: 1
  env_kwargs: {max_num_frames_per_episode: 2000}
"""


ENDS = ("journey-done", "journey-failed", "journey-ended")


@pytest.fixture(scope="module")
def pong(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    store = RunStore(tmp_path_factory.mktemp("journey") / "runs")
    store.ensure_layout()
    run_id = accept(store, PONG, "pong.yaml")
    train(store, [run_id])
    record = store.read_run(run_id)
    assert record is not None
    record.state = RunState.COMPLETED  # what the runner records once the trainer exits 0
    store.write_run(record)
    return store


def run_of(store: RunStore) -> str:
    (run_id,) = store.run_ids()
    return run_id


def decode(path: Path) -> tuple[dict, list[bool], int]:
    """The video's metadata, for each frame whether it is a chapter card, and the frame
    count; streamed, a frame at a time."""
    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    w, h = meta["size"]
    cards = []
    for raw in frames:
        small = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)[::8, ::8].astype(int)
        near = (np.abs(small - np.array(CARD)) <= 12).all(axis=2)
        cards.append(bool(near.mean() > 0.8))
    return meta, cards, len(cards)


def test_a_journey_made_by_the_runner_has_its_length_chapters_thumbnail_and_facts(
    pong: RunStore, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pong
    run_id = run_of(store)
    runs.store = store
    runner = runs.runner()
    store.write_request(run_id, "journey", params={"seconds": 20, "size": 720, "fps": 30})
    done = wait_for(
        lambda: next((e for e in runs.record(run_id).events if e.kind in ENDS), None),
        timeout=600,
        what="the journey job to end",
    )
    assert done.kind == "journey-done", (done, runner.output()[-2000:])
    (journey,) = list_journeys(store.paths(run_id).videos)
    assert journey.label == "20s" and journey.meta is not None
    meta, cards, count = decode(journey.path)
    assert meta["codec"] == "h264" and meta["size"] == (1280, 720)
    assert abs(count / 30 - 20) <= 0.05 * 20  # within 5% (it is exact: the plan's frames)
    assert count == journey.meta.frames
    # Every chapter after the intro opens on a card: the cuts seen in the frames are the
    # chapters' times in the sidecar and, as YouTube writes them, in the chapter file.
    cuts = [i for i in range(1, count) if cards[i] and not cards[i - 1]]
    chapters = journey.meta.chapters
    assert chapters[0].at == 0 and len(chapters) >= 3
    assert [round(c.at * 30) for c in chapters[1:]] == cuts
    lines = journey.companion(".chapters.txt").read_text().splitlines()
    assert lines == [f"{timestamp(c.at)} {c.title}" for c in chapters]
    thumbnail = cv2.imread(str(journey.companion(".png")))
    assert thumbnail is not None and thumbnail.shape == (720, 1280, 3)
    status = store.read_status(run_id)
    assert status is not None and status.last_eval_return is not None
    description = journey.companion(".description.txt").read_text()
    assert f"Final evaluation score: {format_score(status.last_eval_return)}" in description
    assert "0:00 Intro" in description and "ALE/Pong-v5" in description
    # The Run page's Journey tab shows it, and asks the runner for another (the runner is
    # stopped first, so the request stays to be read here).
    runner.kill()
    dashboard_on(store.root, monkeypatch)
    at = run_page(run_id)
    assert any(m.value.startswith("**Journey, 20s**") for m in at.markdown)
    assert any(c.value.strip() == "\n".join(lines) for c in at.code)
    at.button(key=f"journey_make_{run_id}").click().run()
    (request,) = store.pending_requests(run_id)[0]
    assert request.action == "journey"
    assert request.params == {"seconds": 600.0, "size": 1080, "fps": 30, "record": True}
    request.path.unlink()  # asked, not made: the next test's runner must not find it


def _tree_rss(proc: psutil.Process) -> int:
    """The journey process and its encoder and decoders (ffmpeg); a recording child
    (``training.record``, torch) is the record job's memory, not the composer's."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            if child.name().startswith("ffmpeg"):
                total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def test_a_journey_longer_than_the_footage_records_more_and_streams(pong: RunStore) -> None:
    store = pong
    run_id = run_of(store)
    videos = store.paths(run_id).videos
    before = {c.path.name for c in list_clips(videos)}
    cmd = [
        sys.executable,
        "-m",
        "journey",
        str(store.paths(run_id).dir),
        "--length",
        "60s",
        "--size",
        "720",
    ]
    log = store.root.parent / "journey-60s.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    watched = psutil.Process(proc.pid)
    peak = 0
    try:
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(watched))
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    meta = JourneyMeta.model_validate_json(journey_file(videos, "60s", ".json").read_text())
    assert meta.frames == 60 * 30
    recorded = {c.path.name for c in list_clips(videos)} - before
    assert meta.clips_recorded >= 1 and len(recorded) == meta.clips_recorded
    assert all(name.endswith("-record.mp4") for name in recorded)
    # 1,800 frames of 1280x720 would be 5 GB held at once; streaming keeps the composer
    # (with its decoders and encoder) to a few hundred MB, whatever the length.
    assert peak < 1024 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    _, _, count = decode(journey_file(videos, "60s"))
    assert count == 1800


def test_cancel_stops_the_journey_and_leaves_nothing(pong: RunStore, runs: Runs) -> None:
    store = pong
    run_id = run_of(store)
    videos = store.paths(run_id).videos
    runs.store = store
    runs.runner()
    params = {"seconds": 1800, "size": 1080, "fps": 60, "record": False}
    store.write_request(run_id, "journey", params=params)
    progress = journey_file(videos, "30m", ".progress.json")
    wait_for(progress.exists, timeout=300, what="the journey to start composing")
    job = runs.record(run_id).media_job
    assert job is not None and job.action == "journey"
    store.write_request(run_id, "cancel-media")
    ended = wait_for(
        lambda: next(
            (e for e in runs.record(run_id).events if e.kind == "journey-cancelled"), None
        ),
        timeout=120,
        what="the journey to be cancelled",
    )
    assert ended is not None and runs.record(run_id).media_job is None
    assert (
        not psutil.pid_exists(job.pid) or psutil.Process(job.pid).create_time() != job.create_time
    )
    left = sorted(p.name for p in videos.iterdir() if "30m" in p.name or p.name.startswith(".tmp"))
    assert left == []


@pytest.mark.parametrize("content", [b"", b"not a video at all\n" * 100])
def test_a_clip_that_cannot_be_decoded_is_named_with_the_fix(tmp_path: Path, content: bytes):
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    run_id = accept(store, cartpole(steps=2000), "c.yaml")
    videos = store.paths(run_id).videos
    videos.mkdir(parents=True, exist_ok=True)
    for step, frames in ((1000, 0), (2000, 60)):  # one sidecar says nothing of its length
        (videos / f"step-{step:09d}.mp4").write_bytes(content)
        meta = ClipMeta(step=step, eval_mean_return=float(step // 100), frames=frames, fps=30)
        (videos / f"step-{step:09d}.json").write_text(meta.model_dump_json())
    refused = r"videos/step-00000\d000\.mp4 cannot be decoded .*delete"
    with pytest.raises(JourneyError, match=refused):
        make_journey(store, run_id, 20, height=720, record_more=False)
    assert sorted(p.name for p in videos.iterdir() if not p.name.startswith("step-")) == []
