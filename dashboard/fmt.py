"""Words and colours for numbers and states, shared by the pages (pure functions). Step counts
are written by ``runstore.units.format_steps``, shared with the trainer's clip overlays."""

from __future__ import annotations

import re
import time

from runstore.models import RunState
from runstore.units import format_bytes, format_duration

STATE_COLOURS = {
    RunState.QUEUED: "gray",
    RunState.STARTING: "blue",
    RunState.RUNNING: "green",
    RunState.PAUSED: "orange",
    RunState.STOPPING: "orange",
    RunState.STOPPED: "violet",
    RunState.COMPLETED: "blue",
    RunState.FAILED: "red",
    RunState.LOST: "red",
}


CSS_COLOURS = {
    "gray": "#9e9e9e",
    "blue": "#1e88e5",
    "green": "#2e7d32",
    "orange": "#ef6c00",
    "violet": "#7b1fa2",
    "red": "#c62828",
}


def state_css(value: str) -> str:
    """Table cell style for a state's name (pandas Styler.map)."""
    try:
        # "stopped (pruned at N)": a pruned sweep trial is coloured as stopped
        colour = CSS_COLOURS[STATE_COLOURS[RunState(value.split(" ", 1)[0])]]
    except ValueError:
        return ""
    return f"color: {colour}; font-weight: 600"


def state_badge(state: RunState, pruned_at: int | None = None) -> str:
    """A state as a coloured Streamlit markdown badge; a run its sweep's pruner stopped says
    so ("stopped (pruned at N)"), so it is not mistaken for one a user stopped."""
    text = state.value
    if state == RunState.STOPPED and pruned_at is not None:
        text = f"stopped (pruned at {pruned_at:,})"
    return f":{STATE_COLOURS[state]}-badge[{text}]"


#: 1 h 05 m, 3 m 20 s, 42 s (``runstore.units.format_duration``, which videos write too).
duration = format_duration


def clock(at: float | None) -> str:
    """A local time, with the date when it is not today."""
    if not at:
        return ""
    local = time.localtime(at)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def size(nbytes: int) -> str:
    """A size in bytes in words (``runstore.units.format_bytes``, shared with the runner)."""
    return format_bytes(nbytes)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """``text`` (a title or a name from a file) for a Markdown string, shown as typed: every
    character Markdown would read (a link, emphasis, an emoji shortcode, LaTeX) escaped."""
    return _MARKDOWN.sub(r"\\\1", text)
