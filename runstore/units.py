"""Numbers in words that more than one process shows: a step count as the pages and the clip
overlays write it (the dashboard and the trainer draw the same "1.25 M"), and a size in bytes
as the pages and the runner's run.json events write it."""

from __future__ import annotations


def format_steps(step: int) -> str:
    """950, 12 k, 1.25 M: exact below 10,000, thousands to 1M, then millions to two places."""
    if step >= 1_000_000:
        return f"{step / 1e6:.2f} M"
    if step >= 10_000:
        return f"{step / 1e3:.0f} k"
    return str(step)


def format_score(score: float) -> str:
    """A game score as a video shows it: 21, -3.5, 1,250 (one decimal below 100, none above:
    an evaluation's mean over episodes is rarely whole)."""
    if abs(score) >= 100:
        return f"{score:,.0f}"
    return f"{score:.1f}".removesuffix(".0")


def format_duration(seconds: float | None) -> str:
    """1 h 05 m, 3 m 20 s, 42 s; empty for unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600:02d} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} m"
    if s >= 60:
        return f"{s // 60} m {s % 60:02d} s"
    return f"{s} s"


def format_bytes(nbytes: int | float) -> str:
    """512 B, 12 KB, 3 MB, 1.5 TB: binary units, whole numbers below a terabyte."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
