"""Documents and names in the runs folder that are valid but hostile (issue 20, items 2-4).

- JSON nested 50,000 deep (``RecursionError`` in ``json.loads``), and numbers a float cannot
  hold (``10**400``, ``1e999``, ``NaN``), in run.json, status.json and a clip's sidecar: the
  one bounded reader (``runstore.safeio.read_json``/``parse_json``) refuses them, the models
  refuse what is out of range, and each is a problem on that one run: the runner's step and
  adoption go on (in process, on a tmp runs folder; no trainer is ever spawned), ``runner ls``
  says which run, and the Runs, Run and Videos pages (AppTest) render and say so.
- The remaining reads of item 3: settings.yaml and the TensorBoard log as a FIFO or a link to
  /dev/zero, and the runner's look at an unreadable run.json, never block or read unbounded.
- Values that break the pages: non-finite ``episode/length`` and ``episode/return`` in a real
  event file (TensorBoard's own writer), and in a Monitor file; a queue file whose name is not
  UTF-8 (rejected with a readable note, listed by the Runs page); names with a newline, an
  ANSI escape or a right-to-left override go into the runner's log escaped.

Nothing here trains, starts a runner process or a browser.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from runstore import RunState, RunStore, TrainStatus, safeio, write_status_file

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
DEEP = 50_000
HUGE = "1" + "0" * 400  # 10**400 written out: valid JSON, too big for a float
CLIP = "step-000001000"
#: A stand-in mp4: pages hand the bytes to st.video and never decode them.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(64)


def deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


def with_extra(doc: dict, key: str, raw: str) -> str:
    """``doc`` as JSON with one more key whose value is ``raw`` JSON text."""
    return json.dumps(doc)[:-1] + f', "{key}": {raw}}}'


# -- the reader --------------------------------------------------------------------------------


def test_read_json_refuses_deep_nesting_and_numbers_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"

    def read(text: str) -> object:
        path.write_text(text)
        return safeio.read_json(path)

    cases = {
        "deep": with_extra({"id": "x"}, "extra", deep()),
        "deep objects": '{"a":' * DEEP + "1" + "}" * DEEP,
        "just too deep": "[" * (safeio.MAX_JSON_DEPTH + 1) + "]" * (safeio.MAX_JSON_DEPTH + 1),
        "huge int": f'{{"timesteps": {HUGE}}}',
        "int past 64 bits": '{"timesteps": 9223372036854775808}',
        "float overflow": '{"fps": 1e999}',
        "NaN": '{"fps": NaN}',
        "Infinity": '{"fps": -Infinity}',
    }
    for what, text in cases.items():
        assert read(text) is None, what
        with pytest.raises(ValueError):
            safeio.parse_json(text.encode())
    # What our writers write is read as before: depth up to the cap, brackets in strings,
    # escaped quotes, 64-bit ints, big and small floats, non-ASCII text.
    at_cap = "[" * safeio.MAX_JSON_DEPTH + "]" * safeio.MAX_JSON_DEPTH
    assert read(at_cap) is not None
    fine = {
        "s": "[[[{{{" * 1000 + '\\"]',
        "i": -(2**63),
        "j": 2**63 - 1,
        "f": 1.5e308,
        "g": 5e-324,
        "u": "Pong \u00e9\u4e2d",
        "nested": [{"a": [1, {"b": [2.5]}]}],
    }
    assert read(json.dumps(fine)) == fine
    assert read(json.dumps(fine, indent=2)) == fine


def test_read_json_is_linear_on_the_largest_document(tmp_path: Path) -> None:
    """The depth scan runs before json.loads and costs little even at the size cap."""
    path = tmp_path / "doc.json"
    half = safeio.JSON_LIMIT // 2
    path.write_text("[" * half + "]" * half)
    t0 = time.perf_counter()
    assert safeio.read_json(path) is None
    strings = json.dumps(["[{" * 1000] * (safeio.JSON_LIMIT // 2200))
    path.write_text(strings)
    assert safeio.read_json(path) is not None
    assert time.perf_counter() - t0 < 5.0


def test_models_refuse_numbers_out_of_range() -> None:
    """A document validated from anywhere (not only the reader) never holds a number that
    breaks arithmetic or a table later: each is a ValidationError (a ValueError)."""
    from runstore.models import MediaJob, RunEvent, RunRecord
    from runstore.videos import ClipMeta

    bad = [
        (TrainStatus, {"timesteps": 10**400}),
        (TrainStatus, {"total_timesteps": 2**70}),
        (TrainStatus, {"fps": 10**400}),
        (TrainStatus, {"best_eval_return": -(10**400)}),
        (TrainStatus, {"train_seconds": float("inf")}),
        (RunRecord, {"id": "x", "name": "x", "attempts": 10**400}),
        (RunRecord, {"id": "x", "name": "x", "created_at": float("inf")}),
        (RunEvent, {"at": float("nan"), "kind": "k"}),
        (RunEvent, {"at": 1e20, "kind": "k"}),
        (RunRecord, {"id": "x", "name": "x", "started_at": 1e20}),
        (TrainStatus, {"heartbeat_at": -1.0}),
        (ClipMeta, {"step": 1, "created_at": 1e12}),
        (RunEvent, {"at": 1.0, "kind": "k", "count": 10**30}),
        (MediaJob, {"action": "a", "pid": 10**400, "pgid": 1, "create_time": 1, "started_at": 1}),
        (ClipMeta, {"step": 10**400}),
        (ClipMeta, {"step": 1, "fps": float("nan")}),
        (ClipMeta, {"step": 1, "eval_mean_return": 10**400}),
    ]
    for model, doc in bad:
        with pytest.raises(ValueError):
            model.model_validate(doc)
    assert TrainStatus.model_validate({"timesteps": 2**62, "fps": 1e300}).timesteps == 2**62
    # A float that may be unknown is unknown when it is not finite: a trainer handing a
    # diverged environment's NaN return to ClipMeta(...) goes on, and writes null.
    status = TrainStatus(fps=float("inf"), mean_return_100=float("nan"))
    assert status.fps is None and status.mean_return_100 is None
    meta = ClipMeta(step=1, episode_return=float("nan"), eval_mean_return=float("-inf"))
    assert meta.episode_return is None and meta.eval_mean_return is None
    # Assigned after construction (not validated), it still goes to disk as null.
    status.last_episode_return = float("nan")
    assert status.document()["last_episode_return"] is None


# -- a runs folder with hostile documents ------------------------------------------------------


def new_run(rs: RunStore, name: str, state: RunState = RunState.STOPPED) -> str:
    """A run as the runner leaves it (no process), with a status.json and one clip."""
    text = f"algo: ppo\nenv: CartPole-v1\nn_timesteps: 100000\nseed: 1\nname: {name}\n"
    path = rs.submit(text, f"{name}.yaml")
    record = rs.accept(path, rs.read_queue_file(path))
    assert record is not None
    record.state = state
    rs.write_run(record)
    p = rs.paths(record.id)
    write_status_file(
        p.status_json, TrainStatus(phase="training", timesteps=1000, total_timesteps=100_000)
    )
    (p.videos / f"{CLIP}.mp4").write_bytes(FAKE_MP4)
    meta = {"step": 1000, "run_name": name, "env": "CartPole-v1", "eval_mean_return": 9.5}
    (p.videos / f"{CLIP}.json").write_text(json.dumps(meta))
    return record.id


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RunStore, dict[str, str]]:
    """One run per hostile document, and a healthy one."""
    root = tmp_path / "runs"
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    rs = RunStore(root)
    rs.ensure_layout()
    runs = {}
    kinds = ("healthy", "deep-run", "future-run", "deep-status", "huge-status", "nan-status")
    for kind in (*kinds, "future-status", "deep-clip"):
        runs[kind] = run_id = new_run(rs, kind)
        p = rs.paths(run_id)
        if kind == "deep-run":
            p.run_json.write_text(with_extra(json.loads(p.run_json.read_text()), "x", deep()))
        elif kind == "future-run":  # time.localtime(1e20): OverflowError on every page
            doc = json.loads(p.run_json.read_text())
            p.run_json.write_text(json.dumps({**doc, "started_at": 1e20}))
        elif kind == "future-status":
            p.status_json.write_text('{"phase": "training", "heartbeat_at": 1e20}')
        elif kind == "deep-status":
            p.status_json.write_text(with_extra({"phase": "training"}, "x", deep()))
        elif kind == "huge-status":
            p.status_json.write_text(f'{{"phase": "training", "timesteps": {HUGE}}}')
        elif kind == "nan-status":
            p.status_json.write_text('{"phase": "training", "timesteps": 5, "fps": NaN}')
        elif kind == "deep-clip":
            doc = {"step": 1000, "run_name": kind, "eval_mean_return": 1.0}
            (p.videos / f"{CLIP}.json").write_text(with_extra(doc, "x", deep()))
    return rs, runs


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner under test never starts a process."""
    from runner import process

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a test of reads must not spawn anything")

    monkeypatch.setattr(process, "spawn_trainer", refuse)
    monkeypatch.setattr(process, "spawn_module", refuse)


