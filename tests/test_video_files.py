"""Renaming and deleting videos (issue 18): the rules of a ``video`` request (which names,
which titles, which params), deleting a video's files on disk, titles in run.json, download
names and the clip gallery's sort orders. Pure and fast: real files in a temp folder, no
processes (the runner and the page: tests/test_video_files_runner.py, test_videos_pages.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dashboard.clip_data import ClipRow
from dashboard.video_data import SORTS, sort_clips
from runstore import RunRecord
from runstore.timeline import lifecycle_events
from runstore.video_files import (
    MAX_TITLE_LENGTH,
    VideoChange,
    VideoRequestError,
    check_title,
    check_video_name,
    delete_video,
    download_name,
    drop_missing_titles,
    parse_video_change,
    set_title,
    titles,
    video_kind,
)
from runstore.videos import clip_name

CLIP = clip_name(500_000)
JOURNEY = "journey-60s.mp4"
COMPANIONS = (".json", ".chapters.txt", ".description.txt", ".png")


def test_only_bare_names_of_videos_are_accepted():
    assert video_kind(CLIP) == "clip"
    assert video_kind(clip_name(500_000, "record")) == "clip"
    assert video_kind("timelapse.mp4") == "timelapse"
    assert video_kind(JOURNEY) == "journey"
    for name in (CLIP, "timelapse.mp4", JOURNEY, "journey-1h30m.mp4"):
        assert check_video_name(name) == name
    refused = [  # (the name, words of the error that say what is wrong or what to do)
        ("../x.mp4", "never a path"),
        ("../" + CLIP, "never a path"),
        (f"videos/{CLIP}", "never a path"),
        (f"{CLIP}/..", "never a path"),
        ("step-1.mp4/..", "never a path"),
        ("..\\" + CLIP, "never a path"),
        (f"/abs/{CLIP}", "never a path"),
        ("..", "never a path"),
        ("", "never a path"),
        (CLIP + "\x00", "never a path"),
        ("run.json", "is not a video of a run"),
        ("step-000500000.json", "is not a video of a run"),
        ("journey-60s.png", "is not a video of a run"),
        ("journey-60s.chapters.txt", "is not a video of a run"),
        ("timelapse.json", "is not a video of a run"),
        (".tmp-1-" + CLIP, "is not a video of a run"),
        ("step-1.mp4", "is not a video of a run"),  # fewer than 9 digits: not a clip's name
        ("config.yaml", "is not a video of a run"),
    ]
    for name, words in refused:
        with pytest.raises(VideoRequestError, match=re.escape(words)):
            check_video_name(name)
    with pytest.raises(VideoRequestError, match="must be text, not int"):
        check_video_name(5)
    with pytest.raises(VideoRequestError, match="must be text, not NoneType"):
        check_video_name(None)


def test_titles_are_one_short_line_of_plain_text():
    assert check_title("  My best game  ") == "My best game"
    assert check_title("") == ""
    assert check_title("Pong 学习 — 第一局") == "Pong 学习 — 第一局"  # other scripts stay
    assert check_title("t" * MAX_TITLE_LENGTH) == "t" * MAX_TITLE_LENGTH
    refused = [
        ("t" * (MAX_TITLE_LENGTH + 1), "shorten it to at most 100"),
        ("two\nlines", "U+000A at position 4"),
        ("bell\x07", "U+0007 at position 5"),
        ("esc\x1b[31m", "U+001B"),
        ("evil\u202egnp.mp4", "U+202E"),  # a bidi override reorders what is shown
        ("iso\u2066late", "U+2066"),
        ("zero\u200bwidth", "U+200B"),
        ("nel\x85inside", "U+0085"),
        ("lone\udcffbyte", "U+DCFF"),
    ]
    for title, words in refused:
        with pytest.raises(VideoRequestError, match=re.escape(words)):
            check_title(title)
    with pytest.raises(VideoRequestError, match="must be text, not list"):
        check_title(["a"])


def test_request_params_are_checked_and_round_trip():
    delete = parse_video_change({"op": "delete", "name": CLIP})
    assert delete == VideoChange("delete", CLIP)
    assert delete.params() == {"op": "delete", "name": CLIP}
    rename = parse_video_change({"op": "rename", "name": JOURNEY, "title": " Teaser "})
    assert rename == VideoChange("rename", JOURNEY, "Teaser")
    assert parse_video_change(rename.params()) == rename
    cleared = parse_video_change({"op": "rename", "name": JOURNEY, "title": ""})
    assert cleared.params() == {"op": "rename", "name": JOURNEY, "title": ""}
    refused = [
        ({"op": "delete", "name": CLIP, "path": "/etc"}, "unknown video param(s) 'path'"),
        ({"op": "move", "name": CLIP}, "op 'move' is not one of delete, rename"),
        ({"name": CLIP}, "op None is not one of"),
        ({"op": "delete"}, "must be text, not NoneType"),
        ({"op": "delete", "name": "../../run.json"}, "never a path"),
        ({"op": "delete", "name": "run.json"}, "is not a video of a run"),
        ({"op": "delete", "name": CLIP, "title": "x"}, "a delete takes no title"),
        ({"op": "rename", "name": CLIP}, "a rename needs a title"),
        ({"op": "rename", "name": CLIP, "title": 7}, "must be text, not int"),
        ({"op": "rename", "name": CLIP, "title": "a\u202eb"}, "U+202E"),
    ]
    for params, words in refused:
        with pytest.raises(VideoRequestError, match=re.escape(words)):
            parse_video_change(params)
    with pytest.raises(VideoRequestError, match="must be an object"):
        parse_video_change(["op", "delete"])  # type: ignore[arg-type]


def _videos(tmp_path: Path) -> Path:
    videos = tmp_path / "run" / "videos"
    videos.mkdir(parents=True)
    (videos / CLIP).write_bytes(b"m" * 100)
    (videos / CLIP).with_suffix(".json").write_text('{"step": 500000}')
    (videos / JOURNEY).write_bytes(b"j" * 1000)
    for suffix in COMPANIONS:
        (videos / f"journey-60s{suffix}").write_bytes(b"c" * 10)
    (videos / "journey-20s.mp4").write_bytes(b"other journey")
    (videos / "journey-20s.png").write_bytes(b"its thumbnail")
    return videos


def test_deleting_a_clip_keeps_its_sidecar(tmp_path: Path):
    videos = _videos(tmp_path)
    deleted = delete_video(videos, CLIP)
    assert deleted.removed == (CLIP,) and deleted.freed == 100 and not deleted.problems
    assert not (videos / CLIP).exists()
    assert (videos / CLIP).with_suffix(".json").exists()  # what the clip scored stays
    with pytest.raises(VideoRequestError, match="deleted already"):
        delete_video(videos, CLIP)  # applied twice: nothing more to do, and it says so


def test_deleting_a_journey_takes_its_companions_and_nothing_else(tmp_path: Path):
    videos = _videos(tmp_path)
    deleted = delete_video(videos, JOURNEY)
    assert deleted.removed == (JOURNEY, *(f"journey-60s{s}" for s in COMPANIONS))
    assert deleted.freed == 1000 + 10 * len(COMPANIONS)
    assert sorted(os.listdir(videos)) == sorted(
        [CLIP, "step-000500000.json", "journey-20s.mp4", "journey-20s.png"]
    )


def test_a_link_is_never_deleted_nor_followed(tmp_path: Path):
    videos = _videos(tmp_path)
    outside = tmp_path / "precious.mp4"
    outside.write_bytes(b"keep me")
    (videos / CLIP).unlink()
    os.symlink(outside, videos / CLIP)
    with pytest.raises(VideoRequestError, match="is a symbolic link; left alone"):
        delete_video(videos, CLIP)
    assert (videos / CLIP).is_symlink() and outside.read_bytes() == b"keep me"
    # A companion that is a link stays, and the deletion says so.
    os.unlink(videos / "journey-60s.png")
    os.symlink(outside, videos / "journey-60s.png")
    deleted = delete_video(videos, JOURNEY)
    assert "journey-60s.png" not in deleted.removed
    assert deleted.problems == ("videos/journey-60s.png is not a plain file; left alone",)
    assert (videos / "journey-60s.png").is_symlink() and outside.exists()
    # A folder in a video's place is no video either.
    (videos / "timelapse.mp4").mkdir()
    with pytest.raises(VideoRequestError, match="is not a plain file; left alone"):
        delete_video(videos, "timelapse.mp4")


def test_a_videos_folder_that_is_a_link_is_left_alone(tmp_path: Path):
    elsewhere = _videos(tmp_path)
    run = tmp_path / "other-run"
    run.mkdir()
    os.symlink(elsewhere, run / "videos")
    with pytest.raises(VideoRequestError, match="not a plain folder"):
        delete_video(run / "videos", CLIP)
    assert (elsewhere / CLIP).exists()
    with pytest.raises(VideoRequestError, match="never a path"):
        delete_video(elsewhere, "../videos/" + CLIP)


def test_titles_in_run_json_and_the_timeline():
    record = RunRecord.model_validate({"id": "20261202-101500-old-ab12", "name": "old"})
    assert record.video_titles == {}  # a run.json written before issue 18
    assert set_title(record, CLIP, "First points")
    assert not set_title(record, CLIP, "First points")  # applied twice: no change
    assert set_title(record, CLIP, "")
    assert record.video_titles == {}
    assert not set_title(record, CLIP, "")
    # A run.json from elsewhere may say anything: only titles that hold to the rules show.
    record.video_titles = {
        CLIP: "ok",
        "run.json": "not a video",
        JOURNEY: "bad\u202etitle",
        "timelapse.mp4": "x" * 200,
        clip_name(1_000): "",
    }
    assert titles(record) == {CLIP: "ok"}
    assert titles(None) == {}
    record.record("video-deleted", "step-000500000.mp4: freed 1 MB (by test)")
    record.record("video-renamed", "journey-60s.mp4: titled 'Teaser' (by test)")
    record.record("video-refused", "video requested (hand): never a path")
    assert [e.text for e in lifecycle_events(record)] == [
        "Video deleted — step-000500000.mp4: freed 1 MB (by test)",
        "Video renamed — journey-60s.mp4: titled 'Teaser' (by test)",
        "Video change refused — video requested (hand): never a path",
    ]


def test_titles_of_videos_no_longer_there_are_dropped(tmp_path: Path):
    videos = _videos(tmp_path)
    record = RunRecord(id="20261202-101500-old-ab12", name="old")
    record.video_titles = {CLIP: "kept", clip_name(1_000): "gone", "../x": "no video"}
    assert drop_missing_titles(record, videos)
    assert record.video_titles == {CLIP: "kept"}
    assert not drop_missing_titles(record, videos)


def test_downloads_are_named_by_the_title():
    assert download_name(CLIP, "My best game!") == "my-best-game.mp4"
    assert download_name("journey-60s.chapters.txt", "Teaser") == "teaser.chapters.txt"
    assert download_name(JOURNEY, "../../etc/passwd") == "etc-passwd.mp4"
    assert download_name(CLIP, "", prefix="pong") == f"pong-{CLIP}"
    assert download_name(CLIP) == CLIP


def _row(name: str, step: int, score: float | None, size: int, at: float) -> ClipRow:
    return ClipRow(
        run_id="20261202-101500-x-ab12",
        run_name=name,
        env="ALE/Pong-v5",
        algo="ppo",
        step=step,
        kind="eval",
        score=score,
        episode_return=score,
        checkpoint="",
        frames=8,
        created_at=at,
        path=Path(clip_name(step)),
        size=size,
    )


def test_the_gallery_sorts_by_each_order():
    rows = [
        _row("beta", 2, 5.0, 300, 20.0),
        _row("Alpha", 1, None, 100, 30.0),
        _row("gamma", 3, 9.0, 200, 10.0),
    ]
    order = {label: [r.run_name for r in sort_clips(rows, label)] for label in SORTS}
    assert order == {
        "newest first": ["Alpha", "beta", "gamma"],
        "oldest first": ["gamma", "beta", "Alpha"],
        "highest score": ["gamma", "beta", "Alpha"],  # no score goes last
        "run name": ["Alpha", "beta", "gamma"],
        "largest file": ["beta", "gamma", "Alpha"],
    }
    assert list(SORTS)[0] == "newest first"  # the page's default
    assert sort_clips(rows, "no such order") == sort_clips(rows, "newest first")


def test_the_runners_side_in_process(tmp_path: Path):
    """``runner.video_files.apply`` on a real run folder, without a runner process (the real
    process: tests/test_video_files_runner.py)."""
    from runner import video_files as runner_side
    from runstore import RunStore
    from runstore.models import MediaJob
    from runstore.store import Request
    from tests.conftest import accept, cartpole

    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    run_id = accept(store, cartpole(10_000, 1_000), "r.yaml")
    record = store.read_run(run_id)
    assert record is not None
    videos = store.paths(run_id).videos
    videos.mkdir(exist_ok=True)
    (videos / CLIP).write_bytes(b"m" * 10)

    def request(**params: object) -> Request:
        return Request(path=tmp_path / "x", action="video", at=0.0, source="t", params=params)

    assert runner_side.apply(store, record, request(op="rename", name=CLIP, title="T"))
    assert not runner_side.apply(store, record, request(op="rename", name=CLIP, title="T"))
    assert record.video_titles == {CLIP: "T"}
    record.media_job = MediaJob(action="journey", pid=1, pgid=1, create_time=1.0, started_at=1.0)
    assert runner_side.apply(store, record, request(op="delete", name=CLIP))
    assert record.events[-1].kind == "video-refused" and "a journey job" in record.events[-1].detail
    record.media_job = None
    assert runner_side.apply(store, record, request(op="delete", name=CLIP), media_job=True)
    assert record.events[-1].kind == "video-refused" and (videos / CLIP).exists()
    assert runner_side.apply(store, record, request(op="delete", name=CLIP))
    assert record.events[-1].kind == "video-deleted" and not (videos / CLIP).exists()
    assert record.video_titles == {}
    assert runner_side.apply(store, record, request(op="delete", name=CLIP))
    assert (
        record.events[-1].kind == "video-refused" and "deleted already" in record.events[-1].detail
    )
