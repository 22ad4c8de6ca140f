"""TensorBoard's scalar smoothing: a debiased exponential moving average.

The same algorithm as TensorBoard's scalar dashboard (``classicSmoothing`` in
``tensorboard/webapp/widgets/line_chart_v2/data_transformer.ts``, tensorflow/tensorboard):

    last = last * w + (1 - w) * y          (last starts at 0)
    n += 1
    smoothed = last / (1 - w ** n)         (debiasing; divide by 1 when w == 1)

where only finite points update ``last`` and ``n``; a non-finite point is passed through as it
is, and a constant series is returned unchanged. So a curve here looks exactly like the same
curve in TensorBoard at the same slider value.

``last_t / (1 - w**t)`` equals the weighted mean ``sum w**i y_(t-i) / sum w**i`` over the finite
points, which is polars' ``ewm_mean(alpha=1-w, adjust=True, ignore_nulls=True)``: that runs
in native code instead of a Python loop over millions of points.
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: TensorBoard's slider goes from 0 to 0.999; 1 would flatten every curve to 0.
MAX_SMOOTHING = 0.999


def ema_smooth(values: np.ndarray | list[float] | pl.Series, weight: float) -> np.ndarray:
    """Smooth a series as TensorBoard does with smoothing ``weight`` (0 = raw, 0.999 = max).

    :param values: the raw values in step order.
    :param weight: TensorBoard's smoothing weight; non-finite means 0, clipped to [0, 1].
    :return: float64 array of the same length.
    """
    y = np.asarray(values.to_numpy() if isinstance(values, pl.Series) else values, np.float64)
    if not np.isfinite(weight):
        weight = 0.0
    weight = float(min(max(weight, 0.0), 1.0))
    if len(y) == 0 or (y == y[0]).all():  # TensorBoard returns a constant series as it is
        return y.copy()
    finite = np.isfinite(y)
    out = y.copy()
    if weight == 1.0:  # last stays 0 and TensorBoard divides by 1: every finite point is 0
        out[finite] = 0.0
        return out
    if weight == 0.0:
        return out
    series = pl.Series(np.where(finite, y, 0.0)).set(pl.Series(~finite), None)
    smoothed = series.ewm_mean(alpha=1.0 - weight, adjust=True, ignore_nulls=True).to_numpy()
    out[finite] = smoothed[finite]
    return out
