"""Reports as one self-contained HTML file: Jinja2 templates (autoescaped: a run's name or
config is text, never markup), charts as inline SVG rendered by vl-convert (Vega in a wheel,
no browser and no network), clip posters as inline PNG. Nothing in the page is fetched: a
Content-Security-Policy of ``default-src 'none'`` says so to the browser too.
"""

from __future__ import annotations

import base64
import math
import os
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

import altair as alt
import jinja2
from markupsafe import Markup

from analysis import run_charts, sweep_charts
from analysis.compare_charts import chart_svg, compare_chart
from analysis.compare_data import EPISODES_METRIC, X_STEPS, downsample, grouped_run_ids
from analysis.downsample import DEFAULT_POINTS
from analysis.group_stats import EPISODE_WINDOW
from reports import posters
from reports.comparison import Comparison
from reports.facts import RECENT_EPISODES, RunFacts
from reports.sweep import MAX_TRIALS_SHOWN, SweepFacts
from runstore.units import format_steps
from runstore.videos import Clip

#: Clips shown with a poster (evenly spaced over the run, the first and last among them).
MAX_CLIPS = 12

_env = jinja2.Environment(
    # beside this file, found without importlib (a folder named "reports" in the working
    # directory, as in a runs folder, must not stand in for the package)
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _finite(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number(value: object, digits: int = 4) -> str:
    """A number as a table shows it: ``digits`` significant digits, thousands separated;
    "—" for none or not finite."""
    x = _finite(value)
    if x is None:
        return "—"
    if x != 0 and (abs(x) >= 10 ** (digits + 2) or abs(x) < 10 ** -(digits - 1)):
        return f"{x:.{digits - 1}e}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 0) if x else 0
    return f"{x:,.{decimals}f}"


def raw(value: object) -> str:
    """The exact value behind a table cell (``repr`` of the float), for readers and tests."""
    x = _finite(value)
    return "" if x is None else repr(x)


def clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def steps(value: object) -> str:
    x = _finite(value)
    return "—" if x is None else format_steps(int(x))


_env.filters.update(number=number, raw=raw, clock=clock, duration=duration, steps=steps)


#: The width of a small chart, two to a row (SB3's training scalars, the system samples).
SMALL_WIDTH = 340


def _svg(chart: alt.TopLevelMixin, width: int = 800) -> Markup:
    """A chart as inline SVG. Vega writes every label as escaped SVG text, so a run's name in
    a legend stays text."""
    return Markup(chart_svg(chart, width).decode("utf-8"))


@dataclass(frozen=True)
class ClipView:
    path_name: str
    href: str
    caption: str
    poster: str  # base64 PNG, "" when none could be made


def _clip_views(clips: list[Clip], out_dir: Path) -> list[ClipView]:
    usable = sorted((c for c in clips if not c.problem), key=lambda c: (c.step, c.kind))
    if len(usable) > MAX_CLIPS:
        picks = {round(i * (len(usable) - 1) / (MAX_CLIPS - 1)) for i in range(MAX_CLIPS)}
        usable = [c for i, c in enumerate(usable) if i in picks]
    views = []
    for clip in usable:
        meta = clip.meta
        middle = meta.frames / meta.fps / 2 if meta and meta.fps > 0 else 0.0
        png = posters.poster_png(clip.path, middle)
        score = clip.score
        caption = f"step {format_steps(clip.step)} · {clip.kind}"
        if score is not None:
            caption += f" · return {number(score)}"
        views.append(
            ClipView(
                path_name=clip.path.name,
                href=quote(os.path.relpath(clip.path, out_dir)),
                caption=caption,
                poster=base64.b64encode(png).decode("ascii") if png else "",
            )
        )
    return views


def _common(title: str, root: Path) -> dict:
    try:
        version = metadata.version("retro-ml")
    except metadata.PackageNotFoundError:
        version = "?"
    return {
        "title": title,
        "version": version,
        "host": socket.gethostname(),
        "made_at": time.time(),
        "root": str(root),
    }


def run_html(facts: RunFacts, root: Path, out_dir: Path, log_tail: str = "") -> str:
    """The report of one run."""
    charts = {
        "eval": _svg(run_charts.eval_chart(facts.curve)) if facts.curve.height else None,
        "returns": _svg(run_charts.return_chart(facts.episodes)) if facts.episodes.height else None,
        "training": [
            (
                tag,
                _svg(
                    run_charts.scalar_chart(facts.scalars, tag, title, smoothing=0.6), SMALL_WIDTH
                ),
            )
            for tag, title in facts.training_tags
        ],
        "system": [
            (tag, _svg(run_charts.scalar_chart(facts.scalars, tag, title), SMALL_WIDTH))
            for tag, title in run_charts.SYSTEM_TAGS
            if facts.scalars.height and (facts.scalars["tag"] == tag).any()
        ],
    }
    return _env.get_template("run.html.j2").render(
        **_common(f"{facts.name}: {facts.algo.upper()} on {facts.env}", root),
        run=facts,
        charts=charts,
        clips=_clip_views(facts.clips, out_dir),
        log_tail=log_tail,
        recent_episodes=RECENT_EPISODES,
    )


def compare_html(comparison: Comparison, root: Path, title: str) -> str:
    """The report of a comparison of runs or seed groups."""
    c = comparison
    episodes = c.metric == EPISODES_METRIC
    chart = None
    if c.table.height:
        grouped = grouped_run_ids(c.infos, c.curves)
        drawn = c.table.filter(~c.table["run_id"].is_in(sorted(grouped)))
        drawn = downsample(drawn, X_STEPS, DEFAULT_POINTS, by="smoothed" if episodes else "y")
        chart = _svg(compare_chart(drawn, c.curves, X_STEPS, c.metric, show_raw=episodes))
    final_rule = (
        f"the mean of its last {EPISODE_WINDOW} episodes' returns."
        if episodes
        else f"its last {c.metric!r} value (its final evaluation)."
    )
    return _env.get_template("compare.html.j2").render(
        **_common(title, root),
        comparison=c,
        runs=list(zip(c.runs, c.infos, strict=True)),
        charts={"compare": chart},
        final_rule=final_rule,
        episodes=episodes,
    )


def sweep_html(sweep: SweepFacts, root: Path) -> str:
    """The report of a sweep: its study, best trials, history, importances, every trial."""
    metric = sweep.state.metric
    parallel = None
    if sweep.view.params and sweep.view.trials.height:
        frame = sweep_charts.parallel_frame(sweep.view.trials, sweep.view.params)
        if not frame.is_empty():
            parallel = _svg(sweep_charts.parallel_chart(frame, sweep.view.params, metric))
    charts = {
        "history": _svg(sweep_charts.history_chart(sweep.history, metric))
        if sweep.history.height
        else None,
        "importances": _svg(sweep_charts.importance_chart(sweep.importances))
        if sweep.importances
        else None,
        "parallel": parallel,
    }
    trials = (
        sweep.view.trials.sort("number").tail(MAX_TRIALS_SHOWN)
        if sweep.view.trials.height
        else None
    )
    return _env.get_template("sweep.html.j2").render(
        **_common(f"Sweep {sweep.state.name}: {sweep.state.direction} {metric}", root),
        sweep=sweep,
        charts=charts,
        trials=trials.iter_rows(named=True) if trials is not None else [],
    )