@pytest.mark.timeout(60)
def test_runner_adopts_and_steps_past_hostile_documents(
    hostile: tuple[RunStore, dict[str, str]], no_spawn: None, caplog: pytest.LogCaptureFixture
) -> None:
    from runner.supervisor import Supervisor

    rs, runs = hostile
    caplog.set_level(logging.INFO, logger="runner")
    sup = Supervisor(rs)
    sup.start()  # adoption reads every run.json: the deep one must not end it
    try:
        # A healthy run's run.json turns deep while the runner runs; a request to every run.
        healthy = rs.paths(runs["healthy"])
        healthy.run_json.write_text(
            with_extra(json.loads(healthy.run_json.read_text()), "x", deep())
        )
        for run_id in runs.values():
            rs.write_request(run_id, "pause")
        rs.submit("algo: nope\n", "bad.yaml")
        os.utime(rs.queue_dir / "bad.yaml", (time.time() - 60, time.time() - 60))
        for _ in range(3):
            sup.step()
            time.sleep(0.4)  # past DAMAGE_GRACE_SECONDS over the steps
        sup.step()
    finally:
        sup.close()
    assert (rs.rejected_dir / "bad.yaml.error.txt").exists()  # intake went on
    # Every run but the one never readable saw its request (ignored: nothing to pause).
    for kind, run_id in runs.items():
        left = list(rs.paths(run_id).requests.iterdir())
        assert (left != []) == (kind in ("deep-run", "future-run")), kind
    # The healthy run's run.json was rewritten from the runner's copy, and says so.
    record = rs.read_run(runs["healthy"])
    assert record is not None and any(e.kind == "run-json-damaged" for e in record.events)
    for kind in ("deep-run", "future-run"):
        logged = [r for r in caplog.records if runs[kind] in r.getMessage()]
        assert len(logged) == 1 and "unreadable" in logged[0].getMessage(), kind
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the runner's log"


