"""runstore.metrics against TensorBoard's own reader, on real event files.

The oracle is ``EventAccumulator`` (all data kept, ``size_guidance`` 0) reading the same
files; faults (cut, flipped, replaced, resumed files) are made on real bytes written by real
writers (``torch.utils.tensorboard``, SB3, TensorBoard's ``EventFileWriter``).
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util
from torch.utils.tensorboard import SummaryWriter

from runstore import metrics
from runstore.metrics import (
    load_episodes,
    load_scalars,
    load_scalars_with_report,
)

SCHEMA = metrics.SCALARS_SCHEMA


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Each test starts like a new process (the Parquet caches on disk stay)."""
    metrics.clear_cache()


# --- helpers --------------------------------------------------------------------------------


def accumulator(folder: Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def ea_scalars(folder: Path) -> pl.DataFrame:
    """What TensorBoard shows as scalars: simple values, plus tensors of the scalars plugin."""
    acc = accumulator(folder)
    rows = [
        (t, e.step, e.wall_time, e.value) for t in acc.Tags()["scalars"] for e in acc.Scalars(t)
    ]
    for tag in acc.Tags()["tensors"]:
        meta = acc.summary_metadata.get(tag)  # first-seen metadata decides, as in TensorBoard
        if meta is None or meta.plugin_data.plugin_name != "scalars":
            continue
        for e in acc.Tensors(tag):
            value = float(tensor_util.make_ndarray(e.tensor_proto).item())
            rows.append((tag, e.step, e.wall_time, value))
    return pl.DataFrame(rows, schema=SCHEMA, orient="row").sort("tag", "step", maintain_order=True)


def event_file(folder: Path) -> Path:
    (found,) = [p for p in folder.rglob("*") if "tfevents" in p.name]
    return found


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(header offset, payload length) of every TFRecord in a file."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, length))
        pos += length + 16
    return out


def write_scalars(
    folder: Path, steps: range | list[int], tags: tuple[str, ...] = ("a", "b"), offset: float = 0.0
) -> None:
    with SummaryWriter(str(folder)) as w:
        for s in steps:
            for i, tag in enumerate(tags):
                w.add_scalar(tag, s * 0.5 + i + offset, s)


# --- equality with TensorBoard --------------------------------------------------------------


def test_summary_writer_files_match_event_accumulator(tmp_path: Path) -> None:
    """Old-style and new-style scalars, big and negative steps, unicode and long tags, NaN/inf,
    and non-scalar records (text, histogram, image) that must be skipped."""
    run = tmp_path / "run"
    long_tag = "x" * 200  # longer than one protobuf length byte: goes the protobuf way
    with SummaryWriter(str(run / "tb" / "PPO_1")) as w:
        w.add_text("config", "hello", 0)
        for i, s in enumerate([0, 1, 127, 128, 16_383, 16_384, 2**31 + 5, 2**40, -3]):
            w.add_scalar("train/loss", 1.0 / (i + 1), s)
            w.add_scalar("ünïcode/ß", -float(i), s)
            w.add_scalar(long_tag, i * 2.5, s)
            w.add_scalar("new_style", i * 0.25, s, new_style=True)
            w.add_scalar("new_style_double", i * 0.1, s, new_style=True, double_precision=True)
        w.add_scalar("special", float("nan"), 1)
        w.add_scalar("special", float("inf"), 2)
        w.add_scalar("special", -0.0, 3)
        w.add_histogram("weights", np.arange(50_000, dtype=np.float64), 5)
        w.add_image("frame", np.random.default_rng(0).random((3, 200, 200)), 5)
    got = load_scalars(run)
    want = ea_scalars(run / "tb" / "PPO_1")
    assert set(got["tag"]) == {
        "train/loss",
        "ünïcode/ß",
        long_tag,
        "new_style",
        "new_style_double",
        "special",
    }
    assert_frame_equal(got, want)


def test_random_scalar_events_match_event_accumulator(tmp_path: Path) -> None:
    """Many tags, steps and values through TensorBoard's own writer."""
    rng = np.random.default_rng(7)
    tags = [f"t{i}/" + "m" * int(rng.integers(0, 120)) for i in range(12)]
    writer = EventFileWriter(str(tmp_path))
    for tag in tags:
        steps = rng.choice(10**12, size=40, replace=False) - 10**6
        for step in steps:
            value = float(rng.standard_normal() * 10.0 ** rng.integers(-30, 30))
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))
    writer.close()
    assert_frame_equal(load_scalars(tmp_path), ea_scalars(tmp_path))


