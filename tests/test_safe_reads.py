"""Every read the dashboard and the runner make in a run folder refuses symlinks and files that
are not regular (issue 13, item 2), and is bounded.

- ``runstore.safeio`` itself: a link, a FIFO, a folder, a link to /dev/zero, a folder on the
  way (``videos/``, ``logs/``) that is a link out, caps on whole reads and tails.
- The pages a remote viewer opens, under Streamlit's AppTest (the real app script): one run
  per file kind the dashboard shows or serves (time-lapse, clip, clip sidecar, trainer.log,
  config.yaml, status.json, run.json, best.zip, a ``checkpoints/``, ``videos/`` or ``logs/``
  folder that is a link, a rejected config's .error.txt), each with a link to a secret file
  outside the runs folder. The secret's text must appear nowhere: not in any text element, and
  not in any bytes Streamlit was given to serve under /media (videos, and every download
  button's deferred file, run as a click would). Each page must say the file was refused.
- A FIFO at ``logs/trainer.log`` and ``status.json`` does not hang a page or the runner's
  reads (bounded by pytest-timeout; nothing sleeps).
- The runner's ``_tail`` (failure diagnosis) and ``_last_line`` (media job log) refuse links.
- Metrics: an event file or Monitor file that is a link is not read.

The module imports nothing new at the top, so it runs against code without ``runstore.safeio``
(the helper's own tests then fail on their import, the others on what they check).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from runstore import RunState, RunStore, safeio
from tests.test_videos_pages import make_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
SECRET = "s3cr3t-0f-the-h0st-7f3a"


# -- the helper ------------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the runs folder holding the host's secrets."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(f"{SECRET}\n")
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder (named like one, so its runs folder is the base links are checked from)."""
    folder = tmp_path / "runs" / "20261124-031205-pong-ppo-3f9a"
    for sub in ("videos", "logs", "checkpoints"):
        (folder / sub).mkdir(parents=True)
    (folder / "run.json").write_text('{"id": "x"}')
    return folder


def test_helper_reads_plain_files_and_refuses_links(run_dir: Path, outside: Path) -> None:
    from runstore import safeio

    assert safeio.read_bytes(run_dir / "run.json", limit=100) == b'{"id": "x"}'
    assert safeio.read_json(run_dir / "run.json") == {"id": "x"}
    for link, target in (
        (run_dir / "videos" / "timelapse.mp4", outside / "secret.txt"),  # absolute, out
        (run_dir / "status.json", Path("run.json")),  # relative, in the same folder
    ):
        link.symlink_to(target)
        for read in (
            lambda p: safeio.read_bytes(p, limit=1000),
            lambda p: safeio.read_tail(p, limit=1000),
            safeio.check_file,
            safeio.open_file,
        ):
            with pytest.raises(safeio.UnsafeFileError) as caught:
                read(link)
            assert isinstance(caught.value, OSError)  # callers' `except OSError` refuse it
            assert "is a symbolic link" in str(caught.value) and SECRET not in str(caught.value)
            assert str(caught.value).startswith(f"refused to read {run_dir.name}/")
        assert safeio.read_json(link) is None
    with pytest.raises(FileNotFoundError):
        safeio.read_bytes(run_dir / "logs" / "trainer.log", limit=10)


@pytest.mark.timeout(30)
def test_helper_refuses_fifos_folders_and_devices(run_dir: Path) -> None:
    from runstore import safeio

    fifo = run_dir / "logs" / "trainer.log"
    os.mkfifo(fifo)  # no writer: a blocking open would wait for ever
    (run_dir / "videos" / "zero.mp4").symlink_to("/dev/zero")  # read whole: without end
    cases = {
        fifo: "is not a regular file (FIFO)",
        run_dir / "videos": "is not a regular file (directory)",
        run_dir / "videos" / "zero.mp4": "is a symbolic link",
    }
    for path, reason in cases.items():
        for read in (
            lambda p: safeio.read_bytes(p, limit=10),
            lambda p: safeio.read_tail(p, limit=10),
            safeio.check_file,
        ):
            with pytest.raises(safeio.UnsafeFileError) as caught:
                read(path)
            assert caught.value.reason == reason, path
    # Devices themselves (not only links to them), given as the base's own files.
    with pytest.raises(safeio.UnsafeFileError, match="character device"):
        safeio.read_bytes("/dev/zero", limit=10)


