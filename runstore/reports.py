"""The reports folder, ``runs/reports/``: the reports themselves, the requests for new ones
and the runner's record of each job (docs/architecture.md, "The run store").

- ``<when>-<what>.html`` (and ``.pdf``): written by the report job (``python -m reports``) or
  by ``python -m runner report``, under a temp name renamed into place.
- ``requests/<ns>-report.json``: written by the dashboard (a user who may act), read and
  removed by the runner.
- ``jobs/<ns>.json`` and ``jobs/<ns>.log``: the runner's record of a job and the job's output;
  one writer each (the runner, the job).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runstore import safeio
from runstore.atomic import atomic_write_json
from runstore.config_schema import SWEEP_ID_PATTERN
from runstore.models import Int64, MaybeTimestamp, Timestamp
from runstore.paths import is_run_id, member

#: Runs in one report (a comparison of more is unreadable, and a request is bounded).
MAX_REPORT_RUNS = 40
REQUEST_SUFFIX = "-report.json"
JobState = Literal["running", "done", "failed", "lost"]


class ReportRequest(BaseModel):
    """What a user asked for: a report of these runs."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    runs: list[str] = Field(default_factory=list, max_length=MAX_REPORT_RUNS)
    sweep: str | None = None  # a sweep's report instead of runs'
    group_seeds: bool = False
    pdf: bool = False
    source: str = Field("?", max_length=40)
    at: Timestamp = 0.0


class ReportJob(ReportRequest):
    """jobs/<id>.json, written by the runner only: one report being made, or made."""

    id: str
    state: JobState = "running"
    html: str = ""  # the report's file name in runs/reports/
    pdf_file: str = ""  # its PDF's, once made
    error: str = ""
    pid: Int64 | None = None
    pgid: Int64 | None = None
    create_time: MaybeTimestamp = None
    started_at: MaybeTimestamp = None
    ended_at: MaybeTimestamp = None


@dataclass(frozen=True)
class ReportPaths:
    dir: Path

    requests = member("dir", "requests")
    jobs = member("dir", "jobs")

    def job_json(self, job_id: str) -> Path:
        return self.jobs / f"{job_id}.json"

    def job_log(self, job_id: str) -> Path:
        return self.jobs / f"{job_id}.log"


def report_paths(runs_root: Path) -> ReportPaths:
    return ReportPaths(Path(runs_root) / "reports")


def report_name(run_ids: list[str], when: float | None = None, sweep: str | None = None) -> str:
    """``<date>-<time>-run-<run id>.html``, ``<date>-<time>-compare-<n>-runs-<first>.html``
    or ``<date>-<time>-sweep-<sweep id>.html``: sorted by time, named by what it shows (an
    id carries the run's or sweep's name)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    if sweep is not None:
        return f"{stamp}-sweep-{sweep}.html"
    if len(run_ids) == 1:
        return f"{stamp}-run-{run_ids[0]}.html"
    return f"{stamp}-compare-{len(run_ids)}-runs-{run_ids[0]}.html"


def check_request(
    runs: list[str], group_seeds: bool, pdf: bool, source: str, sweep: str | None = None
) -> ReportRequest:
    """A valid request, or ValueError naming what is wrong."""
    if sweep is not None:
        if runs or not SWEEP_ID_PATTERN.match(sweep):
            raise ValueError(f"a sweep's report names one sweep id and no run (got {sweep!r})")
    elif not 1 <= len(runs) <= MAX_REPORT_RUNS:
        raise ValueError(f"a report names 1 to {MAX_REPORT_RUNS} runs (got {len(runs)})")
    if len(set(runs)) != len(runs):
        raise ValueError("a run is named twice: name each run once")
    bad = [r for r in runs if not is_run_id(r)]
    if bad:
        raise ValueError(f"not run ids: {', '.join(map(repr, bad[:3]))}")
    return ReportRequest(
        runs=runs, sweep=sweep, group_seeds=group_seeds, pdf=pdf, source=source[:40], at=time.time()
    )


def write_report_request(
    runs_root: Path,
    runs: list[str],
    group_seeds: bool,
    pdf: bool,
    source: str,
    sweep: str | None = None,
) -> Path:
    """Ask the runner for a report (the dashboard's Report buttons)."""
    request = check_request(runs, group_seeds, pdf, source, sweep)
    folder = report_paths(runs_root).requests
    if folder.is_symlink():
        raise OSError(f"{folder} is a symlink; refusing to write through it")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time_ns()}{REQUEST_SUFFIX}"
    atomic_write_json(path, request.model_dump(mode="json"))
    return path


def pending_report_requests(
    runs_root: Path, limit: int
) -> tuple[list[tuple[Path, ReportRequest]], list[Path]]:
    """Valid requests oldest first (at most ``limit`` files read), and files that are not."""
    folder = report_paths(runs_root).requests
    if folder.is_symlink():
        return [], [folder]
    if not folder.is_dir():
        return [], []
    valid, invalid = [], []
    for name in sorted(e.name for e in os.scandir(folder) if not e.name.startswith("."))[:limit]:
        path = folder / name
        data = safeio.read_json(path) if name.endswith(REQUEST_SUFFIX) else None
        try:
            request = ReportRequest.model_validate(data)
            check_request(
                request.runs, request.group_seeds, request.pdf, request.source, request.sweep
            )
        except (ValidationError, ValueError):
            invalid.append(path)
        else:
            valid.append((path, request))
    return valid, invalid


def write_job(runs_root: Path, job: ReportJob) -> None:
    paths = report_paths(runs_root)
    paths.jobs.mkdir(parents=True, exist_ok=True)
    atomic_write_json(paths.job_json(job.id), job.model_dump(mode="json"))


def read_jobs(runs_root: Path, limit: int = 200) -> list[ReportJob]:
    """The newest ``limit`` jobs, newest first; unreadable records are left out."""
    folder = report_paths(runs_root).jobs
    if folder.is_symlink() or not folder.is_dir():
        return []
    names = sorted((e.name for e in os.scandir(folder) if e.name.endswith(".json")), reverse=True)
    jobs = []
    for name in names[:limit]:
        try:
            jobs.append(ReportJob.model_validate(safeio.read_json(folder / name)))
        except (ValidationError, OSError, ValueError):
            continue
    return jobs


@dataclass(frozen=True)
class ReportFile:
    html: Path
    pdf: Path | None
    size: int
    mtime: float


def list_reports(runs_root: Path) -> list[ReportFile]:
    """The reports in runs/reports/, newest first (plain files only: no link is listed)."""
    folder = report_paths(runs_root).dir
    if folder.is_symlink() or not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.name.endswith(".html"):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        pdf = folder / (entry.name[: -len(".html")] + ".pdf")
        st = entry.stat(follow_symlinks=False)
        has_pdf = pdf.is_file() and not pdf.is_symlink()
        found.append(
            ReportFile(Path(entry.path), pdf if has_pdf else None, st.st_size, st.st_mtime)
        )
    return sorted(found, key=lambda r: r.mtime, reverse=True)
