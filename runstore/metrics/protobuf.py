"""The records the compiled decoder does not take, decoded with protobuf.

``runstore.tfrecord.decode_scalars`` takes the common shape (one ``simple_value`` per event).
Everything else comes here: tensor scalars of TF2/new-style writers, ``SessionLog.START``
events, summaries with several values, and events whose bytes only protobuf can judge.
Histograms, images and text are skipped: only scalars come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_DT_FLOAT = 1
_DT_DOUBLE = 2


def _tensor_scalar(tensor: Any) -> float | None:
    """The single number in a TensorProto (TF2 / new-style scalar summaries), else None."""
    dtype = tensor.dtype
    if dtype == _DT_FLOAT and len(tensor.float_val) == 1 and not tensor.tensor_content:
        return float(tensor.float_val[0])
    if dtype == _DT_DOUBLE and len(tensor.double_val) == 1 and not tensor.tensor_content:
        return float(tensor.double_val[0])
    try:
        from tensorboard.util import tensor_util

        arr = tensor_util.make_ndarray(tensor)
        if arr.size != 1 or arr.dtype.kind not in "fiub":
            return None
        return float(arr.reshape(-1)[0])
    except Exception:  # an unknown dtype or malformed content is not a scalar we can show
        return None


def _event_pb2() -> Any:
    # Imported on first use: loading the protobuf modules costs ~0.1 s the dashboard need not
    # pay when every record takes the compiled path.
    from tensorboard.compat.proto import event_pb2

    return event_pb2


@dataclass
class SlowResult:
    rec: np.ndarray  # record index of each scalar row
    tags: list[str]
    step: np.ndarray
    wall: np.ndarray
    value: np.ndarray
    session_starts: list[tuple[int, int]]  # (record index, step) of SessionLog.START events
    undecodable: list[int]  # record indices whose bytes are not an Event
    first_wall: tuple[int, float] | None  # (record index, wall_time) of the first event


def slow_records(
    buf: bytes, rec_ids: np.ndarray, starts: np.ndarray, lens: np.ndarray, plugins: dict[str, str]
) -> SlowResult:
    """Decode records with protobuf: tensor scalars, SessionLog.START, multi-value summaries.

    ``plugins`` (tag -> plugin name, first seen) persists per file because TF2 writers attach
    the "scalars" metadata to the first event of a tag only.
    """
    event_pb2 = _event_pb2()
    start_status = event_pb2.SessionLog.START
    from_string = event_pb2.Event.FromString
    rec: list[int] = []
    tags: list[str] = []
    steps: list[int] = []
    walls: list[float] = []
    values: list[float] = []
    session_starts: list[tuple[int, int]] = []
    undecodable: list[int] = []
    first_wall: tuple[int, float] | None = None
    for r, s, n in zip(rec_ids.tolist(), starts.tolist(), lens.tolist(), strict=True):
        try:
            ev = from_string(buf[s : s + n])
        except Exception:  # a valid CRC around bytes that are not an Event
            undecodable.append(r)
            continue
        if first_wall is None:
            first_wall = (r, ev.wall_time)
        if ev.HasField("session_log") and ev.session_log.status == start_status:
            session_starts.append((r, ev.step))
        if not ev.HasField("summary"):
            continue
        for v in ev.summary.value:
            if v.HasField("metadata") and v.tag not in plugins:
                plugins[v.tag] = v.metadata.plugin_data.plugin_name
            kind = v.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = v.simple_value
            elif kind == "tensor" and plugins.get(v.tag) == "scalars":
                number = _tensor_scalar(v.tensor)
            else:
                continue
            if number is None:
                continue
            rec.append(r)
            tags.append(v.tag)
            steps.append(ev.step)
            walls.append(ev.wall_time)
            values.append(number)
    return SlowResult(
        np.array(rec, dtype=np.int64),
        tags,
        np.array(steps, dtype=np.int64),
        np.array(walls, dtype=np.float64),
        np.array(values, dtype=np.float64),
        session_starts,
        undecodable,
        first_wall,
    )