def test_helper_bounds_every_read(run_dir: Path) -> None:
    from runstore import safeio

    log = run_dir / "logs" / "trainer.log"
    log.write_bytes(b"x" * 10_000 + b"last line\n")
    assert safeio.read_tail(log, limit=10) == b"last line\n"
    assert safeio.read_bytes(log, limit=20_000).endswith(b"last line\n")
    with pytest.raises(safeio.UnsafeFileError, match="larger than 100 bytes"):
        safeio.read_bytes(log, limit=100)
    big = run_dir / "status.json"
    big.write_text(json.dumps({"pad": "y" * 5000}))
    assert safeio.read_json(big, limit=1000) is None
    assert safeio.read_json(big) == {"pad": "y" * 5000}


def test_helper_refuses_a_folder_on_the_way_that_is_a_link(run_dir: Path, outside: Path) -> None:
    """O_NOFOLLOW covers the last name only: ``videos/`` or ``logs/`` being a link out is
    checked too, from the runs folder down (the run folder itself included)."""
    from runstore import safeio

    (outside / "trainer.log").write_text(SECRET)
    (outside / "timelapse.mp4").write_text(SECRET)
    for sub in ("videos", "logs"):
        (run_dir / sub).rmdir()
        (run_dir / sub).symlink_to(outside, target_is_directory=True)
    for path in (run_dir / "videos" / "timelapse.mp4", run_dir / "logs" / "trainer.log"):
        with pytest.raises(safeio.UnsafeFileError) as caught:
            safeio.read_tail(path, limit=100)
        sub = path.parent.name
        assert caught.value.reason == f"lies under {run_dir.name}/{sub}, which is a symbolic link"
    # A run folder that is itself a link out (the base is the runs folder above it).
    linked = run_dir.parent / "20261124-031205-pong-ppo-aaaa"
    linked.symlink_to(outside, target_is_directory=True)
    with pytest.raises(safeio.UnsafeFileError, match="which is a symbolic link"):
        safeio.read_bytes(linked / "trainer.log", limit=100)
    # An explicit base: nothing outside it, nothing through a link under it.
    with pytest.raises(safeio.UnsafeFileError, match="is outside"):
        safeio.read_bytes(outside / "trainer.log", limit=100, base=run_dir)
    with pytest.raises(safeio.UnsafeFileError, match="which is a symbolic link"):
        safeio.read_bytes(run_dir / "logs" / "trainer.log", limit=100, base=run_dir)
    # The runs folder itself may be a link the user made (a bigger disk): that is followed.
    alias = run_dir.parent.parent / "runs-alias"
    alias.symlink_to(run_dir.parent, target_is_directory=True)
    assert safeio.read_bytes(alias / run_dir.name / "run.json", limit=100) == b'{"id": "x"}'


# -- the pages a remote viewer opens -----------------------------------------------------------


