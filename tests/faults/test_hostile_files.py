"""Hostile files in real run folders: each is a problem on its own run, in bounded time and
memory (issue 20, "Bounded, tolerant reading").

One tiny CartPole run (with evaluation clips) is trained by the real runner and copied into
one run folder per hostile kind, planted while that runner keeps running:

- FIFOs where regular files belong: ``logs/trainer.log``, ``status.json``, an event file, a
  clip's mp4 and its sidecar;
- links to devices: ``status.json`` -> /dev/zero, an event file -> /dev/urandom, a clip ->
  /dev/zero;
- JSON nested 50,000 deep (valid, closed) in an extra key of run.json, status.json and a
  clip's sidecar;
- numbers no float holds: ``"timesteps": 10**400`` (an integer literal) and ``1e400`` in
  status.json;
- an event file made 1 GiB long (``truncate``: valid records, then sparse zeros; an hour old);
- names that are not UTF-8: a clip, an event file (cut, so its damage is reported under that
  name) and a stray request file.

Then each reader runs in a child process with a timeout (a hang fails the test and names the
kind it was reading) and its peak RSS (``ru_maxrss`` from ``wait4``) asserted, both whole and
over what the same child held after reading the intact run: ``runner ls``, the metrics loader
over every run, and the Runs, Run (every run) and Videos pages under Streamlit's AppTest. A
regression to reading a whole 1 GiB file (or /dev/zero) breaks the memory bound. The runner
started before the planting keeps stepping (no failed step, no traceback), takes a queue file
dropped afterwards and trains it, and exits with 0 on SIGTERM.

Found on its first run, fixed in ``runstore.metrics``: an event file that is a FIFO or a link
was skipped without a word (the curves silently missed it); a record cut short at the end of
a file that has stopped growing was never reported; a damaged event file whose name is not
UTF-8 was reported under a name no page can show; such a name in tb/ or videos/ broke the
Run, Videos and Compare pages through ``dashboard/data.py``'s cache keys (now bytes), which
``test_pages_show_names_that_are_not_utf8`` keeps fixed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from runstore import RunPaths, RunState, RunStore

from ..conftest import ROOT, Runs, cartpole, dashboard_on, wait_for
from .harness import LEDGER, copy_run

pytestmark = pytest.mark.faults

DEEP = 50_000
HUGE_INT = "1" + "0" * 400  # 10**400 written out: valid JSON, too big for a float or 64 bits
#: A stand-in mp4 under a name that is not UTF-8 (pages never decode clips).
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
GIB = 1024**3
#: Peak RSS of any one reader child (streamlit, polars, numba imported: about 250-400 MB
#: measured) and what the hostile runs may add to what the child held after the intact run.
#: Reading the 1 GiB event file, /dev/zero or /dev/urandom whole would break both.
RSS_LIMIT_MB = 600
GROWTH_LIMIT_MB = 200
BASE_EXTRA = "eval_every: 128\neval_episodes: 1\nvideo_every: 128\nkeep_checkpoints: 10\n"


def deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


def with_extra(doc: bytes, raw: str) -> bytes:
    """The JSON object ``doc`` with one more key whose value is the JSON text ``raw``."""
    return doc.rstrip()[:-1] + f', "hostile": {raw}}}'.encode()


def fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def link(path: Path, target: str) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def age(path: Path | bytes, seconds: float = 3600) -> None:
    """Stopped growing long ago: damage at its end is damage, not a record being written."""
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def newest_clip(p: RunPaths) -> Path:
    """The clip the Run page opens on (its slider starts at the newest)."""
    clips = sorted(p.videos.glob("step-*.mp4"))
    assert clips, "the base run recorded no clip"
    return clips[-1]


def _bytes_name(folder: Path, name: bytes, data: bytes) -> bytes:
    path = os.path.join(os.fsencode(folder), name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


#: Names that are not UTF-8 (``os.scandir`` gives them as lone surrogates) under tb/ and
#: videos/: the event file is cut mid-record, so its damage is reported under that name.
CLIP_BYTES = b"clip-\xff\xfe.mp4"
EVENT_BYTES = b"events.out.tfevents.\xff"


def _plant_bytes_names(p: RunPaths) -> list[bytes]:
    """The names planted in tb/ and videos/ (a stray request file is planted too)."""
    event = event_files_of(p)[-1]
    data = event.read_bytes()[:-7]  # cut mid-record: damage reported under this name
    planted = [_bytes_name(p.videos, CLIP_BYTES, FAKE_MP4)]
    planted.append(_bytes_name(event.parent, EVENT_BYTES, data))
    age(planted[-1])
    p.requests.mkdir(exist_ok=True)
    _bytes_name(p.requests, b"\xff.json", b"{}")
    return planted


def event_files_of(p: RunPaths) -> list[Path]:
    return sorted(p.tb.rglob("events.out.tfevents.*"))


def _huge_event(p: RunPaths) -> None:
    event = event_files_of(p)[-1]
    os.truncate(event, GIB)  # sparse: no disk
    age(event)


@dataclass(frozen=True)
class Kind:
    """One hostile kind: how it is planted in a copy of the base run, and how each reader
    must name it (text expected on its Run page; in ``runner ls``; whether the metrics
    report damage in an event file)."""

    plant: Callable[[RunPaths], object] | None = None
    run_json: Callable[[bytes], bytes] | None = None  # damage published with the copy
    page: str = ""
    ls: str = ""
    event_damage: bool = False


STATUS_PROBLEM = "status.json cannot be read"
STATUS_LS = "status.json is corrupt"
EVENT_PROBLEM = "Event files are damaged"
EVENT_REFUSED = "was not read: it is "

KINDS: dict[str, Kind] = {
    "fifo-log": Kind(lambda p: fifo(p.trainer_log), page="(FIFO)"),
    "fifo-status": Kind(lambda p: fifo(p.status_json), page=STATUS_PROBLEM, ls=STATUS_LS),
    "fifo-event": Kind(lambda p: fifo(event_files_of(p)[-1]), page=EVENT_REFUSED + "not a regular",
                       event_damage=True),
    "fifo-clip": Kind(
        lambda p: (fifo(newest_clip(p).with_suffix(".json")), fifo(newest_clip(p))),
        page="it is not a regular file",
    ),
    "zero-status": Kind(lambda p: link(p.status_json, "/dev/zero"), page=STATUS_PROBLEM,
                        ls=STATUS_LS),
    "urandom-event": Kind(lambda p: link(event_files_of(p)[-1], "/dev/urandom"),
                          page=EVENT_REFUSED + "a symbolic link", event_damage=True),
    "zero-clip": Kind(lambda p: link(newest_clip(p), "/dev/zero"), page="it is a symbolic link"),
    "deep-run": Kind(run_json=lambda doc: with_extra(doc, deep()), page="run.json is damaged",
                     ls="run.json is missing or corrupt"),
    "deep-status": Kind(
        lambda p: p.status_json.write_bytes(with_extra(p.status_json.read_bytes(), deep())),
        page=STATUS_PROBLEM, ls=STATUS_LS,
    ),
    "deep-clip": Kind(
        lambda p: (m := newest_clip(p).with_suffix(".json")).write_bytes(
            with_extra(m.read_bytes(), deep())
        ),
        page="is damaged",
    ),
    "huge-int-status": Kind(
        lambda p: p.status_json.write_text(f'{{"phase": "training", "timesteps": {HUGE_INT}}}'),
        page=STATUS_PROBLEM, ls=STATUS_LS,
    ),
    "huge-float-status": Kind(
        lambda p: p.status_json.write_text('{"phase": "training", "fps": 1e400}'),
        page=STATUS_PROBLEM, ls=STATUS_LS,
    ),
    "huge-event": Kind(_huge_event, page=EVENT_PROBLEM, event_damage=True),
    "bytes-names": Kind(_plant_bytes_names, event_damage=True),
}  # fmt: skip


# -- children: each reader in its own process, timed, its peak RSS measured --------------------


@dataclass
class Child:
    rc: int
    out: str
    peak_mb: float


def run_child(what: str, argv: list[str], timeout: float, env: dict | None = None) -> Child:
    """Python ``argv`` (a ``-c`` script that starts with ``PEAK``) in its own session; its
    peak RSS as it reports it at exit (VmHWM of its own image: ``wait4``'s ``ru_maxrss`` would
    count the peak of this pytest process too, whose memory a vfork'd child runs in until
    exec, 800 MB late in the whole suite). A child still running
    after ``timeout`` fails the test, naming the last ``reading KIND`` line it printed (the
    kind it hung on) and showing where it was (``faulthandler``'s stack, on SIGABRT: for
    ``runner ls``, which reads every run at once, the reader that blocked)."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-{os.getpid()}-{time.time_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [argv[0], "-X", "faulthandler", *argv[1:]], stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while True:
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGABRT)  # faulthandler prints the stack, then dies
                time.sleep(1)
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                text = log.read_text(errors="replace")
                reading = [line for line in text.splitlines() if line.startswith("reading ")]
                hung_on = reading[-1] if reading else "(before the first kind)"
                pytest.fail(f"{what} hung for {timeout:.0f} s on {hung_on}:\n{text[-3000:]}")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out = log.read_text(errors="replace")
        peaks = [line.split()[1] for line in out.splitlines() if line.startswith(PEAK_LINE)]
        assert peaks, f"{what} did not report its peak RSS:\n{out[-3000:]}"
        return Child(proc.returncode, out, float(peaks[-1]))
    finally:
        log.unlink(missing_ok=True)


