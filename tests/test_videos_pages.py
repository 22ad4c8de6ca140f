"""The Videos and Leaderboard pages and the Run page's clips section, under AppTest, on a runs
folder whose clips are real mp4 files written by the trainer's own clip writer."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from runstore import RunStore, TrainStatus, write_status_file
from runstore.checkpoints import BEST_META, BEST_MODEL
from runstore.videos import ClipMeta, clip_name
from training.video import ClipWriter

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def make_run(rs: RunStore, env: str, name: str, best: float, clips: dict[int, float]) -> str:
    text = f"algo: ppo\nenv: {env}\nn_timesteps: 1000000\nseed: 1\nname: {name}\n"
    path = rs.submit(text, f"{name}.yaml")
    record = rs.accept(path, rs.read_queue_file(path))
    assert record is not None
    paths = rs.paths(record.id)
    for step, score in clips.items():
        writer = ClipWriter(paths.videos / clip_name(step), 15, 8, overlay=None)
        for i in range(8):
            writer.add(np.full((210, 160, 3), 20 * i, dtype=np.uint8))
        writer.close(
            ClipMeta(step=step, run_name=name, env=env, algo="ppo", eval_mean_return=score)
        )
    write_status_file(
        paths.status_json,
        TrainStatus(
            phase="training",
            timesteps=max(clips) if clips else 0,
            total_timesteps=1_000_000,
            best_eval_return=best,
            best_eval_step=max(clips, key=clips.__getitem__) if clips else None,
        ),
    )
    (paths.checkpoints / BEST_MODEL).write_bytes(b"PK\x05\x06" + bytes(18))  # empty zip
    (paths.checkpoints / BEST_META).write_text(f'{{"step": 1, "eval_return": {best}}}')
    return record.id


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    root = tmp_path / "runs"
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    rs = RunStore(root)
    rs.ensure_layout()
    return {
        "pong-a": make_run(rs, "ALE/Pong-v5", "pong-a", -5.0, {250_000: -12.0, 500_000: -5.0}),
        "pong-b": make_run(rs, "ALE/Pong-v5", "pong-b", 14.0, {250_000: 3.0, 500_000: 14.0}),
        "cart": make_run(rs, "CartPole-v1", "cart", 500.0, {1_000: 500.0}),
    }


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_gallery_lists_every_clip_newest_first_and_filters(folder: dict[str, str]) -> None:
    at = open_page("app_pages/videos.py")
    videos = at.get("video")
    assert len(videos) == 5
    captions = [c.value for c in at.caption]
    assert "5 clip(s), newest first" in captions
    # The last run written comes first; each clip says its run, step and evaluation return.
    clip_captions = [c for c in captions if " · step " in c]
    assert clip_captions[0] == "cart · step 1000 · evaluation return 500"
    assert "pong-b · step 500 k · evaluation return 14" in captions
    # Downloads come from the clip server too (an attachment, any size), not from memory.
    downloads = at.get("link_button")
    assert len(downloads) == 5 and not at.get("download_button")
    # Each clip is a signed URL of the clip server (streamed from disk), not bytes in memory.
    from dashboard import clip_data

    server = clip_data.clip_server()
    assert not isinstance(server, str), server
    urls = [v.proto.url for v in videos]
    prefix = f"http://localhost:{server.port}/clip/"
    assert all(u.startswith(prefix) and "&sig=" in u for u in urls), urls
    assert sorted(b.proto.url for b in downloads) == sorted(f"{u}&dl=1" for u in urls)
    with urllib.request.urlopen(urls[0].replace("localhost", "127.0.0.1"), timeout=10) as resp:
        assert resp.status == 200 and resp.read(8)[4:] == b"ftyp"  # an mp4 from disk
    at.multiselect(key="videos_games").set_value(["Pong"]).run()
    assert len(at.get("video")) == 4
    at.multiselect(key="videos_runs").set_value(["pong-a"]).run()
    assert len(at.get("video")) == 2
    clip_captions = [c.value for c in at.caption if " · step " in c.value]
    assert len(clip_captions) == 2 and all(c.startswith("pong-a") for c in clip_captions)


def test_leaderboard_shows_the_best_score_per_game_with_its_clip(folder: dict[str, str]) -> None:
    at = open_page("app_pages/leaderboard.py")
    table = at.dataframe[0].value
    assert list(table["Game"]) == ["CartPole", "Pong"]
    assert list(table["Best eval return"]) == [500.0, 14.0]
    assert list(table["Run"]) == ["cart", "pong-b"]
    assert list(table["Algorithm"]) == ["PPO", "PPO"]
    assert list(table["Run id"]) == [folder["cart"], folder["pong-b"]]
    videos = at.get("video")
    assert len(videos) == 2
    from dashboard import clip_data

    clips = {row.game: row.clip for row in clip_data.leaderboard()}
    assert clips["Pong"] is not None and clips["Pong"].name == clip_name(500_000)
    assert clips["Pong"].parent.parent.name == folder["pong-b"]  # the clip of that score


def test_clips_play_from_memory_and_say_so_when_the_clip_server_cannot_start(
    folder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:  # the configured port is taken: the server cannot bind it
        busy.bind(("", 0))
        busy.listen()
        monkeypatch.setenv("RETRO_ML_CLIP_PORT", str(busy.getsockname()[1]))
        at = open_page("app_pages/videos.py")
    videos = at.get("video")
    assert len(videos) == 5
    assert all("/media/" in v.proto.url and "/clip/" not in v.proto.url for v in videos)
    said = [c.value for c in at.caption if c.value.startswith("Played from memory")]
    assert len(said) == 5 and "up to 256 MiB" in said[0], said
    assert len(at.get("download_button")) == 5 and not at.get("link_button")  # capped bytes
    assert "the clip server did not start (port " in said[0] and "in use" in said[0], said


RUN_CLIPS = """
import os
from dashboard.components.clips import render_run_clips
render_run_clips(os.environ["CLIPS_RUN"])
"""


def test_run_clips_section_steps_through_clips_and_asks_for_more(
    folder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = folder["pong-b"]
    monkeypatch.setenv("CLIPS_RUN", run_id)
    at = AppTest.from_string(RUN_CLIPS, default_timeout=60).run()
    assert not at.exception, at.exception
    slider = at.select_slider(key=f"clips_step_{run_id}")
    assert at.caption[0].value == "pong-b · step 500 k · evaluation return 14"
    slider.set_value(0).run()
    assert at.caption[0].value == "pong-b · step 250 k · evaluation return 3"
    assert [b.proto.label for b in at.get("link_button")] == ["Download this clip"]
    assert [b.label for b in at.get("download_button")] == ["Download the best model (zip)"]
    at.button(key=f"timelapse_{run_id}").click().run()
    at.selectbox(key=f"record_ckpt_{run_id}").set_value("best")
    at.number_input(key=f"record_n_{run_id}").set_value(3)
    at.button(key=f"record_{run_id}").click().run()
    assert not at.exception, at.exception
    rs = RunStore(Path(folder_root()))
    requests, invalid = rs.pending_requests(run_id)
    assert not invalid
    assert [(r.action, r.params) for r in requests] == [
        ("timelapse", {}),
        ("record", {"checkpoint": "best", "episodes": 3}),
    ]
    # "Continue from here" queues a new run that starts from these weights.
    at.button(key=f"continue_{run_id}").click().run()
    assert not at.exception, at.exception
    (queued,) = rs.queue_files()
    config = rs.read_queue_file(queued)
    assert config.init_from == f"{run_id}/best" and config.env == "ALE/Pong-v5"


def folder_root() -> str:
    import os

    return os.environ["RETRO_ML_RUNS_DIR"]


CHROMIUM = Path("/usr/bin/chromium")


def test_browser_plays_a_clip(folder: dict[str, str], tmp_path: Path) -> None:
    """`streamlit run` on a free port (no runner: RETRO_ML_NO_AUTOSTART), Debian's Chromium
    through Playwright: the Videos page's <video> elements load the H.264 clips and report a
    duration."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import ROOT, wait_for

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: proc.poll() is not None or healthy(), 90, "streamlit to serve")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(f"{url}/videos", timeout=90_000)
            page.wait_for_selector("video", timeout=90_000)
            page.wait_for_function(
                "() => { const v = document.querySelector('video');"
                " return v && v.readyState >= 1 && v.duration > 0; }",
                timeout=60_000,
            )
            durations = page.eval_on_selector_all("video", "vs => vs.map(v => v.duration)")
            sources = page.eval_on_selector_all("video", "vs => vs.map(v => v.currentSrc)")
            browser.close()
        assert len(durations) == 5
        assert all(abs(d - 8 / 15) < 0.1 for d in durations if d == d), durations  # 8 frames
        # Streamed by the clip server (another port, the host the browser used), signed.
        assert all(
            s.startswith("http://127.0.0.1:")
            and f":{port}/" not in s
            and "/clip/" in s
            and "&sig=" in s
            for s in sources
        ), sources
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


