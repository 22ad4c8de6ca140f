"""The compiled TFRecord reader against straightforward references: TensorBoard's own CRC32C,
a plain-Python walk of the framing rules, and protobuf's decoding of the same bytes."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c, masked_crc32c
from torch.utils.tensorboard import SummaryWriter

from runstore import tfrecord


def reference_frame(data: bytes, at_eof: bool) -> tuple[list, list, int, int]:
    """The framing rules of ``tfrecord.frame``, one byte offset at a time in Python."""

    def u32(p: int) -> int:
        return struct.unpack_from("<I", data, p)[0]

    def header_ok(p: int) -> bool:
        (length,) = struct.unpack_from("<Q", data, p)
        crc_ok = masked_crc32c(data[p : p + 8]) == u32(p + 8)
        return crc_ok and length <= tfrecord.MAX_RECORD_BYTES

    records, damaged, pos, pending, n = [], [], 0, -1, len(data)
    while n - pos >= 12:
        if not header_ok(pos):
            resumed = next((r for r in range(pos + 1, n - 11) if header_ok(r)), None)
            if resumed is None:
                pending = pos if at_eof else -1
                break
            damaged.append((pos, resumed))
            pos = resumed
            continue
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + length + 16 > n:
            break
        payload = data[pos + 12 : pos + 12 + length]
        records.append((pos + 12, length, masked_crc32c(payload) == u32(pos + 12 + length)))
        pos += length + 16
    return records, damaged, pos, pending


def framed(data: bytes, at_eof: bool) -> tuple[list, list, int, int]:
    got = tfrecord.frame(np.frombuffer(data, np.uint8), at_eof)
    records = list(
        zip(got.data_start.tolist(), got.data_len.tolist(), got.data_ok.tolist(), strict=True)
    )
    damaged = [tuple(pair) for pair in got.damaged.tolist()]
    return records, damaged, got.consumed, got.pending


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real event file: scalars, text and a histogram (records of 20 bytes to 2 KB)."""
    folder = tmp_path_factory.mktemp("events")
    with SummaryWriter(str(folder)) as w:
        w.add_text("config", "x" * 300, 0)
        for s in range(12):
            w.add_scalar("train/loss", 1.0 / (s + 1), s * 1000)
            w.add_scalar("rollout/ep_rew_mean", float(s), s * 1000)
        w.add_histogram("weights", np.arange(100, dtype=np.float64), 3)
    (path,) = [p for p in folder.iterdir() if "tfevents" in p.name]
    return path.read_bytes()


def test_crc32c_matches_tensorboard_masked_or_not() -> None:
    """Lengths around the 8-byte steps of the loop, long records, and random ones."""
    rng = np.random.default_rng(1)
    lens = np.array([0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 59, 60, 63, 64, 65, 127, 128, 129, 1000])
    lens = np.concatenate([lens, [4096, 20_000], rng.integers(0, 300, 200)])
    data = rng.integers(0, 256, int(lens.sum()), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    raw = data.tobytes()
    pieces = [raw[s : s + n] for s, n in zip(starts, lens, strict=True)]
    assert tfrecord.crc32c_many(data, starts, lens).tolist() == [crc32c(p) for p in pieces]
    masked = tfrecord.masked_crc32c_many(data, starts, lens)
    assert masked.tolist() == [masked_crc32c(p) for p in pieces]


def test_an_intact_file_frames_whole(sample: bytes) -> None:
    records, damaged, consumed, pending = framed(sample, at_eof=True)
    assert consumed == len(sample) and not damaged and pending == -1
    assert all(ok for *_, ok in records) and len(records) == 1 + 1 + 24 + 1


mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "zero"]),
    st.floats(0, 1, exclude_max=True),
    st.integers(1, 255),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=4), at_eof=st.booleans())
def test_damaged_files_frame_like_the_reference(
    sample: bytes, mutations: list[tuple[str, float, int]], at_eof: bool
) -> None:
    data = bytearray(sample)
    for kind, where, byte in mutations:
        i = int(where * len(data)) if data else 0
        if kind == "flip" and data:
            data[i] ^= byte
        elif kind == "insert":
            data[i:i] = bytes([byte]) * (byte % 7 + 1)
        elif kind == "delete":
            del data[i : i + byte % 9 + 1]
        elif kind == "truncate":
            del data[i:]
        elif kind == "zero":
            data[i : i + 12] = bytes(12)  # zero lengths with a zero CRC: invalid headers
    assert framed(bytes(data), at_eof) == reference_frame(bytes(data), at_eof)


