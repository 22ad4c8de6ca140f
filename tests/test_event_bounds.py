"""Event files that are huge or lie about their lengths (issue 20, item 1).

Real event files (TensorBoard's own writer via ``torch.utils.tensorboard``), then damaged as a
hostile user would: a length header claiming 2**60 bytes with a valid CRC, and ``truncate -s
1G`` (valid records, then a sparse gigabyte of zeros). A load in a fresh child process returns
the valid scalars, reports the damage (pending while the file may still grow, damage once its
mtime is ``filestate.SETTLED_SECONDS`` old), in bounded time, and its peak RSS (the child's own
``ru_maxrss``) stays under ``RSS_LIMIT_MB`` and within ``GROWTH_LIMIT_MB`` of what it held
before the load. And a load of a healthy run is never held up by another run's parse.

Sparse files cost no disk; reading their zeros is fast (zero runs are skipped a page at a
time), so these run in ``make test``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from torch.utils.tensorboard import SummaryWriter

from runstore import metrics, tfrecord
from runstore.metrics import filestate, load

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
#: Peak RSS of a child process that loads one huge event file (it imports numba, numpy and
#: polars first: about 150-250 MB on its own).
RSS_LIMIT_MB = 400
#: What the load may add to the child's peak: the reader holds at most about 2 blocks and 2
#: records of a file (96 MiB, runstore.metrics.filestate), plus the decoded rows.
GROWTH_LIMIT_MB = 200
#: Generous: a sparse gigabyte reads in a second or two on a quiet machine.
SECONDS_LIMIT = 120.0
STEPS = 300
TAGS = ("train/loss", "rollout/ep_rew_mean")

CHILD = r"""
import json, os, resource, sys, time
from runstore import metrics
from runstore.metrics import filestate

def status_mb(key):
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith(key + ":"))
    return int(line.split()[1]) / 1024

def reset_peak():  # VmHWM back to VmRSS, so the peak is the load's own (Linux 4.0+)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False

def regions(report):
    return [[c.offset, c.pending, c.after_step] for c in report.corruptions]

metrics.load_scalars(sys.argv[2])  # warm up: numba kernels, polars, protobuf
filestate.SETTLED_SECONDS = 3600.0  # the file may still grow (however slow this start was)
was_reset = reset_peak()
before = status_mb("VmRSS")
t = time.monotonic()
frame, report = metrics.load_scalars_with_report(sys.argv[1])
took = time.monotonic() - t
# ru_maxrss is the peak since the start; VmHWM since the reset, where that worked
rusage = resource.getrusage(resource.RUSAGE_SELF)
peak = status_mb("VmHWM") if was_reset else rusage.ru_maxrss / 1024
out = {"rows": frame.height, "first": regions(report), "seconds": took,
       "before_mb": before, "peak_mb": peak}
filestate.SETTLED_SECONDS = 0.0  # the file has stopped growing: the same load says damage
frame, report = metrics.load_scalars_with_report(sys.argv[1])
out.update(settled=regions(report), settled_rows=frame.height, reparsed=report.bytes_parsed)
print(json.dumps(out))
"""


def write_run(folder: Path, steps: int = STEPS) -> Path:
    """A run folder with one real event file; returns the file."""
    tb = folder / "tb" / "train_1"
    with SummaryWriter(str(tb)) as w:
        for s in range(steps):
            for i, tag in enumerate(TAGS):
                w.add_scalar(tag, s * 0.5 + i, s * 100)
    (found,) = [p for p in tb.iterdir() if "tfevents" in p.name]
    return found


def length_header(length: int) -> bytes:
    head = struct.pack("<Q", length)
    return head + struct.pack("<I", masked_crc32c(head))


def load_in_child(run: Path, healthy: Path) -> dict:
    """Load ``run`` in a fresh process (after a warm-up load of ``healthy``): what it found,
    how long it took and its peak RSS before and after."""
    args = [sys.executable, "-c", CHILD, str(run), str(healthy)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    print(run.name, {k: v for k, v in got.items() if k.endswith(("mb", "seconds"))})
    return got


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("healthy")
    write_run(run, steps=20)
    return run


def check_bounded(got: dict, what: str) -> None:
    assert got["peak_mb"] < RSS_LIMIT_MB, f"{what}: peak RSS {got['peak_mb']:.0f} MB"
    growth = got["peak_mb"] - got["before_mb"]
    assert growth < GROWTH_LIMIT_MB, f"{what}: the load added {growth:.0f} MB"
    assert got["seconds"] < SECONDS_LIMIT, f"{what}: {got['seconds']:.1f} s"


def test_a_length_header_of_2_to_the_60_is_damage_in_bounded_memory(
    tmp_path: Path, healthy: Path
) -> None:
    """A record claiming 2**60 bytes (valid length CRC), then 512 MB: the reader used to wait
    for the record, doubling its buffer up to the whole file (1.2 GB RSS), reporting nothing.
    Now the header is damage at its offset: pending while the file may grow, then damage."""
    event = write_run(tmp_path)
    valid = event.stat().st_size
    with event.open("ab") as fh:
        fh.write(length_header(2**60) + os.urandom(4096))
    os.truncate(event, 512 * 1024 * 1024)

    got = load_in_child(tmp_path, healthy)
    check_bounded(got, "2**60 header")
    assert got["rows"] == got["settled_rows"] == STEPS * len(TAGS)
    assert got["first"] == [[valid, True, (STEPS - 1) * 100]]  # the file is fresh: pending
    assert got["settled"] == [[valid, False, (STEPS - 1) * 100]]  # stopped growing: damage
    assert got["reparsed"] == 0  # saying so needs no second read


def test_truncate_to_1g_returns_the_scalars_and_reports_damage_in_bounded_memory(
    tmp_path: Path, healthy: Path
) -> None:
    """``truncate -s 1G`` on a real event file (the Streamlit process used to peak at 2.3 GB
    and show no damage): the valid scalars, the zeros reported once the file stops growing."""
    event = write_run(tmp_path)
    valid = event.stat().st_size
    os.truncate(event, GIB)
    assert event.stat().st_blocks * 512 < 64 * 1024 * 1024  # sparse: costs no disk

    got = load_in_child(tmp_path, healthy)
    check_bounded(got, "1 GB sparse")
    assert got["rows"] == got["settled_rows"] == STEPS * len(TAGS)
    assert got["first"] == [[valid, True, (STEPS - 1) * 100]]
    assert got["settled"] == [[valid, False, (STEPS - 1) * 100]]


def test_damage_is_pending_while_the_file_is_fresh_and_damage_once_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule in this process, by the file's mtime: under SETTLED_SECONDS old it may be a
    write in flight; older, it is damage. A writer appending after the zeros closes it."""
    monkeypatch.setattr(filestate, "SETTLED_SECONDS", 600.0)  # not a race with a slow box
    run = tmp_path / "run"
    event = write_run(run, steps=10)
    valid = event.stat().st_size
    os.truncate(event, valid + 100_000)
    metrics.clear_cache()
    frame, report = metrics.load_scalars_with_report(run)
    assert len(frame) == 20 and [c.pending for c in report.corruptions] == [True]
    old = time.time() - filestate.SETTLED_SECONDS - 5
    os.utime(event, (old, old))
    frame, report = metrics.load_scalars_with_report(run)
    assert [(c.offset, c.pending) for c in report.corruptions] == [(valid, False)]
    assert report.bytes_parsed < 100  # the zeros were scanned once, not again

    more = tmp_path / "more"
    write_run(more, steps=3)
    (extra,) = (more / "tb" / "train_1").iterdir()
    with event.open("ab") as fh:  # a writer goes on after the damage: it closes there
        fh.write(extra.read_bytes())
    frame, report = metrics.load_scalars_with_report(run)
    assert report.records_parsed == 1 + 3 * len(TAGS)  # its version record and 6 scalars
    assert len(frame) == 20  # steps 0-200 again: the same (tag, step) pairs, newer values
    assert [(c.offset, c.pending) for c in report.corruptions] == [(valid, False)]