# -- journeys, sort, sizes, rename and delete (issue 18) ---------------------------------------

CHAPTERS = "0:00 Intro\n0:05 First points\n0:12 The final agent\n"


def add_journey(rs: RunStore, run_id: str, label: str = "20s") -> Path:
    """A journey of the run as the journey job leaves it: sidecar, chapters, description and
    thumbnail first, then the mp4 (a copy of one of the run's real clips)."""
    import json
    import shutil
    import time

    from PIL import Image

    from runstore.videos import JourneyChapter, JourneyMeta, journey_file

    videos = rs.paths(run_id).videos
    meta = JourneyMeta(
        label=label,
        seconds=20,
        frames=600,
        fps=30,
        width=1280,
        height=720,
        chapters=[
            JourneyChapter(at=0, title="Intro"),
            JourneyChapter(at=5, title="First points", step=250_000),
            JourneyChapter(at=12, title="The final agent", step=500_000),
        ],
        run_name="pong-b",
        env="ALE/Pong-v5",
        algo="ppo",
        created_at=time.time(),
    )
    journey_file(videos, label, ".json").write_text(json.dumps(meta.model_dump(mode="json")))
    journey_file(videos, label, ".chapters.txt").write_text(CHAPTERS)
    journey_file(videos, label, ".description.txt").write_text("Pong, learned.\n" + CHAPTERS)
    Image.new("RGB", (64, 36), (200, 30, 30)).save(journey_file(videos, label, ".png"), "PNG")
    mp4 = journey_file(videos, label)
    shutil.copyfile(videos / clip_name(500_000), mp4)
    return mp4