def check_memory(what: str, child: Child, baseline_mb: float | None = None) -> None:
    print(f"{what}: peak RSS {child.peak_mb:.0f} MB (after the intact run: {baseline_mb} MB)")
    assert child.peak_mb < RSS_LIMIT_MB, f"{what}: peak RSS {child.peak_mb:.0f} MB"
    if baseline_mb is not None:
        growth = child.peak_mb - baseline_mb
        assert growth < GROWTH_LIMIT_MB, f"{what}: {growth:.0f} MB over the intact run's"


def result(child: Child) -> dict:
    """The JSON line a child printed last."""
    lines = [line for line in child.out.splitlines() if line.startswith("{")]
    assert child.rc == 0 and lines, child.out[-4000:]
    return json.loads(lines[-1])


PEAK_LINE = "peak-mb "
#: Every child starts with this: its own peak RSS (VmHWM, this image's high-water mark)
#: printed as its last line at exit.
VMHWM = """
import atexit
def vmhwm_mb():
    with open("/proc/self/status") as fh:
        return int(next(x for x in fh if x.startswith("VmHWM:")).split()[1]) / 1024
atexit.register(lambda: print("%s%.1f" % (PEAK_LINE, vmhwm_mb()), flush=True))
""".replace("PEAK_LINE", repr(PEAK_LINE))
LS_CHILD = VMHWM + "import sys\nfrom runner.cli import main\nsys.exit(main(sys.argv[1:]))\n"