class Served:
    """Every byte string Streamlit was handed to serve (under /media) while pages ran: media
    files added by st.video, and each download button's deferred file, produced as a click
    would produce it (a refusal raised there is what the browser would get: an error)."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.deferred: list[Callable[[], object]] = []
        self.refused_downloads: list[str] = []

    def run_downloads(self) -> None:
        for make in self.deferred:
            try:
                made = make()
            except OSError as exc:
                self.refused_downloads.append(str(exc))
                continue
            self.blobs.append(made if isinstance(made, bytes) else str(made).encode())
        self.deferred.clear()

    def leaks(self) -> list[int]:
        """Which served files hold the secret (their order of serving)."""
        return [i for i, blob in enumerate(self.blobs) if SECRET.encode() in blob]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    spy = Served()
    load = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self: MemoryMediaFileStorage, path_or_data: str | bytes, *a, **k) -> str:
        file_id = load(self, path_or_data, *a, **k)
        spy.blobs.append(self.get_file(file_id).content)  # what /media/<id> would send
        return file_id

    add_deferred = MediaFileManager.add_deferred

    def deferred(self: MediaFileManager, data_callable: Callable[[], object], *a, **k) -> str:
        spy.deferred.append(data_callable)
        return add_deferred(self, data_callable, *a, **k)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    monkeypatch.setattr(MediaFileManager, "add_deferred", deferred)
    return spy


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    root = tmp_path / "runs"
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    monkeypatch.setenv("RETRO_ML_PASSWORD", "not-given")  # a remote viewer: read-only
    from dashboard import auth

    monkeypatch.setattr(auth, "peer_address", lambda: "192.0.2.10")
    rs = RunStore(root)
    rs.ensure_layout()
    auth.throttle().reset()
    return rs


def a_run(rs: RunStore, name: str) -> str:
    """A complete run: a real clip with its sidecar, a time-lapse, best.zip, a log."""
    run_id = make_run(rs, "CartPole-v1", name, 100.0, {500_000: 100.0})
    p = rs.paths(run_id)
    shutil.copy(p.videos / "step-000500000.mp4", p.videos / "timelapse.mp4")
    p.trainer_log.write_text(f"{name}: training went fine\n")
    record = rs.read_run(run_id)
    assert record is not None
    record.state = RunState.STOPPED
    rs.write_run(record)
    return run_id


def _link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target, target_is_directory=target.is_dir())


def _secret_folder(outside: Path, name: str, files: dict[str, str]) -> Path:
    folder = outside / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


# kind -> (the page that shows it, what that page must say about it)
EXPECTED = {
    "timelapse": ("run", "videos/timelapse.mp4: it is a symbolic link"),
    "clip": ("run", "videos/step-000500000.mp4: it is a symbolic link"),
    "sidecar": ("run", "videos/step-000500000.json: it is a symbolic link"),
    "trainer-log": ("run", "logs/trainer.log: it is a symbolic link"),
    "config": ("run", "config.yaml: it is a symbolic link"),
    "best-zip": ("run", "checkpoints/best.zip: it is a symbolic link"),
    "checkpoints-dir": ("run", "/checkpoints, which is a symbolic link"),
    "videos-dir": ("run", "/videos, which is a symbolic link"),
    "logs-dir": ("run", "/logs, which is a symbolic link"),
    "status": ("run", "status.json cannot be read (damaged, or not a plain file)"),
    "run-json": ("runs", "run.json is damaged (or a link)"),
    "rejected-note": ("runs", "bad.yaml.error.txt: it is a symbolic link"),
}


def plant(rs: RunStore, outside: Path) -> dict[str, str]:
    """One run per kind, each with that file (or folder) a link to a secret outside."""
    secret = outside / "secret.txt"
    runs = {}
    for kind in EXPECTED:
        if kind == "rejected-note":
            continue
        run_id = a_run(rs, kind)
        runs[kind] = run_id
        p = rs.paths(run_id)
        if kind == "timelapse":
            _link(p.videos / "timelapse.mp4", secret)
        elif kind == "clip":
            _link(p.videos / "step-000500000.mp4", secret)
        elif kind == "sidecar":
            meta = {"step": 500_000, "run_name": SECRET, "env": SECRET, "eval_mean_return": 1.0}
            (outside / "meta.json").write_text(json.dumps(meta))
            _link(p.videos / "step-000500000.json", outside / "meta.json")
        elif kind == "trainer-log":
            _link(p.trainer_log, secret)
        elif kind == "config":
            (outside / "secret.yaml").write_text(f"algo: ppo\nenv: CartPole-v1\n# {SECRET}\n")
            _link(p.config, outside / "secret.yaml")
        elif kind == "best-zip":
            _link(p.checkpoints / "best.zip", secret)
        elif kind == "checkpoints-dir":
            files = {"best.zip": SECRET, "best.json": '{"step": 1, "eval_return": 1.0}'}
            _link(p.checkpoints, _secret_folder(outside, "ckpts", files))
        elif kind == "videos-dir":
            meta = json.dumps({"step": 250_000, "run_name": SECRET, "eval_mean_return": 2.0})
            files = {"step-000250000.mp4": SECRET, "step-000250000.json": meta}
            _link(p.videos, _secret_folder(outside, "videos", {**files, "timelapse.mp4": SECRET}))
        elif kind == "logs-dir":
            _link(p.logs, _secret_folder(outside, "logs", {"trainer.log": SECRET}))
        elif kind == "status":
            status = {"phase": "training", "timesteps": 1, "diagnosis": {"title": SECRET}}
            (outside / "status.json").write_text(json.dumps(status))
            _link(p.status_json, outside / "status.json")
        elif kind == "run-json":
            doc = json.loads(p.run_json.read_text())
            doc["name"] = SECRET
            (outside / "run.json").write_text(json.dumps(doc))
            _link(p.run_json, outside / "run.json")
    (rs.rejected_dir / "bad.yaml").write_text("algo: nope\n")
    _link(rs.rejected_dir / "bad.yaml.error.txt", secret)
    return runs


def _shown(at: AppTest) -> str:
    """Every text a page shows: elements, expander labels, table cells."""
    parts = []
    for kind in ("title", "markdown", "text", "code", "caption", "error", "warning", "info"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(e.label) for e in at.get("expandable")]
    parts += [str(e.value) for e in at.sidebar.error]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(parts)


def _open(at: AppTest, page: str) -> str:
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return _shown(at)


@pytest.mark.timeout(600)
def test_planted_links_are_refused_on_every_page_a_viewer_opens(
    folder: RunStore, outside: Path, served: Served
) -> None:
    runs = plant(folder, outside)
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    pages: dict[str, str] = {"runs": _open(at, "app_pages/runs.py")}
    for kind, run_id in runs.items():
        if kind == "run-json":
            continue  # not listed: the Runs page says why
        at.query_params["run"] = run_id
        pages[kind] = _open(at, "app_pages/run.py")
        assert at.query_params["run"] == run_id, kind
    pages["videos"] = _open(at, "app_pages/videos.py")
    pages["leaderboard"] = _open(at, "app_pages/leaderboard.py")
    served.run_downloads()

    leaked = sorted(name for name, text in pages.items() if SECRET in text)
    silent = sorted(
        kind
        for kind, (page, says) in EXPECTED.items()
        if says not in pages[kind if page == "run" else "runs"]
    )
    found = {
        "pages showing the secret": leaked,
        "served files holding it (/media, downloads)": served.leaks(),
        "kinds refused without a word": silent,
    }
    assert found == dict.fromkeys(found, []), found
    # The gallery says so too, for the clip that is a link and the ones in a linked videos/.
    assert "videos/step-000500000.mp4: it is a symbolic link" in pages["videos"]
    assert "/videos, which is a symbolic link" in pages["videos"]
    # What was served is what the runs folder holds: the untouched runs' clips and models.
    assert served.blobs and all(
        b.startswith(b"\x00\x00\x00") or b[:2] == b"PK" for b in served.blobs
    )


# -- FIFOs: nothing waits on a writer that never comes ---------------------------------------


@pytest.fixture
def fifos() -> Iterator[list[Path]]:
    """FIFOs a test makes; afterwards each is opened for writing once, so a reader stuck on it
    (code without the fix, in AppTest's script thread) is let go."""
    made: list[Path] = []
    yield made
    for path in made:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.timeout(240)
def test_a_fifo_as_the_log_or_status_hangs_no_page(
    folder: RunStore, fifos: list[Path], served: Served
) -> None:
    log_run, status_run = a_run(folder, "fifo-log"), a_run(folder, "fifo-status")
    for path in (folder.paths(log_run).trainer_log, folder.paths(status_run).status_json):
        path.unlink()
        os.mkfifo(path)
        fifos.append(path)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    runs_page = _open(at, "app_pages/runs.py")
    assert "status.json cannot be read" in runs_page
    at.query_params["run"] = log_run
    assert "logs/trainer.log: it is not a regular file (FIFO)" in _open(at, "app_pages/run.py")
    at.query_params["run"] = status_run
    _open(at, "app_pages/run.py")
    assert at.title[0].value == "fifo-status"


@pytest.mark.timeout(60)
def test_the_store_and_the_runner_read_past_fifos(folder: RunStore, fifos: list[Path]) -> None:
    """The runner reads status.json and run.json of every run each poll, and the log tails
    when a run or a media job ends: a FIFO there must not stop it."""
    from runner.media import _last_line
    from runner.supervisor import _tail

    run_id = a_run(folder, "fifo")
    p = folder.paths(run_id)
    for path in (p.status_json, p.trainer_log, p.media_log):
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        fifos.append(path)
    assert folder.read_status(run_id) is None
    assert _tail(p.trainer_log) == ""
    assert _last_line(folder, run_id) == ""
    p.run_json.rename(p.dir / "run.json.real")
    os.mkfifo(p.run_json)
    fifos.append(p.run_json)
    assert folder.read_run(run_id) is None
    p.config.unlink()
    os.mkfifo(p.config)
    fifos.append(p.config)
    with pytest.raises(OSError, match="FIFO"):
        folder.read_config(run_id)


# -- the runner's log tails --------------------------------------------------------------------


def test_the_runners_log_tails_refuse_links(folder: RunStore, outside: Path) -> None:
    from runner.media import _last_line
    from runner.supervisor import _tail

    run_id = a_run(folder, "tails")
    p = folder.paths(run_id)
    p.media_log.write_text("encoding\ndone: 8 frames\n")
    assert "training went fine" in _tail(p.trainer_log)
    assert _last_line(folder, run_id) == "done: 8 frames"
    _link(p.trainer_log, outside / "secret.txt")
    _link(p.media_log, outside / "secret.txt")
    assert _tail(p.trainer_log) == "" and _last_line(folder, run_id) == ""
    # logs/ itself a link to a folder whose files have the right names.
    _link(p.logs, _secret_folder(outside, "logs", {"trainer.log": SECRET, "media.log": SECRET}))
    assert _tail(p.trainer_log) == "" and _last_line(folder, run_id) == ""


def test_the_runner_never_writes_a_log_through_a_link(run_dir: Path, outside: Path) -> None:
    """The runner hands each trainer and media job a log in the run folder: a planted link
    (or a FIFO) there is refused before any process starts, and the target is untouched."""
    from runner import process

    secret = outside / "secret.txt"
    log = run_dir / "logs" / "trainer.log"
    log.symlink_to(secret)
    with pytest.raises(OSError, match="symbolic link"):
        process.spawn_trainer(run_dir, log)
    with pytest.raises(OSError, match="symbolic link"):
        process.spawn_module("training.record", [str(run_dir)], run_dir, log)
    log.unlink()
    os.mkfifo(log)
    with pytest.raises(OSError, match="FIFO"):
        process.spawn_module("training.record", [str(run_dir)], run_dir, log)
    assert secret.read_text() == f"{SECRET}\n"
    # A plain log (missing at first) is created and appended to, as before.
    log.unlink()
    with safeio.open_append(log) as fh:
        fh.write(b"one\n")
    with safeio.open_append(log) as fh:
        fh.write(b"two\n")
    assert log.read_text() == "one\ntwo\n"


def test_store_documents_refuse_links(folder: RunStore, outside: Path) -> None:
    """run.json, status.json, config.yaml, a request, runner.json, a refusal note, and a
    source.yaml a killed runner left in a half-made run folder."""
    from runstore.config import ConfigError

    run_id = a_run(folder, "docs")
    p = folder.paths(run_id)
    assert folder.read_run(run_id) is not None and folder.read_config(run_id).env
    secret_json = outside / "doc.json"
    secret_json.write_text(json.dumps({"action": "stop", "at": 1, "source": SECRET}))
    for path in (p.run_json, p.status_json, folder.runner_json, folder.tensorboard_json):
        _link(path, secret_json)
    assert folder.read_run(run_id) is None and folder.read_status(run_id) is None
    assert folder.read_runner_info() is None and folder.read_tensorboard_info() is None
    _link(p.config, outside / "secret.txt")
    with pytest.raises(OSError, match="symbolic link"):
        folder.read_config(run_id)
    p.requests.mkdir(exist_ok=True)
    (p.requests / "1-stop.json").symlink_to(secret_json)
    valid, invalid = folder.pending_requests(run_id)
    assert valid == [] and [x.name for x in invalid] == ["1-stop.json"]
    queued = folder.submit("algo: nope\n", "bad.yaml")
    _link(queued.with_name("bad.yaml.error.txt"), outside / "secret.txt")
    note = folder.refusal_note(queued) or ""
    assert SECRET not in note and "symbolic link" in note
    # source.yaml: put back into the queue as the link it is, and intake refuses it.
    staging = folder.root / ".partial-20261124-031205-x-3f9a"
    staging.mkdir()
    (staging / "source.yaml").symlink_to(outside / "secret.txt")
    (restored,) = folder.recover_partial()
    with pytest.raises(ConfigError) as caught:
        folder.read_queue_file(restored)
    assert "symlink" in str(caught.value) and SECRET not in str(caught.value)


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_skip_event_and_monitor_files_that_are_links(run_dir: Path, outside: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from runstore import metrics

    def write(folder: Path, tag: str) -> Path:
        writer = EventFileWriter(str(folder))
        for step in range(3):
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(step))])
            writer.add_event(Event(step=step, wall_time=1e9 + step, summary=summary))
        writer.close()
        (path,) = folder.glob("*tfevents*")
        return path

    tb = run_dir / "tb" / "PPO_1"
    tb.mkdir(parents=True)
    write(tb, "train/loss")
    (outside / "tb").mkdir()
    elsewhere = write(outside / "tb", SECRET)
    (tb / "events.out.tfevents.1.planted").symlink_to(elsewhere)
    (outside / "monitor.csv").write_text('#{"t_start": 1}\nr,l,t\n1.0,10,0.5\n')
    (run_dir / "0.monitor.csv").symlink_to(outside / "monitor.csv")
    metrics.clear_cache()
    tags = set(metrics.load_scalars(run_dir)["tag"])
    assert tags == {"train/loss"}
    assert metrics.load_episodes(run_dir).height == 0


def test_unsafe_file_error_is_an_oserror_with_errno() -> None:
    from runstore import safeio

    exc = safeio.UnsafeFileError("/r/x", "is a symbolic link", "run/x")
    assert isinstance(exc, OSError) and exc.errno == errno.EPERM and exc.filename == "/r/x"
    assert str(exc) == "refused to read run/x: it is a symbolic link"