def clip_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if " · step " in c.value]


def test_journeys_are_listed_with_chapters_and_clips_sort_and_sizes_show(
    folder: dict[str, str],
) -> None:
    from runstore.disk import tree_bytes

    rs = RunStore(Path(folder_root()))
    run_id = folder["pong-b"]
    add_journey(rs, run_id)
    at = open_page("app_pages/videos.py")
    assert [s.value for s in at.subheader] == ["Journeys", "Clips", "Video sizes"]
    assert any(m.value == "**Journey, 20s** · pong\\-b · Pong" for m in at.markdown)
    journey_caption = [c.value for c in at.caption if c.value.startswith("Journey · ")]
    assert len(journey_caption) == 1
    assert journey_caption[0].startswith("Journey · 20 s · 1280x720 · 30 fps · "), journey_caption
    assert "Chapters" in [e.label for e in at.expander]
    assert any(c.value.strip() == CHAPTERS.strip() for c in at.code)  # the .chapters.txt text
    assert len(at.get("image")) == 1  # the thumbnail, read through runstore.safeio
    urls = [v.proto.url for v in at.get("video")]
    assert len(urls) == 6 and sum(f"/clip/{run_id}/journey-20s.mp4?" in u for u in urls) == 1
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download the description", "Download the chapters"]

    # Sort: newest first by default, then as chosen; the caption says which.
    assert "5 clip(s), newest first" in [c.value for c in at.caption]
    assert clip_captions(at)[0] == "cart · step 1000 · evaluation return 500"
    at.selectbox(key="videos_sort").set_value("oldest first").run()
    assert "5 clip(s), oldest first" in [c.value for c in at.caption]
    assert clip_captions(at)[0] == "pong-a · step 250 k · evaluation return -12"
    at.selectbox(key="videos_sort").set_value("highest score").run()
    assert clip_captions(at)[:2] == [
        "cart · step 1000 · evaluation return 500",
        "pong-b · step 500 k · evaluation return 14",
    ]
    at.selectbox(key="videos_sort").set_value("run name").run()
    assert [c.split(" · ")[0] for c in clip_captions(at)] == [
        "cart",
        "pong-a",
        "pong-a",
        "pong-b",
        "pong-b",
    ]

    # Sizes: one row per run, largest first, the bytes of its videos/ folder.
    table = at.dataframe[0].value
    assert list(table["run"])[0] == "pong-b"
    assert dict(zip(table["run"], table["clips"], strict=True)) == {
        "pong-a": 2,
        "pong-b": 2,
        "cart": 1,
    }
    assert dict(zip(table["run"], table["journeys"], strict=True)) == {
        "pong-a": 0,
        "pong-b": 1,
        "cart": 0,
    }
    sizes = {name: tree_bytes(rs.paths(i).videos) for name, i in folder.items()}
    assert dict(zip(table["run"], table["bytes"], strict=True)) == sizes
    assert list(table["bytes"]) == sorted(table["bytes"], reverse=True)

    # The run and game filters apply to journeys too.
    at.multiselect(key="videos_runs").set_value(["pong-a"]).run()
    assert "Journeys" not in [s.value for s in at.subheader]
    assert len(at.get("video")) == 2
    at.multiselect(key="videos_runs").set_value([]).run()
    at.multiselect(key="videos_games").set_value(["CartPole"]).run()
    assert "Journeys" not in [s.value for s in at.subheader]
    at.multiselect(key="videos_games").set_value(["Pong"]).run()
    assert "Journeys" in [s.value for s in at.subheader]
    assert not at.exception, [e.message for e in at.exception]


