"""Make a report: one run, or a comparison of several (seeds grouped on request), into
``runs/reports/`` or a file of the caller's choosing; its PDF beside it on request.

Called by ``python -m runner report`` in the foreground and by ``python -m reports`` (the job
the runner starts for a dashboard's request). Reads the runs folder only through
``runstore``; writes only the report files, each under a temp name renamed into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reports import render
from reports.comparison import compare
from reports.facts import ReportError, read_log_tail, read_run_facts
from reports.pdf import html_to_pdf
from reports.sweep import read_sweep_facts
from runstore.atomic import atomic_write_text
from runstore.models import RunState
from runstore.reports import report_name, report_paths
from runstore.store import RunStore


@dataclass(frozen=True)
class Made:
    html: Path
    pdf: Path | None


def make_sweep_report(
    store: RunStore, sweep_id: str, *, pdf: bool = False, out: Path | None = None
) -> Made:
    """Write the report of a sweep (its study, best trials, history, importances)."""
    facts = read_sweep_facts(store, sweep_id)
    default = report_paths(store.root).dir / report_name([], sweep=sweep_id)
    return _write(
        Path(out) if out is not None else default, render.sweep_html(facts, store.root), pdf
    )


def make_report(
    store: RunStore,
    run_ids: Sequence[str],
    *,
    group_seeds: bool = False,
    pdf: bool = False,
    out: Path | None = None,
    thresholds: Sequence[float] | None = None,
) -> Made:
    """Write the report of ``run_ids`` (one: a run report; more: a comparison) and return
    where. A PDF that cannot be made raises ``PdfError`` after the HTML is written."""
    if not run_ids:
        raise ReportError("name at least one run")
    if len(set(run_ids)) != len(run_ids):
        raise ReportError("a run is named twice: name each run once")
    facts = [read_run_facts(store, run_id, thresholds) for run_id in run_ids]
    default = report_paths(store.root).dir / report_name(list(run_ids))
    path = _checked(Path(out) if out is not None else default)
    if len(facts) == 1:
        run = facts[0]
        tail = read_log_tail(store, run.id) if run.record.state == RunState.FAILED else ""
        html = render.run_html(run, store.root, path.parent.resolve(), log_tail=tail)
    else:
        comparison = compare(facts, group_seeds, thresholds=thresholds)
        names = list(dict.fromkeys(f.name for f in facts))  # each once, in the order given
        title = f"Comparison of {len(facts)} runs: " + ", ".join(names[:4])
        html = render.compare_html(comparison, store.root, title + ("…" if len(names) > 4 else ""))
    return _write(path, html, pdf)


def _checked(path: Path) -> Path:
    if path.suffix.lower() != ".html":
        raise ReportError(f"--out {path}: a report is an .html file (its PDF goes beside it)")
    return path


def _write(path: Path, html: str, pdf: bool) -> Made:
    """The report into place (a temp name renamed), then its PDF beside it on request."""
    path = _checked(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, html)
    pdf_path = None
    if pdf:
        pdf_path = path.with_suffix(".pdf")
        html_to_pdf(path, pdf_path)
    return Made(path, pdf_path)