def test_reading_in_small_blocks_gives_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big files are read block by block: records cut at block edges and records bigger than
    a block must come out the same."""
    with SummaryWriter(str(tmp_path)) as w:
        for s in range(300):
            w.add_scalar("loss", s * 0.5, s)
            if s % 100 == 0:
                w.add_histogram("big", np.arange(20_000, dtype=np.float64) + s, s)
            w.add_scalar("tensor", s * 0.25, s, new_style=True)
    monkeypatch.setattr(metrics.filestate, "_BLOCK", 1000)
    monkeypatch.setattr(metrics.cache, "PERSIST_CACHE", False)
    got, report = load_scalars_with_report(tmp_path)
    assert report.corrupt_records == 0 and len(got) == 600
    assert_frame_equal(got, ea_scalars(tmp_path))


@pytest.fixture(scope="module")
def sb3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, short PPO CartPole run with TensorBoard logging and Monitor files."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    run = tmp_path_factory.mktemp("sb3")
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, monitor_dir=str(run / "monitor"))
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=128,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        tensorboard_log=str(run / "tb"),
    )
    model.learn(total_timesteps=2048)
    env.close()
    return run


def test_sb3_ppo_run_matches_event_accumulator(sb3_run: Path) -> None:
    got = load_scalars(sb3_run)
    assert {"rollout/ep_rew_mean", "train/loss", "time/fps"} <= set(got["tag"])
    assert_frame_equal(got, ea_scalars(sb3_run / "tb" / "PPO_1"))


def test_tensor_scalars_from_tensorboard_summary_api(tmp_path: Path) -> None:
    """TF2-style scalars: a tensor value, the "scalars" metadata on a tag's first event only."""
    writer = EventFileWriter(str(tmp_path))
    for step in range(30):
        for tag, value in (("eval/return", step * 1.5), ("eval/len", 100.0 - step)):
            summary = scalar_pb(tag, value)
            if step:
                summary.value[0].ClearField("metadata")
            writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))
        double = scalar_pb("eval/double", 0.0)
        double.value[0].tensor.CopyFrom(
            TensorProto(dtype=2, tensor_content=np.float64(step / 3).tobytes())
        )
        writer.add_event(Event(wall_time=time.time(), step=step, summary=double))
        text = Summary(value=[Summary.Value(tag="note", tensor=TensorProto(dtype=7))])
        writer.add_event(Event(wall_time=time.time(), step=step, summary=text))
    writer.close()
    got = load_scalars(tmp_path)
    assert set(got["tag"]) == {"eval/return", "eval/len", "eval/double"}
    assert got.filter(pl.col("tag") == "eval/return")["value"].to_list() == [
        s * 1.5 for s in range(30)
    ]
    assert_frame_equal(got, ea_scalars(tmp_path))


# --- writers mid-append and damaged files ---------------------------------------------------