def test_runner_ls_names_the_damaged_runs(
    hostile: tuple[RunStore, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli import main

    rs, runs = hostile
    assert main(["ls", "--runs-dir", str(rs.root)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for kind in ("deep-run", "future-run"):
        assert "unreadable" in lines[runs[kind]] and "run.json" in lines[runs[kind]], kind
    for kind in ("deep-status", "huge-status", "nan-status", "future-status"):
        assert "status.json is corrupt" in lines[runs[kind]], kind
    assert "1000/100000" in lines[runs["healthy"]]


def _page(at: AppTest, page: str) -> str:
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    parts = []
    for kind in ("title", "markdown", "text", "code", "caption", "error", "warning", "info"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(e.label) for e in at.get("expandable")]
    return "\n".join(parts)


@pytest.mark.timeout(300)
def test_pages_show_hostile_documents_as_problems_of_their_run(
    hostile: tuple[RunStore, dict[str, str]],
) -> None:
    rs, runs = hostile
    status_problem = "status.json cannot be read (damaged, or not a plain file)"
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    at.session_state["runs_selected"] = runs["huge-status"]
    text = _page(at, "app_pages/runs.py")
    for kind in ("deep-run", "future-run"):
        assert f"Run `{runs[kind]}`: its run.json is damaged" in text, kind
    assert status_problem in text
    for kind in ("deep-status", "huge-status", "nan-status", "future-status"):
        at.query_params["run"] = runs[kind]
        text = _page(at, "app_pages/run.py")
        assert status_problem in text, kind
        assert at.title[0].value == kind
    at.query_params["run"] = runs["deep-clip"]
    text = _page(at, "app_pages/run.py")
    assert f"videos/{CLIP}.json is damaged" in text
    text = _page(at, "app_pages/videos.py")
    assert f"videos/{CLIP}.json is damaged" in text
    assert text.count(f"videos/{CLIP}.json is damaged") == 1  # the other runs' clips are fine


def test_clip_sidecars_that_are_damaged_say_so(tmp_path: Path) -> None:
    from runstore.videos import list_clips, read_meta

    videos = tmp_path / "videos"
    videos.mkdir()
    for step, meta in ((1, deep()), (2, f'{{"step": {HUGE}}}'), (3, '{"step": 3}')):
        (videos / f"step-{step:09d}.mp4").write_bytes(FAKE_MP4)
        (videos / f"step-{step:09d}.json").write_text(meta)
    clips = list_clips(videos)
    assert [c.meta is None for c in clips] == [True, True, False]
    assert [bool(c.problem) for c in clips] == [True, True, False]
    assert "is damaged" in clips[0].problem and read_meta(videos / "step-000000001.json") is None


# -- item 3: the reads that were left -------------------------------------------------------------


def _in_thread(call: Callable[[], object], fifo: Path | None = None) -> object:
    """``call()`` in a thread, failing (not hanging) when it blocks; a reader stuck on a FIFO
    (code without the fix) is let go by opening it for writing once."""
    result: list[object] = []

    def target() -> None:
        try:
            result.append(call())
        except Exception as exc:  # handed to the test
            result.append(exc)

    reader = threading.Thread(target=target, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"{call} blocked")
    return result[0]


def _settings_and_log(tmp_path: Path, make: Callable[[Path], None]) -> None:
    from dashboard.tensorboard_launcher import TensorBoardLauncher
    from runstore.settings import SettingsError, load_settings

    root = tmp_path / "runs"
    rs = RunStore(root)
    rs.ensure_layout()
    settings = root / "settings.yaml"
    make(settings)
    got = _in_thread(lambda: load_settings(root), settings)
    assert isinstance(got, SettingsError), got
    assert "FIFO" in str(got) or "symbolic link" in str(got), got
    settings.unlink()
    settings.write_text("max_concurrent: 2\n")
    assert load_settings(root).max_concurrent == 2

    launcher = TensorBoardLauncher(rs)
    make(rs.tensorboard_log)
    got = _in_thread(launcher._log_tail, rs.tensorboard_log)
    assert isinstance(got, str) and len(got) <= 800, got
    assert "FIFO" in got or "symbolic link" in got, got
    rs.tensorboard_log.unlink()
    rs.tensorboard_log.write_text("x" * 100_000 + "\nTensorBoard 2.x at http://localhost:6006/\n")
    assert launcher._log_tail().endswith("TensorBoard 2.x at http://localhost:6006/")


@pytest.mark.timeout(60)
def test_settings_and_tensorboard_log_as_a_fifo_block_nothing(tmp_path: Path) -> None:
    """No writer: a blocking open would wait for ever."""
    _settings_and_log(tmp_path, os.mkfifo)


@pytest.mark.timeout(60)
def test_settings_and_tensorboard_log_linked_to_dev_zero_are_refused(tmp_path: Path) -> None:
    """Read whole, /dev/zero has no end (not run against the old code: it eats memory)."""
    _settings_and_log(tmp_path, lambda p: p.symlink_to("/dev/zero"))


@pytest.mark.timeout(30)
def test_runner_says_why_run_json_is_unreadable_without_blocking(tmp_path: Path) -> None:
    from runner.supervisor import _unreadable_why

    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    done: list[str] = []
    reader = threading.Thread(target=lambda: done.append(_unreadable_why(fifo, (0, 0))))
    reader.daemon = True
    reader.start()
    reader.join(10)
    if reader.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("looking at a FIFO run.json blocked the runner")
    assert "FIFO" in done[0]


# -- item 4: values and names ----------------------------------------------------------------------


def _events(folder: Path, rows: list[tuple[str, int, float]]) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder.mkdir(parents=True)
    writer = EventFileWriter(str(folder))
    for i, (tag, step, value) in enumerate(rows):
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        writer.add_event(Event(step=step, wall_time=1e9 + i, summary=summary))
    writer.close()


def test_non_finite_episode_values_are_dropped_per_tag(tmp_path: Path) -> None:
    """A length that is not finite (or too big for an integer) is null; a return that is not
    finite drops that episode; every other row is kept."""
    from runstore import metrics

    run = tmp_path / "runs" / "20261124-031205-pong-ppo-3f9a"
    inf, nan = float("inf"), float("nan")
    rows = []
    for step, ret, length in (
        (10, 1.0, 10.0),
        (20, 2.0, nan),
        (30, 3.0, inf),
        (40, 4.0, 1e30),
        (50, nan, 50.0),
        (60, -inf, 60.0),
        (70, 7.0, 70.0),
    ):
        rows += [("episode/return", step, ret), ("episode/length", step, length)]
    _events(run / "tb" / "PPO_1", rows)
    metrics.clear_cache()
    episodes = metrics.load_episodes(run)
    assert episodes["step"].to_list() == [10, 20, 30, 40, 70]
    assert episodes["episode_return"].to_list() == [1.0, 2.0, 3.0, 4.0, 7.0]
    assert episodes["episode_length"].to_list() == [10, None, None, None, 70]


def test_non_finite_monitor_values_are_dropped(tmp_path: Path) -> None:
    from runstore import metrics

    run = tmp_path / "runs" / "20261124-031205-pong-ppo-3f9a"
    run.mkdir(parents=True)
    header = '#{"t_start": 1e999, "x": ' + deep() + "}\n"
    body = "r,l,t\n1.0,10,0.5\n2.0,inf,1.0\nnan,12,1.5\n3.0,1e30,2.0\n4.0,14,2.5\n"
    (run / "0.monitor.csv").write_text(header + body)
    metrics.clear_cache()
    episodes = metrics.load_episodes(run)
    assert episodes["episode_return"].to_list() == [1.0, 4.0]
    assert episodes["wall_time"].to_list() == [0.5, 2.5]


NON_UTF8 = b"\xff\xfe.yaml"


def _bytes_file(folder: Path, name: bytes, data: bytes) -> None:
    with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
        fh.write(data)
    old = time.time() - 60  # not "fresh": rejected at once
    os.utime(os.path.join(os.fsencode(folder), name), (old, old))


@pytest.mark.timeout(60)
def test_a_queue_file_named_in_bytes_that_are_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_spawn: None
) -> None:
    from runner.supervisor import Supervisor

    root = tmp_path / "runs"
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    rs = RunStore(root)
    rs.ensure_layout()
    _bytes_file(rs.queue_dir, NON_UTF8, b"algo: nope\n")
    # Waiting in the queue (not yet seen by a runner): the Runs page lists it.
    _bytes_file(rs.queue_dir, b"\xc3(wait.yaml", b"algo: ppo\n")
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    text = _page(at, "app_pages/runs.py")
    assert "\\xc3(wait.yaml" in text
    os.remove(os.path.join(os.fsencode(rs.queue_dir), b"\xc3(wait.yaml"))

    Supervisor(rs).intake()
    rejected = os.listdir(os.fsencode(rs.rejected_dir))
    assert sorted(rejected) == sorted([NON_UTF8, NON_UTF8 + b".error.txt"]), rejected
    note = (rs.rejected_dir / os.fsdecode(NON_UTF8 + b".error.txt")).read_bytes().decode("utf-8")
    assert note.startswith("\\xff\\xfe.yaml was not started")
    text = _page(at, "app_pages/runs.py")
    assert "\\xff\\xfe.yaml" in text and "was not started" in text

    # A valid config under such a name becomes a run whose record says where it came from.
    _bytes_file(rs.queue_dir, b"ok-\xff.yaml", b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\n")
    Supervisor(rs).intake()
    (run_id,) = rs.run_ids()
    record = rs.read_run(run_id)
    assert record is not None and record.source_file == "ok-\\xff.yaml"
    assert all("\udcff" not in e.detail for e in record.events)
    at.query_params["run"] = run_id
    assert "from ok-\\xff.yaml" in _page(at, "app_pages/run.py")


HOSTILE_NAMES = {
    "new\nline.yaml": "new\\nline.yaml",
    "\x1b[31mred\x1b[0m.yaml": "\\x1b[31mred\\x1b[0m.yaml",
    "evil\u202egnp.yaml": "evil\\u202egnp.yaml",
}


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    from runstore.store import printable

    for raw, shown in HOSTILE_NAMES.items():
        assert printable(raw) == shown
    assert printable(os.fsdecode(NON_UTF8)) == "\\xff\\xfe.yaml"
    assert printable("Pong \u00e9\u4e2d-v5.yaml") == "Pong \u00e9\u4e2d-v5.yaml"
    assert printable("tab\there\x7f\x85\u2028\u2066") == "tab\\there\\x7f\\x85\\u2028\\u2066"


@pytest.mark.timeout(60)
def test_names_go_into_the_runners_log_escaped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, no_spawn: None
) -> None:
    from runner.supervisor import Supervisor

    rs = RunStore(tmp_path / "runs")
    rs.ensure_layout()
    for name in HOSTILE_NAMES:
        _bytes_file(rs.queue_dir, os.fsencode(name), b"algo: nope\n")
    run_id = new_run(rs, "req")
    requests = rs.paths(run_id).requests
    requests.mkdir(exist_ok=True)
    (requests / "1-stop.json\n\x1b[2J\u202e").write_text("{}")
    caplog.set_level(logging.INFO, logger="runner")
    sup = Supervisor(rs)
    sup.intake()
    sup.handle_requests(run_id)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for shown in HOSTILE_NAMES.values():
        assert shown in logged, shown
    assert "1-stop.json\\n\\x1b[2J\\u202e" in logged
    assert not any(c in logged for c in "\x1b\u202e"), logged
    assert "new\nline" not in logged and "1-stop.json\n" not in logged
    for raw, shown in HOSTILE_NAMES.items():
        note = rs.refusal_note(rs.rejected_dir / raw) or ""
        assert note.startswith(f"{shown} was not started"), note


def test_lone_surrogates_in_a_document_come_back_written_out(tmp_path: Path) -> None:
    """``json.dumps`` of a name that was not UTF-8 writes ``"\\udcff"``: valid JSON, and a
    string nothing can encode once parsed (a page showing it failed). An older runner wrote
    such names into run.json; anyone can write them into status.json."""
    rs = RunStore(tmp_path / "runs")
    rs.ensure_layout()
    run_id = new_run(rs, "surrogates")
    p = rs.paths(run_id)
    doc = json.loads(p.run_json.read_text())
    doc["source_file"] = os.fsdecode(NON_UTF8)
    doc["events"][0]["detail"] = "from " + os.fsdecode(NON_UTF8)
    p.run_json.write_text(json.dumps(doc))
    assert "\\udcff" in p.run_json.read_text()
    record = rs.read_run(run_id)
    assert record is not None and record.source_file == "\\xff\\xfe.yaml"
    assert record.events[0].detail == "from \\xff\\xfe.yaml"
    p.status_json.write_text(
        '{"phase": "training", "reason": "x\\ud800y", "device": "\\ud83d\\ude00"}'
    )
    status = rs.read_status(run_id)
    assert status is not None and status.reason == "x\\ud800y" and status.device == "\U0001f600"
    for text in (record.source_file, status.reason, status.device):
        text.encode("utf-8")
