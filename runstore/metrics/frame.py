"""The tidy frame every load returns (``tag, step, wall_time, value``), built from arrays.

Shared by the merge (a run's frame) and the Parquet cache (a file's frame on disk).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

SCALARS_SCHEMA: dict[str, Any] = {
    "tag": pl.String,
    "step": pl.Int64,
    "wall_time": pl.Float64,
    "value": pl.Float64,
}

_FEW_ROWS = 1000


def scalars_frame(
    names: list[str], g: np.ndarray, step: np.ndarray, wall: np.ndarray, value: np.ndarray
) -> pl.DataFrame:
    """The frame of rows whose tag is ``names[g]``."""
    if len(g) <= _FEW_ROWS:  # a gather has ~50 µs of set-up (more when its pool is idle)
        tag = pl.Series("tag", [names[i] for i in g.tolist()], dtype=pl.String)
    else:
        tag = pl.Series("tag", names, dtype=pl.String).gather(g)
    return pl.DataFrame(
        [
            tag,
            pl.Series("step", step, dtype=pl.Int64),
            pl.Series("wall_time", wall, dtype=pl.Float64),
            pl.Series("value", value, dtype=pl.Float64),
        ]
    )