def simple_event(tag: bytes, step: int, wall: float, value: float) -> bytes:
    ev = Event(wall_time=wall, step=step)
    v = ev.summary.value.add()
    v.tag = tag.decode()
    v.simple_value = value
    return ev.SerializeToString()


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=300, deadline=None)
@given(
    tag=st.text(min_size=0, max_size=130).map(str.encode),
    step=st.integers(-(2**63), 2**63 - 1),
    wall=st.floats(allow_nan=False),
    value=st.floats(width=32, allow_nan=False),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=2),
)
def test_what_the_fast_decoder_takes_protobuf_reads_the_same(
    tag: bytes, step: int, wall: float, value: float, flips: list[tuple[float, int]]
) -> None:
    """Anything taken decodes in protobuf to exactly one simple value with the same fields;
    an unchanged one with a short non-empty tag and a wall time is always taken."""
    raw = bytearray(simple_event(tag, step, wall, value))
    for where, byte in flips:
        raw[int(where * len(raw))] ^= byte
    buf = np.frombuffer(bytes(raw), np.uint8)
    got = tfrecord.decode_scalars(buf, np.array([0]), np.array([len(raw)]))
    if not flips and 0 < len(tag) < 0x80 - 9 and wall != 0:
        assert got.taken[0]
    if not got.taken[0]:
        return
    taken_tag = got.tag_bytes[got.tag_group[0]]
    try:
        taken_tag.decode("utf-8")
    except UnicodeDecodeError:  # the caller leaves these to protobuf, which rejects them
        with pytest.raises(DecodeError):
            Event.FromString(bytes(raw))
        return
    ev = Event.FromString(bytes(raw))
    (v,) = ev.summary.value
    assert v.WhichOneof("value") == "simple_value"
    assert taken_tag == v.tag.encode()
    assert got.step[0] == ev.step
    assert same(got.wall[0], ev.wall_time) and same(got.value[0], v.simple_value)
    assert ev.ListFields()[-1][0].name == "summary" and len(ev.ListFields()) <= 3


def test_tags_are_grouped_by_their_bytes() -> None:
    tags = [b"a", b"b", b"a", b"ab", b"\xc3\xbc", b"ba", b"b", b"a" * 100, b"a" * 100]
    records = [simple_event(t, i, 1.0, 2.0) for i, t in enumerate(tags)]
    data = b"".join(records)
    starts = np.cumsum([0] + [len(r) for r in records[:-1]])
    got = tfrecord.decode_scalars(
        np.frombuffer(data, np.uint8), starts, np.array([len(r) for r in records])
    )
    assert got.taken.all()
    assert [got.tag_bytes[g] for g in got.tag_group] == tags
    assert got.tag_bytes == [b"a", b"b", b"ab", b"\xc3\xbc", b"ba", b"a" * 100]


def header(length: int) -> bytes:
    head = struct.pack("<Q", length)
    return head + struct.pack("<I", masked_crc32c(head))


def test_a_length_beyond_the_buffer_waits_for_more_bytes(sample: bytes) -> None:
    """A valid header whose length (up to the cap) runs past the bytes read ends the walk
    there: it is read once the rest arrives, never taken as a shorter record."""
    cut = header(tfrecord.MAX_RECORD_BYTES) + b"\x00" * 40
    records, damaged, consumed, pending = framed(sample + cut, at_eof=True)
    assert consumed == len(sample) and not damaged and pending == -1
    assert framed(sample + cut, True) == reference_frame(sample + cut, True)


@pytest.mark.parametrize("length", [tfrecord.MAX_RECORD_BYTES + 1, 2**40 + 4, 2**60])
def test_a_length_over_the_cap_is_damage_not_pending(sample: bytes, length: int) -> None:
    """A header with a valid CRC claiming more than MAX_RECORD_BYTES is damage: framing
    resumes at the next valid header; with nothing after it, it is the file's trailing damage
    (pending only while the file may grow; ``runstore.metrics.filestate`` decides)."""
    bad = header(length) + b"\x00" * 40
    records, damaged, consumed, pending = framed(sample + bad + sample, at_eof=True)
    assert damaged == [(len(sample), len(sample) + len(bad))]
    assert consumed == 2 * len(sample) + len(bad) and pending == -1
    assert len(records) == 2 * len(framed(sample, True)[0])
    records, damaged, consumed, pending = framed(sample + bad, at_eof=True)
    assert consumed == len(sample) and pending == len(sample) and not damaged
    got = tfrecord.frame(np.frombuffer(sample + bad, np.uint8), at_eof=False)
    assert got.open_damage == len(sample) and got.pending == -1


def test_zeros_are_skipped_fast_and_a_header_after_them_found() -> None:
    """Runs of zeros are no header (the masked CRC of eight zero bytes is not zero): the scan
    skips them a page at a time and finds the header right after, whatever its alignment."""
    zeros = np.zeros(64 * 1024 * 1024, np.uint8)
    assert tfrecord.resync(zeros) == -1
    for at in (0, 1, 11, 12, 4095, 4096, 4097, 50_001):
        buf = np.zeros(at + 200_000, np.uint8)
        buf[at : at + 12] = np.frombuffer(header(8), np.uint8)
        assert tfrecord.resync(buf) == at, at
    buf = np.zeros(1000, np.uint8)
    buf[500] = 7  # a lone nonzero byte is no header either
    assert tfrecord.resync(buf) == -1
