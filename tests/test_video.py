"""Clips and time-lapses, for real: games rendered, encoded by the bundled ffmpeg, decoded back."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from stable_baselines3 import PPO

from runner import cli
from runstore import RunStore, checkpoints
from runstore.config import resolve
from runstore.videos import ClipMeta, clip_name, list_clips, parse_clip_name, timelapse_path
from training import timelapse as timelapse_module
from training.evaluation import clip_fps, make_eval_env, run_episodes
from training.timelapse import CARD_SECONDS, pick_milestones
from training.video import STRIP_HEIGHT, ClipWriter, Overlay

from .conftest import Runs, cartpole, wait_for


def decode(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio.get_reader(str(path), format="FFMPEG")
    meta = reader.get_meta_data()
    frames = list(reader.iter_data())  # len(reader) is inf for ffmpeg: no list(reader)
    reader.close()
    return meta, frames


def play(env_id: str, policy: str, frames: int, tmp_path: Path, overlay: bool = True):
    doc = {"algo": "ppo", "env": env_id, "n_timesteps": 1000, "seed": 3}
    if env_id.startswith("ALE/"):  # the ALE ends a game after 2,000 frames (500 steps)
        doc["hyperparams"] = {"env_kwargs": {"max_num_frames_per_episode": 2000}}
    config = resolve(doc)
    env = make_eval_env(config)
    model = PPO(policy, env, n_steps=64, batch_size=64, device="cpu", seed=3)
    path = tmp_path / "videos" / clip_name(1000)
    writer = ClipWriter(
        path, clip_fps(config, env), frames, Overlay("test-run", 1000) if overlay else None
    )
    returns, lengths = run_episodes(model, env, 1, True, writer, seed=3)
    clip = writer.close(ClipMeta(step=1000, episode_return=returns[0]))
    env.close()
    return clip, returns, lengths


def test_pong_clip_is_h264_full_colour_and_bounded(tmp_path: Path) -> None:
    clip, returns, lengths = play("ALE/Pong-v5", "CnnPolicy", 300, tmp_path)
    assert 300 < lengths[0] <= 500  # a whole (ALE-bounded) game; the clip stopped at 300
    meta, frames = decode(clip.path)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 15  # 60 Hz over frame skip 4: real time
    assert len(frames) == 300 == clip.meta.frames
    # The 160x210 screen scaled x2, with the overlay strip under it; colour, not 84x84 grey.
    assert frames[0].shape == (420 + STRIP_HEIGHT, 320, 3)
    game = frames[150][:420].astype(int)
    assert np.abs(game[..., 0] - game[..., 2]).mean() > 10
    strip = frames[150][420:]
    assert strip.max() > 200  # overlay text is drawn
    assert [c.step for c in list_clips(tmp_path / "videos")] == [1000]


def test_cartpole_clip_has_one_frame_per_step(tmp_path: Path) -> None:
    clip, returns, lengths = play("CartPole-v1", "MlpPolicy", 400, tmp_path, overlay=False)
    meta, frames = decode(clip.path)
    assert meta["codec"] == "h264"
    assert len(frames) == lengths[0] == returns[0]  # CartPole: +1 per step, frames < bound
    assert frames[0].shape == (400, 600, 3)
    assert clip.meta.width == 600 and clip.meta.height == 400


def _solid_clip(videos: Path, step: int, colour: tuple[int, int, int], n: int) -> None:
    writer = ClipWriter(videos / clip_name(step), 30, n, overlay=None)
    frame = np.zeros((320, 320, 3), dtype=np.uint8)
    frame[:] = colour
    for _ in range(n):
        writer.add(frame)
    writer.close(ClipMeta(step=step, eval_mean_return=float(step // 1000)))


def _colour(frame: np.ndarray) -> str:
    mean = frame.reshape(-1, 3).mean(axis=0)
    if mean.max() < 80:
        return "card"
    return "rgb"[int(np.argmax(mean))]


def test_timelapse_orders_clips_with_title_cards_and_bounds_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path / "runs")
    queued = store.submit(cartpole(), "demo.yaml")
    record = store.accept(queued, store.read_queue_file(queued))
    assert record is not None
    videos = store.paths(record.id).videos
    # Written out of order: the time-lapse follows the steps, not the files' age.
    _solid_clip(videos, 3000, (0, 0, 230), 60)
    _solid_clip(videos, 1000, (230, 0, 0), 60)
    _solid_clip(videos, 2000, (0, 230, 0), 60)
    monkeypatch.setattr(timelapse_module, "MAX_SECONDS", 5.0)  # python -m runner timelapse
    # runs this module in a process of its own (tests/test_runner_cli.py), out of reach here
    assert timelapse_module.main([str(store.paths(record.id).dir)]) == 0
    path = timelapse_path(videos)
    meta, frames = decode(path)
    assert meta["codec"] == "h264"
    assert len(frames) <= 5.0 * 30
    labels = [_colour(f) for f in frames]
    segments = [labels[0]] + [b for a, b in zip(labels, labels[1:], strict=False) if a != b]
    assert segments == ["card", "r", "card", "g", "card", "b"]
    cards = labels.count("card")
    assert cards == 3 * int(CARD_SECONDS * 30)
    # The title cards carry text (the step), not a blank screen.
    assert frames[0].max() > 200


def test_milestones_are_bounded_and_keep_first_and_last() -> None:
    from runstore.videos import Clip

    clips = [Clip(Path(f"step-{i:09d}.mp4"), i, "eval", None) for i in range(0, 10_000, 10)]
    picked = pick_milestones(clips, 40)
    assert len(picked) == 40
    assert picked[0].step == 0 and picked[-1].step == 9990
    assert [c.step for c in picked] == sorted(c.step for c in picked)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("step-000500000.mp4", (500_000, "eval")),
        ("step-000500000-record.mp4", (500_000, "record")),
        ("step-500000.mp4", None),
        ("timelapse.mp4", None),
        (".tmp-12-step-000500000.mp4", None),
        ("step-000500000.mp4.json", None),
    ],
)
def test_clip_names(name: str, parsed: tuple[int, str] | None) -> None:
    assert parse_clip_name(name) == parsed
    if parsed is not None:
        assert clip_name(*parsed) == name


def test_record_request_makes_a_clip_while_training_goes_on(runs: Runs) -> None:
    runs.runner()
    runs.submit(cartpole(steps=1_000_000, ckpt=500), "long.yaml")
    run_id = runs.only_run()
    paths = runs.store.paths(run_id)
    runs.wait_steps(run_id, 600, timeout=120)
    wait_for(lambda: checkpoints.latest_complete(paths.checkpoints)[0], 60, "a checkpoint")
    trainer_pid = runs.record(run_id).pid
    # A request with a checkpoint that is not a checkpoint name is refused, not run.
    runs.store.write_request(run_id, "record", "test", {"checkpoint": "../../etc/passwd"})
    root = str(runs.store.root)
    assert cli.main(["record", run_id, "--runs-dir", root, "--episodes", "2"]) == 0

    def job_pgid() -> int | None:
        job = runs.record(run_id).media_job
        return job.pgid if job else None

    runs.extra_pgids.add(wait_for(job_pgid, 60, "the record job to start"))  # type: ignore[arg-type]
    clips = wait_for(
        lambda: [c for c in list_clips(paths.videos) if c.kind == "record"], 120, "a clip"
    )
    steps_at_clip = runs.status(run_id).timesteps  # type: ignore[union-attr]
    clip = clips[0]  # type: ignore[index]
    assert clip.meta.kind == "record" and clip.meta.eval_episodes == 2
    assert clip.meta.checkpoint.startswith("step-")
    meta, frames = decode(clip.path)
    assert meta["codec"] == "h264" and len(frames) == clip.meta.frames > 0
    wait_for(lambda: runs.record(run_id).media_job is None, 60, "the job to be noted done")
    kinds = [e.kind for e in runs.record(run_id).events]
    assert "request-ignored" in kinds and "record-started" in kinds and "record-done" in kinds
    # The training was not disturbed: same process, still running, still counting steps.
    record = runs.record(run_id)
    assert record.state.value == "running" and record.pid == trainer_pid
    runs.wait_steps(run_id, steps_at_clip + 200, timeout=120)


def test_clip_tools_of_the_runner_and_dashboard_do_not_import_torch() -> None:
    """The runner's time-lapse command and the dashboard's clip pages stay light."""
    import subprocess
    import sys

    code = (
        "import sys, runner.cli, runner.media, training.timelapse, training.video, "
        "dashboard.clip_data, dashboard.components.clips; "
        "print('torch' in sys.modules or 'stable_baselines3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
