"""The journey's pure logic: which chapters a run's story has, how the frames are shared so
the length asked is met, the chapter lines, the length words, and the request's checks.
(The real video, from a real Pong run, is tests/test_journey.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.plan import GRID_TITLE, INTRO_TITLE, MIN_PLAY_SECONDS, Footage, make_plan, share
from journey.story import MAX_NEW_BESTS, JourneyError, milestones, tell
from journey.texts import chapter_lines, timestamp
from runner.media import RequestError, job_args
from runstore.videos import (
    Clip,
    ClipMeta,
    journey_label,
    parse_journey_length,
    parse_journey_name,
)


def clip(step: int, score: float, kind: str = "eval") -> Clip:
    name = f"step-{step:09d}{'-record' if kind == 'record' else ''}.mp4"
    meta = ClipMeta(step=step, kind=kind, eval_mean_return=score, frames=150, fps=15.0)
    return Clip(Path("/runs/r/videos") / name, step, kind, meta)


def footage_of(clips: list[Clip], frames: int = 150, fps: float = 15.0) -> dict[Path, Footage]:
    return {c.path: Footage(frames, fps) for c in clips}


PONG = [-21, -21, -20, -18, -19, -10, 15, 14]


def test_the_story_has_the_start_first_points_each_best_human_level_and_the_end() -> None:
    clips = [clip(100_000 * (i + 1), s) for i, s in enumerate(PONG)]
    chapters = tell(clips, human=14.6)
    assert [(c.title, c.step) for c in chapters] == [
        ("The start", 100_000),
        ("First points", 300_000),  # the first clip that beats the first one
        ("New best", 400_000),
        ("New best", 600_000),
        ("Human level", 700_000),  # also the best game: human level says more
        ("The final agent", 800_000),
    ]
    # The clips between chapters follow the chapter before them: nothing is left out.
    assert [c.step for c in chapters[0].following] == [200_000]
    assert [c.step for c in chapters[2].following] == [500_000]
    assert sum(len(c.clips) for c in chapters) == len(clips)
    assert chapters[1].heading == "First points · step 300 k · score -20"


def test_new_best_chapters_are_few_and_spread_and_a_flat_run_still_has_a_story() -> None:
    rising = [clip(1000 * (i + 1), float(i)) for i in range(30)]
    chapters = tell(rising)
    bests = [c for c in chapters if c.title == "New best"]
    assert 0 < len(bests) <= MAX_NEW_BESTS
    assert chapters[-1].title == "The best game" and chapters[-1].step == 30_000
    flat = tell([clip(1000 * (i + 1), -21.0) for i in range(5)])
    assert [c.title for c in flat] == ["The start", "The final agent"]
    with pytest.raises(JourneyError, match="no clips with a score"):
        tell([Clip(Path("/x/step-000000001.mp4"), 1, "eval", None)])


def test_the_grid_takes_early_middle_late_and_final_evaluation_clips() -> None:
    clips = [clip(1000 * (i + 1), float(i)) for i in range(10)] + [clip(5000, 3.0, "record")]
    assert [c.step for c in milestones(clips)] == [1000, 4000, 7000, 10_000]
    assert milestones(clips[:3]) == []


@pytest.mark.parametrize("seconds", [10, 20, 60, 61.5, 600, 3 * 3600])
@pytest.mark.parametrize("fps", [30, 60])
def test_every_plan_has_exactly_the_frames_of_the_length_asked(seconds: float, fps: int) -> None:
    clips = [clip(100_000 * (i + 1), s) for i, s in enumerate(PONG)]
    chapters = tell(clips, human=14.6)
    plan = make_plan(chapters, milestones(clips), seconds, fps, footage_of(clips))
    assert plan.frames == round(seconds * fps)
    footage = footage_of(clips)
    for section in plan.sections:
        assert section.frames > 0
        assert sum(p.frames for p in section.pieces) == (section.frames if section.pieces else 0)
        for piece in section.pieces:  # real speed, within the clip
            assert piece.start + piece.frames * 15.0 / fps <= footage[piece.clip.path].frames + 1
    assert plan.marks[0].title == INTRO_TITLE and plan.marks[0].frame == 0
    assert [m.frame for m in plan.marks] == sorted({m.frame for m in plan.marks})
    assert (GRID_TITLE in [m.title for m in plan.marks]) == (seconds >= 20)


def test_short_footage_is_counted_and_long_footage_is_never_played_twice() -> None:
    clips = [clip(100_000 * (i + 1), s) for i, s in enumerate(PONG)]  # 8 x 10 s of footage
    chapters = tell(clips, human=14.6)
    enough = make_plan(chapters, [], 30, 30, footage_of(clips))
    assert enough.looped == 0
    used = [(p.clip.path, p.start) for s in enough.sections for p in s.pieces]
    assert len(used) == len(set(used))
    short = make_plan(chapters, [], 600, 30, footage_of(clips))
    play = sum(s.frames for s in short.sections if s.kind == "play")
    assert short.looped == play - 8 * 10 * 30  # everything on disk, then the rest again


def test_a_teaser_keeps_the_most_telling_chapters() -> None:
    clips = [clip(100_000 * (i + 1), s) for i, s in enumerate(PONG)]
    plan = make_plan(tell(clips, human=14.6), [], 10, 30, footage_of(clips))
    titles = [m.title.split(" · ")[0] for m in plan.marks[1:]]
    assert len(titles) < 6
    assert "Human level" in titles and titles[-1] == "The final agent"
    assert all(s.frames >= MIN_PLAY_SECONDS * 30 for s in plan.sections if s.kind == "play")


def test_share_fills_by_weight_up_to_each_cap_and_reports_the_rest() -> None:
    assert share(100, [1, 1], [1000, 1000]) == ([50, 50], 0)
    assert share(100, [1, 1], [10, 1000]) == ([10, 90], 0)
    alloc, looped = share(100, [1, 3], [10, 20])
    assert sum(alloc) == 100 and looped == 70 and alloc[1] > alloc[0]


def test_chapter_lines_are_youtube_timestamps_at_the_cuts() -> None:
    assert [timestamp(s) for s in (0, 59.9, 65, 3600, 3725)] == [
        "0:00",
        "0:59",
        "1:05",
        "1:00:00",
        "1:02:05",
    ]
    clips = [clip(100_000 * (i + 1), s) for i, s in enumerate(PONG)]
    plan = make_plan(tell(clips, human=14.6), milestones(clips), 60, 30, footage_of(clips))
    lines = chapter_lines(plan.marks, 30).splitlines()
    assert lines[0] == "0:00 Intro"
    assert len(lines) == len(plan.marks)
    for line, mark in zip(lines, plan.marks, strict=True):
        assert line == f"{timestamp(mark.frame / 30)} {mark.title}"


@pytest.mark.parametrize(
    ("text", "seconds", "label"),
    [
        ("20s", 20, "20s"),
        ("60", 60, "60s"),
        ("10m", 600, "10m"),
        ("1h30m", 5400, "90m"),
        ("2h", 7200, "2h"),
        ("2h30m", 9000, "2h30m"),
        ("100s", 100, "100s"),
    ],
)
def test_lengths_read_and_name_files(text: str, seconds: float, label: str) -> None:
    assert parse_journey_length(text) == seconds
    assert journey_label(seconds) == label
    assert parse_journey_name(f"journey-{label}.mp4") == label
    assert parse_journey_length(label) == seconds  # a file's label reads back as its length


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5s", "out of range"),
        ("7h", "out of range"),
        ("soon", "not a length"),
        ("", "not a length"),
    ],
)
def test_a_bad_length_says_what_to_write(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_journey_length(text)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"seconds": 3}, "out of range"),
        ({"seconds": "60; rm -rf /"}, "not a number"),
        ({"seconds": True}, "not a number"),
        ({"seconds": 60, "size": 4320}, "size"),
        ({"seconds": 60, "fps": 24}, "fps"),
        ({"seconds": 60, "size": "720"}, "size"),
        ({"seconds": 60, "record": "no"}, "record"),
    ],
)
def test_the_runner_refuses_a_bad_journey_request(params: dict, why: str) -> None:
    with pytest.raises(RequestError, match=why):
        job_args("journey", params)


def test_a_journey_request_becomes_plain_arguments() -> None:
    args = job_args("journey", {"seconds": 90, "size": 720, "fps": 60})
    assert args == ["--length", "90", "--size", "720", "--fps", "60"]
    assert job_args("journey", {}) == ["--length", "600", "--size", "1080", "--fps", "30"]
    assert job_args("journey", {"seconds": 20, "record": False})[-1] == "--no-record"