METRICS_CHILD = VMHWM + textwrap.dedent("""
    import json, sys
    from runstore import metrics
    out, baseline = {}, None
    for kind, run_dir in json.loads(sys.argv[1]):
        print("reading", kind, flush=True)
        frame, report = metrics.load_scalars_with_report(run_dir)
        out[kind] = {
            "rows": frame.height,
            "damage": [[c.path.encode("utf-8", "surrogateescape").decode("latin-1"),
                        c.offset, c.pending] for c in report.corruptions],
        }
        if baseline is None:
            baseline = vmhwm_mb()
    print(json.dumps({"runs": out, "baseline_mb": baseline}))
""")

PAGES_CHILD = VMHWM + textwrap.dedent("""
    import json, sys
    from streamlit.testing.v1 import AppTest
    APP, runs = sys.argv[1], json.loads(sys.argv[2])

    def shown(at):
        parts = []
        for kind in ("title", "markdown", "text", "code", "caption", "error", "warning",
                     "info"):
            parts += [str(e.value) for e in getattr(at, kind)]
        parts += [str(e.label) for e in at.get("expandable")]
        parts += [str(e.value) for e in at.sidebar.error]
        for frame in at.dataframe:
            parts.append(frame.value.to_csv())
        return "\\n".join(parts)

    def page(at, name):
        at.switch_page(name).run()
        return {"exception": [e.message for e in at.exception], "text": shown(at)}

    out, baseline = {}, None
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    for kind, run_id in runs:  # the intact run first: the baseline
        print("reading", kind, "(Run page)", flush=True)
        at.query_params["run"] = run_id
        out[kind] = page(at, "app_pages/run.py")
        if baseline is None:
            baseline = vmhwm_mb()
    print("reading every run (Runs page)", flush=True)
    out["Runs page"] = page(at, "app_pages/runs.py")
    print("reading every clip (Videos page)", flush=True)
    out["Videos page"] = videos = page(at, "app_pages/videos.py")
    pager = [n for n in at.number_input if n.key == "videos_page"]
    for number in range(2, int(pager[0].max) + 1 if pager else 0):  # 12 clips a page
        at.number_input(key="videos_page").set_value(number).run()
        videos["exception"] += [e.message for e in at.exception]
        videos["text"] += "\\n" + shown(at)
    print(json.dumps({"pages": out, "baseline_mb": baseline}))
""")


