"""Reports on request: a dashboard's Report button writes ``runs/reports/requests/*.json``;
the runner turns each into ``python -m reports ...`` (the job: Altair, Jinja and vl-convert
stay out of the supervisor), in its own process group, one at a time, oldest first.

The runner is the one writer of ``runs/reports/jobs/<id>.json``: running with the job's
(pid, pgid, create time), then done, failed (the log's last line) or lost (it ended while no
runner watched). A restarted runner adopts a job still running. A request goes once its job
record is written, so a runner killed in between starts it again rather than losing it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from runner import process
from runner.process import Handle
from runstore import reports, safeio, sweeps
from runstore.store import RunStore, printable

log = logging.getLogger("runner")

#: Request files read per step: a flood is drained a slice at a time.
MAX_REQUESTS_PER_STEP = 20


class ReportJobs:
    def __init__(self, store: RunStore):
        self.store = store
        self.paths = reports.report_paths(store.root)
        self.running: dict[str, tuple[Handle, reports.ReportJob]] = {}

    def step(self) -> None:
        """Note a finished job, then start the oldest request when none runs."""
        self.check()
        if self.running:
            return
        try:
            pending, invalid = reports.pending_report_requests(
                self.store.root, MAX_REQUESTS_PER_STEP
            )
        except OSError:
            return
        for path in invalid:
            log.warning("ignored %s: not a report request", printable(str(path)))
            path.unlink(missing_ok=True)
        if pending:
            self.start(*pending[0])

    def start(self, path: Path, request: reports.ReportRequest) -> None:
        job_id = path.name[: -len(reports.REQUEST_SUFFIX)]
        job = reports.ReportJob(id=job_id, **request.model_dump(), started_at=time.time())
        missing = [f"run {r}" for r in request.runs if not self.store.paths(r).run_json.exists()]
        if request.sweep and not sweeps.sweep_paths(self.store.root, request.sweep).dir.is_dir():
            missing.append(f"sweep {request.sweep}")
        if missing:
            job.state, job.ended_at = "failed", time.time()
            job.error = f"no {', '.join(missing[:3])} in this runs folder (deleted?)"
        else:
            job.html = reports.report_name(request.runs, sweep=request.sweep)
            args = ["--runs-dir", str(self.store.root), "--out", str(self.paths.dir / job.html)]
            args += ["--group-seeds"] * request.group_seeds + ["--pdf"] * request.pdf
            args += ["--sweep", request.sweep] if request.sweep else []
            self.paths.jobs.mkdir(parents=True, exist_ok=True)
            try:
                # cwd: the jobs folder, never the runs folder (its "reports" folder would
                # stand in for the package on the job's import path)
                log_path = self.paths.job_log(job_id)
                handle = process.spawn_module(
                    "reports", [*args, *request.runs], self.paths.jobs, log_path
                )
            except OSError as exc:
                job.state, job.ended_at, job.error = "failed", time.time(), str(exc)
            else:
                job.pid, job.pgid, job.create_time = handle.pid, handle.pgid, handle.create_time
                self.running[job_id] = (handle, job)
                log.info("report %s: started (pid %d) for %s", job_id, handle.pid, request.source)
        reports.write_job(self.store.root, job)
        path.unlink(missing_ok=True)

    def check(self) -> None:
        for job_id, (handle, job) in list(self.running.items()):
            if handle.is_alive():
                continue
            process.kill(handle)  # anything it left in its group (Chromium's helpers)
            del self.running[job_id]
            code = handle.exit_code()
            job.ended_at = time.time()
            made = (self.paths.dir / job.html).is_file()
            if code == 0 or (code is None and made):  # None: adopted, its exit code is gone
                job.state = "done"
            elif code is None:
                job.state, job.error = "lost", "the report job ended without a report"
            else:  # exit 1 with the HTML made: only its PDF failed, and the reason is kept
                job.state = "done" if code == 1 and made else "failed"
                job.error = self._last_line(job_id) or f"exit {code}"
            pdf = (self.paths.dir / job.html).with_suffix(".pdf")
            job.pdf_file = pdf.name if job.pdf and pdf.is_file() else ""
            reports.write_job(self.store.root, job)
            log.info("report %s: %s (exit %s)", job_id, job.state, code)

    def adopt(self) -> None:
        """After a runner restart: keep watching running jobs, mark vanished ones lost."""
        for job in reports.read_jobs(self.store.root):
            if job.state != "running":
                continue
            proc = process.identify(job.pid, job.create_time) if job.pid else None
            if proc is not None:
                handle, _ = process.adopted(proc, job.pgid)
                self.running[job.id] = (handle, job)
                continue
            job.state, job.ended_at = "lost", time.time()
            job.error = "the report job ended while no runner watched; ask again"
            reports.write_job(self.store.root, job)

    def _last_line(self, job_id: str) -> str:
        try:
            tail = safeio.read_tail(self.paths.job_log(job_id), limit=16_384)
        except OSError:
            return ""
        lines = tail.decode("utf-8", errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else ""