def test_delete_asks_for_a_tick_and_rename_writes_one_request(folder: dict[str, str]) -> None:
    rs = RunStore(Path(folder_root()))
    run_id = folder["pong-b"]
    add_journey(rs, run_id)
    at = open_page("app_pages/videos.py")
    name = "journey-20s.mp4"
    at.button(key=f"video_delete_{run_id}_{name}").click().run()
    assert any("Really delete" in w.value for w in at.warning)
    assert rs.pending_requests(run_id)[0] == []  # not ticked: nothing asked
    at.checkbox(key=f"video_sure_{run_id}_{name}").check().run()
    at.button(key=f"video_delete_{run_id}_{name}").click().run()
    assert not at.exception, [e.message for e in at.exception]
    (request,) = rs.pending_requests(run_id)[0]
    assert (request.action, request.source) == ("video", "dashboard")
    assert request.params == {"op": "delete", "name": name}
    assert all(rs.pending_requests(i)[0] == [] for i in folder.values() if i != run_id)
    assert (rs.paths(run_id).videos / name).exists()  # the runner deletes, never the page

    clip = clip_name(500_000)
    at.text_input(key=f"video_title_{run_id}_{clip}").set_value("Best game")
    at.button(key=f"video_rename_{run_id}_{clip}").click().run()
    requests = rs.pending_requests(run_id)[0]
    assert [(r.action, r.params) for r in requests][1:] == [
        ("video", {"op": "rename", "name": clip, "title": "Best game"})
    ]
    at.text_input(key=f"video_title_{run_id}_{clip}").set_value("evil\u202egnp")
    at.button(key=f"video_rename_{run_id}_{clip}").click().run()
    assert any(e.value.startswith("Not renamed") and "U+202E" in e.value for e in at.error)
    assert len(rs.pending_requests(run_id)[0]) == 2  # nothing sent for a bad title


def test_titles_show_and_name_downloads_and_viewers_cannot_change_them(
    folder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard import auth
    from tests.test_dashboard import LAN_PEER

    rs = RunStore(Path(folder_root()))
    run_id = folder["pong-b"]
    add_journey(rs, run_id)
    record = rs.read_run(run_id)
    assert record is not None
    clip = clip_name(500_000)
    # As the runner stores them; a title that breaks the rules (from a copied run.json) is
    # not shown, and a title is shown as typed, never as Markdown.
    record.video_titles = {clip: "Best [game](http://x)", "journey-20s.mp4": "Teaser", "x": "y"}
    rs.write_run(record)
    at = open_page("app_pages/videos.py")
    assert any(
        m.value == "**Best \\[game\\]\\(http\\://x\\)** · **pong\\-b** · Pong · step 500 k"
        for m in at.markdown
    ), [m.value for m in at.markdown]
    assert any(m.value.startswith("**Teaser** · pong\\-b") for m in at.markdown)
    urls = [b.proto.url for b in at.get("link_button")]
    assert sum(u.endswith("&dl=1&as=best-game-http-x") for u in urls) == 1, urls
    assert sum(u.endswith("&dl=1&as=teaser") for u in urls) == 1, urls
    assert at.text_input(key=f"video_title_{run_id}_{clip}").value == "Best [game](http://x)"
    assert "Rename or delete" in [e.label for e in at.expander]

    auth.throttle().reset()
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    at = open_page("app_pages/videos.py")
    assert len(at.get("video")) == 6  # a viewer sees every video
    assert "Rename or delete" not in [e.label for e in at.expander]
    assert not [b for b in at.button if b.key and b.key.startswith("video_")]
    from dashboard import video_data

    with pytest.raises(PermissionError):
        video_data.request_delete(run_id, "journey-20s.mp4")
    assert rs.pending_requests(run_id)[0] == []