def watching(parse, seen: list[int]):
    def watched(state: filestate.FileState, buf: bytes, at_eof: bool) -> int:
        seen.append(len(buf))
        return parse(state, buf, at_eof)

    return watched


def test_a_block_boundary_inside_damage_reports_one_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage longer than a block, then valid records: one region, the records after it read,
    and what is kept between blocks never grows (at most one record, or 11 bytes)."""
    monkeypatch.setattr(filestate, "_BLOCK", 4096)
    monkeypatch.setattr(metrics.cache, "PERSIST_CACHE", False)
    first, second = tmp_path / "a", tmp_path / "b"
    head = write_run(first, steps=50).read_bytes()
    tail_file = write_run(second, steps=60)
    tail = tail_file.read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    target = run / tail_file.name
    target.write_bytes(head + length_header(2**60) + b"\x00" * 50_000 + b"\x07" * 999 + tail)
    seen: list[int] = []
    for name in ("_parse_block", "_scan_damage"):
        monkeypatch.setattr(filestate, name, watching(getattr(filestate, name), seen))
    metrics.clear_cache()
    frame, report = metrics.load_scalars_with_report(run)
    assert max(seen) <= 4096 + 100, max(seen)  # a block, and a cut record at most
    assert [c.offset for c in report.corruptions] == [len(head)]
    assert not report.corruptions[0].pending
    assert len(frame) == 60 * len(TAGS)  # the later file's values win per (tag, step)


def test_a_healthy_run_loads_while_another_runs_parse_is_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse of a huge file is held open (inside ``update_file``) until a load of another,
    healthy run has finished: with one lock over every parse, that load would wait for it and
    this would fail after the timeout; now it finishes first."""
    big, small = tmp_path / "big", tmp_path / "small"
    os.truncate(write_run(big), 2 * GIB)  # the 2 GB sparse file (96 s, 4.3 GB before)
    write_run(small, steps=10)
    metrics.clear_cache()
    in_parse, small_done = threading.Event(), threading.Event()
    original = load.update_file
    order: list[str] = []

    def held_open(state: filestate.FileState, st: os.stat_result) -> int:
        if state.path.startswith(str(big)):
            in_parse.set()
            small_done.wait(60)
        return original(state, st)

    monkeypatch.setattr(load, "update_file", held_open)

    def load_big() -> None:
        frame, report = metrics.load_scalars_with_report(big)
        assert len(frame) == STEPS * len(TAGS) and report.corruptions
        order.append("big")

    thread = threading.Thread(target=load_big)
    thread.start()
    try:
        assert in_parse.wait(60)
        t = time.monotonic()
        assert len(metrics.load_scalars(small)) == 10 * len(TAGS)
        order.append("small")
        small_seconds = time.monotonic() - t
    finally:
        small_done.set()
        thread.join(120)
    assert order == ["small", "big"], order
    assert small_seconds < 30


def test_the_cap_is_what_the_docs_say() -> None:
    assert tfrecord.MAX_RECORD_BYTES == 16 * 1024 * 1024
    assert filestate.SETTLED_SECONDS == 30.0
    assert metrics.settled(time.time_ns() - 31 * 10**9)
    assert not metrics.settled(time.time_ns() - 29 * 10**9)
