"""Largest-Triangle-Three-Buckets downsampling (Steinarsson 2013, "Downsampling Time Series for
Visual Representation", MSc thesis, University of Iceland).

Returns indices, never new values: a kept point is a real logged point, so a tooltip on the
drawn curve shows an exact value. Keeps the first and last point and the peaks that shape a
curve, so a 10M-step run draws from ~2,000 points and still looks like itself.
"""

from __future__ import annotations

import numpy as np

#: Points kept per drawn series.
DEFAULT_POINTS = 2000


def lttb_indices(x: np.ndarray, y: np.ndarray, n_out: int = DEFAULT_POINTS) -> np.ndarray:
    """Indices (ascending) of at most ``n_out`` points of (x, y) chosen by LTTB.

    ``x`` must be sorted ascending. Non-finite points are never chosen (they cannot be drawn).
    With ``n_out`` >= the number of finite points, all of them are returned.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)})")
    if n_out < 3:
        raise ValueError(f"n_out must be at least 3 (got {n_out}): LTTB keeps both endpoints")
    valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    n = len(valid)
    if n <= n_out:
        return valid
    xs, ys = x[valid], y[valid]
    # Interior points split into n_out - 2 buckets of (almost) equal count.
    edges = np.floor(np.linspace(1, n - 1, n_out - 1)).astype(np.int64)
    # Average of each bucket (the third vertex for the bucket before it), via prefix sums.
    cx = np.concatenate(([0.0], np.cumsum(xs)))
    cy = np.concatenate(([0.0], np.cumsum(ys)))
    counts = edges[1:] - edges[:-1]
    avg_x = (cx[edges[1:]] - cx[edges[:-1]]) / counts
    avg_y = (cy[edges[1:]] - cy[edges[:-1]]) / counts
    avg_x = np.append(avg_x[1:], xs[-1])  # bucket i looks at bucket i+1's mean; last: endpoint
    avg_y = np.append(avg_y[1:], ys[-1])
    chosen = np.empty(n_out, dtype=np.int64)
    chosen[0] = 0
    a = 0
    for i in range(n_out - 2):
        lo, hi = edges[i], edges[i + 1]
        bx, by = xs[lo:hi], ys[lo:hi]
        # Twice the triangle area (a, candidate, next bucket's mean); the factor does not matter.
        area = np.abs((xs[a] - avg_x[i]) * (by - ys[a]) - (xs[a] - bx) * (avg_y[i] - ys[a]))
        a = lo + int(np.argmax(area))
        chosen[i + 1] = a
    chosen[-1] = n - 1
    return valid[chosen]