# -- the trial --------------------------------------------------------------------------------


def plant_all(store: RunStore, base: str) -> dict[str, str]:
    """A copy of ``base`` per kind (kind -> run id), each with its hostile file planted."""
    doc = store.paths(base).run_json.read_bytes()
    planted = {}
    for name, kind in KINDS.items():
        damage = kind.run_json(doc) if kind.run_json else None
        planted[name] = run_id = copy_run(store, base, name, run_json=damage)
        if kind.plant is not None:
            kind.plant(store.paths(run_id))
    return planted


def event_dirs(store: RunStore, planted: dict[str, str]) -> list[Path]:
    """The folders of the non-UTF-8 run's event files."""
    return sorted({e.parent for e in event_files_of(store.paths(planted["bytes-names"]))})


def ls(store: RunStore) -> tuple[dict[str, str], Child]:
    child = run_child(
        "runner ls",
        [sys.executable, "-c", LS_CHILD, "ls", "--runs-dir", str(store.root)],
        timeout=60,
    )
    assert child.rc == 0, child.out[-4000:]
    rows = [row for row in child.out.splitlines()[1:] if not row.startswith(PEAK_LINE)]
    return {row.split()[0]: row for row in rows}, child


@pytest.mark.timeout(900)
def test_hostile_files_are_a_problem_on_their_run_in_bounded_time_and_memory(
    runs: Runs, tmp_path: Path
) -> None:
    runner = runs.runner("--poll", "0.2")
    runs.submit(cartpole(steps=384, ckpt=128, extra=BASE_EXTRA), "base.yaml")
    base = runs.only_run()
    runs.wait_state(base, RunState.COMPLETED, timeout=300)
    store = runs.store
    intact_ls, intact_ls_child = ls(store)  # the baseline: one intact run
    assert set(intact_ls) == {base}

    planted = plant_all(store, base)
    runs.submit(cartpole(steps=128, ckpt=128), "after.yaml")  # taken while the kinds sit there
    LEDGER.trials += 1
    LEDGER.fault("hostile files", len(KINDS))

    # runner ls: every run, each damaged document named on its row.
    rows, ls_child = ls(store)
    check_memory("runner ls", ls_child, intact_ls_child.peak_mb)
    assert set(planted.values()) | {base} <= set(rows), rows
    for name, kind in KINDS.items():
        if kind.ls:
            assert kind.ls in rows[planted[name]], (name, rows[planted[name]])

    # The metrics loader over every run: returns, damage named in the bad event files.
    order = [("intact", base), *planted.items()]
    dirs = [(name, str(store.paths(run_id).dir)) for name, run_id in order]
    metrics_child = run_child(
        "the metrics loader",
        [sys.executable, "-c", METRICS_CHILD, json.dumps(dirs)],
        timeout=180,
    )
    got = result(metrics_child)
    check_memory("the metrics loader", metrics_child, got["baseline_mb"])
    intact_rows = got["runs"]["intact"]["rows"]
    assert intact_rows > 0 and not got["runs"]["intact"]["damage"]
    for name, kind in KINDS.items():
        found = got["runs"][name]
        if kind.event_damage:
            assert found["damage"], f"{name}: the bad event file is not reported"
            assert all(not pending for _, _, pending in found["damage"]), (name, found)
        else:
            assert found == {"rows": intact_rows, "damage": []}, (name, found)
    assert [o for _, o, _ in got["runs"]["huge-event"]["damage"]][0] < GIB
    # A name that is not UTF-8 is shown with its bytes written out.
    shown = [Path(path).name for path, _, _ in got["runs"]["bytes-names"]["damage"]]
    assert "events.out.tfevents.\\xff" in shown, shown

    # The pages: no exception, every kind shown as a problem of its run.
    env = {**os.environ, "RETRO_ML_RUNS_DIR": str(store.root), "RETRO_ML_NO_AUTOSTART": "1"}
    env.pop("RETRO_ML_PASSWORD", None)
    app = str(ROOT / "dashboard" / "app.py")
    pages_child = run_child(
        "the dashboard",
        [sys.executable, "-c", PAGES_CHILD, app, json.dumps(order)],
        timeout=360,
        env=env,
    )
    got = result(pages_child)
    check_memory("the dashboard", pages_child, got["baseline_mb"])
    pages = got["pages"]
    for name, shown in pages.items():
        assert not shown["exception"], (name, shown["exception"])
    for name, kind in KINDS.items():
        assert kind.page in pages[name]["text"], (name, kind.page, pages[name]["text"][-3000:])
    runs_page = pages["Runs page"]["text"]
    assert f"Run `{planted['deep-run']}`: its run.json is damaged" in runs_page
    for name in KINDS:
        assert name in runs_page or name == "deep-run", name
    videos = pages["Videos page"]["text"]
    for problem in ("it is not a regular file", "it is a symbolic link", "is damaged"):
        assert problem in videos, problem

    # The runner went on: the queue file dropped after the planting trained, no step failed.
    after = wait_for(
        lambda: [i for i in store.run_ids() if i not in planted.values() and i != base],
        60,
        "the queue file dropped after the planting to become a run",
    )
    runs.wait_state(after[0], RunState.COMPLETED, timeout=300)
    with open(f"/proc/{runner.proc.pid}/status") as fh:
        runner_mb = int(next(x for x in fh if x.startswith("VmHWM:")).split()[1]) / 1024
    assert runner_mb < RSS_LIMIT_MB, f"the runner: peak RSS {runner_mb:.0f} MB"
    runner.proc.send_signal(signal.SIGTERM)
    assert runner.proc.wait(timeout=30) == 0, runner.output()[-3000:]
    output = runner.output()
    assert "step failed" not in output and "Traceback" not in output, output[-3000:]
    LEDGER.note(
        f"hostile files: peak RSS runner ls {ls_child.peak_mb:.0f} MB, metrics "
        f"{metrics_child.peak_mb:.0f} MB, pages {pages_child.peak_mb:.0f} MB, "
        f"runner {runner_mb:.0f} MB"
    )


@pytest.mark.timeout(300)
def test_pages_show_names_that_are_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Run, Videos and Compare pages of a run whose tb/ and videos/ hold names that are not
    UTF-8 (the trial above takes them away before its pages): no exception, the damaged event
    file named with its bytes written out. No training: a run folder and an event file written
    by TensorBoard's own writer."""
    from streamlit.testing.v1 import AppTest

    from tests.test_bounded_reads import _events, new_run

    store = dashboard_on(tmp_path / "runs", monkeypatch)
    run_id = new_run(store, "bytes-names")
    p = store.paths(run_id)
    _events(p.tb / "PPO_1", [("episode/return", step, 1.0) for step in range(1, 20)])
    _plant_bytes_names(p)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.query_params["run"] = run_id
    at.switch_page("app_pages/run.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("events.out.tfevents.\\xff" in w.value for w in at.warning)
    for page in ("app_pages/videos.py", "app_pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