def test_truncated_last_record_is_read_once_complete(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_scalars(src, range(10))
    full = event_file(src).read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    target = run / event_file(src).name
    target.write_bytes(full[:-20])  # the writer is mid-way through the last record

    last_head, last_len = record_offsets(event_file(src))[-1]
    first, report = load_scalars_with_report(run)
    assert report.corrupt_records == 0 and report.bytes_parsed == last_head
    assert len(first) == 19 and first.filter(pl.col("tag") == "b")["step"].max() == 8

    with target.open("ab") as fh:
        fh.write(full[-20:])
    second, report = load_scalars_with_report(run)
    assert report.records_parsed == 1  # only the completed record, nothing before it again
    assert report.bytes_parsed == last_len + 16
    assert_frame_equal(second, ea_scalars(src))


def test_a_record_cut_short_is_damage_once_the_file_stops_growing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer mid-record is no damage; the same bytes in a file unchanged for
    ``SETTLED_SECONDS`` were cut (a copy cut short, a disk that filled): the curve stops
    there and the report says where, also for a run remembered from an earlier load."""
    from runstore.metrics import filestate

    write_scalars(tmp_path, range(10))
    path = event_file(tmp_path)
    last_head, _ = record_offsets(path)[-1]
    path.write_bytes(path.read_bytes()[:-7])
    frame, report = load_scalars_with_report(tmp_path)
    assert len(frame) == 19 and report.corruptions == ()
    monkeypatch.setattr(filestate, "SETTLED_SECONDS", 0.0)  # as if 30 s had passed
    frame, report = load_scalars_with_report(tmp_path)
    assert len(frame) == 19 and report.from_cache  # the file is unchanged: remembered
    assert [(c.offset, c.after_step, c.pending) for c in report.corruptions] == [
        (last_head, 9, False)
    ]


@pytest.mark.timeout(30)
def test_event_files_that_are_not_regular_files_are_reported_unread(tmp_path: Path) -> None:
    """A FIFO, or a link (to /dev/urandom), named like an event file is never opened (a FIFO
    would block, a device never ends) and is reported, so a curve missing that file says so;
    a name that is not UTF-8 is reported with its bytes written out (pages show it)."""
    write_scalars(tmp_path, range(5))
    os.mkfifo(tmp_path / "events.out.tfevents.1.fifo")
    (tmp_path / "events.out.tfevents.2.link").symlink_to("/dev/urandom")
    os.mkfifo(os.path.join(os.fsencode(tmp_path), b"events.out.tfevents.3.\xff"))
    frame, report = load_scalars_with_report(tmp_path)
    assert len(frame) == 10 and report.files == 1
    refused = {Path(c.path).name: (c.offset, c.pending, c.refused) for c in report.corruptions}
    assert refused == {
        "events.out.tfevents.1.fifo": (0, False, "is not a regular file (FIFO)"),
        "events.out.tfevents.2.link": (0, False, "is a symbolic link"),
        "events.out.tfevents.3.\\xff": (0, False, "is not a regular file (FIFO)"),
    }
    _, again = load_scalars_with_report(tmp_path)  # unchanged: remembered, still reported
    assert again.from_cache and again.corruptions == report.corruptions


def test_flipped_payload_byte_is_skipped_counted_and_later_records_read(tmp_path: Path) -> None:
    write_scalars(tmp_path, range(20))
    path = event_file(tmp_path)
    intact = ea_scalars(tmp_path)
    offsets = record_offsets(path)
    head, length = offsets[21]  # step 10, tag "a" (record 0 is the file version)
    data = bytearray(path.read_bytes())
    data[head + 12 + length // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    got, report = load_scalars_with_report(tmp_path)
    assert report.corrupt_records == 1
    (region,) = report.corruptions
    assert region.offset == head and region.after_step == 9 and not region.pending
    expected = intact.filter(~((pl.col("tag") == "a") & (pl.col("step") == 10)))
    assert_frame_equal(got, expected)
    assert got.filter(pl.col("tag") == "a")["step"].max() == 19  # TensorBoard would stop at 9


def test_flipped_length_byte_resyncs_on_the_next_record(tmp_path: Path) -> None:
    write_scalars(tmp_path, range(20))
    path = event_file(tmp_path)
    intact = ea_scalars(tmp_path)
    head, _ = record_offsets(path)[31]  # step 15, tag "a"
    data = bytearray(path.read_bytes())
    data[head] ^= 0x40  # the length is wrong now; its CRC says so
    path.write_bytes(bytes(data))

    got, report = load_scalars_with_report(tmp_path)
    assert report.corrupt_records == 1 and report.corruptions[0].offset == head
    expected = intact.filter(~((pl.col("tag") == "a") & (pl.col("step") == 15)))
    assert_frame_equal(got, expected)


def test_a_tag_that_is_not_utf8_is_an_undecodable_record(tmp_path: Path) -> None:
    """Its CRCs are fine and its shape is the common one, but protobuf rejects the tag: the
    record is counted as damage like any other undecodable one; its neighbours are read."""

    def record(tag: str, step: int) -> bytes:
        ev = Event(wall_time=1.5, step=step, summary=Summary(value=[Summary.Value(tag=tag)]))
        ev.summary.value[0].simple_value = step / 2
        payload = ev.SerializeToString().replace(b"\x0a\x01q", b"\x0a\x01\xff")
        head = struct.pack("<Q", len(payload))
        return (
            head
            + struct.pack("<I", masked_crc32c(head))
            + payload
            + struct.pack("<I", masked_crc32c(payload))
        )

    (tmp_path / "events.out.tfevents.1.host").write_bytes(
        record("a", 1) + record("q", 2) + record("a", 3)
    )
    got, report = load_scalars_with_report(tmp_path)
    assert got["tag"].to_list() == ["a", "a"] and got["step"].to_list() == [1, 3]
    assert report.corrupt_records == 1 and report.corruptions[0].after_step == 1


def test_damage_at_the_end_is_retried_not_skipped(tmp_path: Path) -> None:
    """A bad last record may be a write in flight: reported as pending, read once it is good."""
    write_scalars(tmp_path, range(5))
    path = event_file(tmp_path)
    good = path.read_bytes()
    head, length = record_offsets(path)[-1]
    bad = bytearray(good)
    bad[head + 12 + 3] ^= 0x01
    path.write_bytes(bytes(bad))

    got, report = load_scalars_with_report(tmp_path)
    assert len(got) == 9 and report.corrupt_records == 1 and report.corruptions[0].pending

    with path.open("r+b") as fh:  # the same inode, now with the right bytes
        fh.seek(head)
        fh.write(good[head:])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    got, report = load_scalars_with_report(tmp_path)
    assert report.corrupt_records == 0 and report.records_parsed == 1
    assert_frame_equal(got, ea_scalars(tmp_path))


def test_append_parses_only_new_bytes_and_unchanged_costs_nothing(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    for s in range(50):
        w.add_scalar("loss", s * 0.1, s)
    w.flush()
    path = event_file(tmp_path)
    df, report = load_scalars_with_report(tmp_path)
    assert len(df) == 50 and report.records_parsed == 51  # + the file-version record

    again, report = load_scalars_with_report(tmp_path)
    assert report.from_cache and report.records_parsed == 0 and again is df

    size_before = path.stat().st_size
    for s in range(50, 60):
        w.add_scalar("loss", s * 0.1, s)
    w.flush()
    df, report = load_scalars_with_report(tmp_path)
    assert report.records_parsed == 10
    assert report.bytes_parsed == path.stat().st_size - size_before
    assert df["step"].to_list() == list(range(60))
    w.close()
    assert_frame_equal(df, ea_scalars(tmp_path))


def test_live_appends_are_spliced_in_and_equal_a_full_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll of a live run merges only the appended rows, and the result is exactly what a
    fresh full load of the same bytes gives, through new tags, steps that go back and a
    SessionLog.START (which must fall back to the full merge)."""
    merges = []
    real_merge = metrics.merge.merge_timeline
    monkeypatch.setattr(
        metrics.merge, "merge_timeline", lambda *a, **k: merges.append(1) or real_merge(*a, **k)
    )
    tb = tmp_path / "run" / "tb"
    write_scalars(tb, range(0, 40), offset=1000.0)  # the crashed session
    time.sleep(0.01)
    w = SummaryWriter(str(tb))
    step = 20  # resumed from a checkpoint at 20
    spliced = 0
    for round_no in range(14):
        tags = ("a", "b") if round_no < 6 else ("a", "b", "c")  # "c" is new in round 6
        if round_no == 9:
            step -= 5  # a step that goes back: the last write of a step must win
        if round_no == 11:
            w._get_file_writer().add_event(
                Event(step=step - 8, wall_time=time.time(), session_log=SessionLog(status=1))
            )
        for s in range(step, step + 7):
            for i, tag in enumerate(tags):
                w.add_scalar(tag, s * 0.25 + i + round_no, s)
        step += 7
        w.flush()
        before = len(merges)
        got = load_scalars(tmp_path / "run")
        spliced += len(merges) == before
        copy = tmp_path / f"copy{round_no}"
        shutil.copytree(tmp_path / "run", copy)
        assert_frame_equal(got, load_scalars(copy))
    w.close()
    assert spliced == 10  # all but the first load and rounds 6, 9 and 11
    assert got.filter(pl.col("tag") == "a")["step"].is_sorted()


def test_replaced_or_shrunk_event_file_is_read_again_from_zero(tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_scalars(other, range(3), tags=("z",))
    run = tmp_path / "run"
    write_scalars(run, range(30))
    path = event_file(run)
    assert len(load_scalars(run)) == 60

    head, _ = record_offsets(path)[21]  # keep the file version and steps 0..9
    os.truncate(path, head)  # the same inode, shrunk
    assert load_scalars(run)["step"].to_list() == [*range(10), *range(10)]

    replacement = run / "replacement.tmp"
    shutil.copyfile(event_file(other), replacement)
    os.replace(replacement, path)  # a new inode, shorter, under the old name
    got = load_scalars(run)
    assert got["tag"].to_list() == ["z", "z", "z"]


# --- the Parquet cache ----------------------------------------------------------------------


@pytest.fixture
def cache_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' files are a few KB; below ``PERSIST_MIN_BYTES`` no cache would be written."""
    monkeypatch.setattr(metrics.cache, "PERSIST_MIN_BYTES", 0)


def test_only_files_worth_it_get_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.cache, "PERSIST_MIN_BYTES", 64 * 1024)  # the rule, on smaller files
    small, large = tmp_path / "small", tmp_path / "large"
    write_scalars(small, range(40))
    write_scalars(large, range(3000))  # 2 tags x 3,000 records: over 64 KiB
    assert event_file(small).stat().st_size < metrics.cache.PERSIST_MIN_BYTES
    assert event_file(large).stat().st_size >= metrics.cache.PERSIST_MIN_BYTES
    load_scalars(small)
    load_scalars(large)
    metrics.wait_for_cache_writes()
    assert not [p for p in small.iterdir() if p.name.endswith(".parquet")]
    _cache_of(large)
    metrics.clear_cache()
    assert load_scalars_with_report(large)[1].records_parsed == 0


@pytest.mark.usefixtures("cache_small_files")
def test_parquet_cache_serves_a_fresh_process(tmp_path: Path) -> None:
    write_scalars(tmp_path, range(40))
    first = load_scalars(tmp_path)
    metrics.wait_for_cache_writes()
    caches = [p for p in tmp_path.iterdir() if p.name.endswith(".parquet")]
    assert len(caches) == 1 and "tfevents" not in caches[0].name  # TensorBoard ignores it
    metrics.clear_cache()
    second, report = load_scalars_with_report(tmp_path)
    assert report.records_parsed == 0 and not report.from_cache
    assert_frame_equal(second, first)
    assert_frame_equal(ea_scalars(tmp_path), first)  # TensorBoard is not confused by the cache


def _cache_of(folder: Path) -> Path:
    metrics.wait_for_cache_writes()
    (cache,) = [p for p in folder.iterdir() if p.name.endswith(".parquet")]
    return cache


@pytest.mark.usefixtures("cache_small_files")
def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    write_scalars(tmp_path, range(40))
    want = load_scalars(tmp_path)
    cache = _cache_of(tmp_path)
    data = bytearray(cache.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"garbage!"
    cache.write_bytes(bytes(data[: len(data) - 5]))
    metrics.clear_cache()
    got, report = load_scalars_with_report(tmp_path)
    assert report.records_parsed == 81
    assert_frame_equal(got, want)
    metrics.clear_cache()  # and the rebuilt cache is good again
    assert load_scalars_with_report(tmp_path)[1].records_parsed == 0


@pytest.mark.usefixtures("cache_small_files")
def test_foreign_or_stale_cache_is_ignored(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_scalars(a, range(40), offset=100.0)
    write_scalars(b, range(40))
    load_scalars(a)
    load_scalars(b)
    # Foreign: b's events with a's cache under b's cache name.
    shutil.copyfile(_cache_of(a), _cache_of(b))
    metrics.clear_cache()
    assert_frame_equal(load_scalars(b), ea_scalars(b))
    # Stale: the event file was rewritten with other content after the cache was written.
    cache = _cache_of(b).read_bytes()
    write_scalars(tmp_path / "c", range(40), offset=-7.0)
    os.replace(event_file(tmp_path / "c"), event_file(b))
    _cache_of(b).write_bytes(cache)
    metrics.clear_cache()
    got, report = load_scalars_with_report(b)
    assert report.records_parsed == 81
    assert_frame_equal(got, ea_scalars(b))


# --- resumed runs ---------------------------------------------------------------------------


def test_resumed_run_overlapping_files_latest_write_wins(tmp_path: Path) -> None:
    tb = tmp_path / "tb" / "PPO_1"
    write_scalars(tb, range(0, 100), offset=1000.0)  # crashed session: steps 0..99
    time.sleep(0.01)
    write_scalars(tb, range(60, 150))  # resumed from the checkpoint at 60
    got = load_scalars(tmp_path)
    for tag, i in (("a", 0), ("b", 1)):
        series = got.filter(pl.col("tag") == tag)
        assert series["step"].to_list() == list(range(150))
        values = series["value"].to_list()
        assert values[:60] == [s * 0.5 + i + 1000.0 for s in range(60)]
        assert values[60:] == [s * 0.5 + i for s in range(60, 150)]


def test_resume_at_other_steps_leaves_no_zigzag(tmp_path: Path) -> None:
    """The resumed process logs at other steps than the crashed one: nothing of the crashed
    session past the resume point may stay between the new points."""
    tb = tmp_path / "tb"
    write_scalars(tb, range(0, 100, 4), tags=("loss",), offset=1000.0)
    time.sleep(0.01)
    write_scalars(tb, range(50, 120, 5), tags=("loss",))
    got = load_scalars(tmp_path)
    assert got["step"].to_list() == list(range(0, 50, 4)) + list(range(50, 120, 5))
    assert (got.filter(pl.col("step") >= 50)["value"] < 1000).all()


def _write_session(folder: Path, steps: range, resume_at: int | None, offset: float) -> None:
    w = SummaryWriter(str(folder))
    if resume_at is not None:  # what training/callbacks.py writes on resume
        w._get_file_writer().add_event(
            Event(
                step=resume_at,
                wall_time=time.time(),
                session_log=SessionLog(status=SessionLog.START),
            )
        )
    for s in steps:
        w.add_scalar("loss", s + offset, s)
        if s % 10 == 0:
            w.add_scalar("sparse", s + offset, s)
    w.close()


def test_session_log_start_in_a_later_file_purges_like_tensorboard(tmp_path: Path) -> None:
    tb = tmp_path / "tb" / "PPO_1"
    _write_session(tb, range(0, 95), None, offset=1000.0)
    time.sleep(0.01)
    _write_session(tb, range(70, 75), resume_at=60, offset=0.0)  # crashed again at 74
    got = load_scalars(tmp_path)
    assert_frame_equal(got, ea_scalars(tb))  # TensorBoard purges >= 60 on START too
    loss = got.filter(pl.col("tag") == "loss")
    assert loss["step"].to_list() == list(range(60)) + list(range(70, 75))
    assert got.filter(pl.col("tag") == "sparse")["step"].to_list() == [0, 10, 20, 30, 40, 50, 70]


def test_session_log_start_within_one_file(tmp_path: Path) -> None:
    writer = EventFileWriter(str(tmp_path))

    def scalar(step: int, value: float) -> None:
        summary = Summary(value=[Summary.Value(tag="loss", simple_value=value)])
        writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    for s in range(20):
        scalar(s, 1000.0 + s)
    writer.add_event(Event(wall_time=time.time(), step=12, session_log=SessionLog(status=1)))
    for s in range(12, 16):
        scalar(s, float(s))
    writer.close()
    got = load_scalars(tmp_path)
    assert got["step"].to_list() == list(range(16))
    assert got["value"].to_list()[12:] == [12.0, 13.0, 14.0, 15.0]
    assert_frame_equal(got, ea_scalars(tmp_path))


# --- episodes -------------------------------------------------------------------------------


def test_episodes_from_tags(tmp_path: Path) -> None:
    tb = tmp_path / "tb" / "PPO_1"
    episodes = [(10, 1.0, 10), (18, 2.5, 8), (18, 3.0, 18), (30, -1.0, 12)]  # two share step 18
    with SummaryWriter(str(tb)) as w:
        w.add_scalar("rollout/ep_rew_mean", 1.0, 16)
        for step, ret, length in episodes:
            w.add_scalar("episode/return", ret, step)
            w.add_scalar("episode/length", length, step)
    got = load_episodes(tmp_path)
    assert got.schema == pl.Schema(metrics.EPISODES_SCHEMA)
    assert list(got.select("step", "episode_return", "episode_length").iter_rows()) == episodes
    assert (got["wall_time"] > 1e9).all()


def test_episodes_after_resume_follow_the_resumed_session(tmp_path: Path) -> None:
    tb = tmp_path / "tb" / "PPO_1"
    with SummaryWriter(str(tb)) as w:
        for step in (5, 12, 20, 31):
            w.add_scalar("episode/return", 100.0 + step, step)
            w.add_scalar("episode/length", step, step)
    time.sleep(0.01)
    with SummaryWriter(str(tb)) as w:  # resumed from a checkpoint at 15
        w._get_file_writer().add_event(
            Event(step=15, wall_time=time.time(), session_log=SessionLog(status=SessionLog.START))
        )
        for step in (19, 27):
            w.add_scalar("episode/return", float(step), step)
            w.add_scalar("episode/length", step, step)
    got = load_episodes(tmp_path)
    assert got["step"].to_list() == [5, 12, 19, 27]
    assert got["episode_return"].to_list() == [105.0, 112.0, 19.0, 27.0]


def test_episodes_fall_back_to_monitor_files(sb3_run: Path) -> None:
    got = load_episodes(sb3_run)
    lines = []
    for f in sorted((sb3_run / "monitor").glob("*.monitor.csv")):
        lines += f.read_text().splitlines()[2:]
    assert len(got) == len(lines) > 10
    assert got["step"].to_list() == np.cumsum(got["episode_length"].to_numpy()).tolist()
    assert got["wall_time"].is_sorted()
    assert got["step"].max() <= 2048


def test_monitor_file_with_a_partial_last_line(tmp_path: Path) -> None:
    (tmp_path / "monitor.csv").write_text(
        '#{"t_start": 1700000000.0, "env_id": "CartPole-v1"}\n'
        "r,l,t\n"
        "12.0,12,0.5\n"
        "30.0,30,1.25\n"
        "9.0,9,1."
    )
    got = load_episodes(tmp_path)
    assert got.to_dicts() == [
        {"step": 12, "wall_time": 1700000000.5, "episode_return": 12.0, "episode_length": 12},
        {"step": 42, "wall_time": 1700000001.25, "episode_return": 30.0, "episode_length": 30},
    ]


def test_missing_or_empty_run_folder_gives_empty_frames(tmp_path: Path) -> None:
    for folder in (tmp_path / "does-not-exist", tmp_path):
        df, report = load_scalars_with_report(folder)
        assert df.is_empty() and df.schema == pl.Schema(SCHEMA) and report.files == 0
        assert load_episodes(folder).is_empty()
