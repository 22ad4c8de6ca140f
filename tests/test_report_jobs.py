"""Reports on request (issue 17): the dashboard's Report button writes a request, a real
runner makes the report as a job and records it, and the Reports page lists it; a remote
viewer without the password can neither ask for one nor write a request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard import actions, auth
from reports.build import make_report
from runstore import reports
from runstore.models import RunState
from runstore.store import RunStore
from tests.conftest import Runs, cartpole, dashboard_on, wait_for
from tests.test_dashboard import LAN_PEER
from tests.test_organise import run_page


def _ended_run(store: RunStore, name: str) -> str:
    """A completed run as the runner records one (no training: a report of a run with no
    metrics yet says so, section by section)."""
    path = store.submit(cartpole(1_000, 1_000) + f"name: {name}\n", f"{name}.yaml")
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    record.state = RunState.COMPLETED
    record.started_at = record.queued_at + 1
    record.ended_at = record.queued_at + 2
    store.write_run(record)
    return record.id


def _job(store: RunStore, request: Path) -> reports.ReportJob | None:
    job_id = request.name[: -len(reports.REQUEST_SUFFIX)]
    found = [j for j in reports.read_jobs(store.root) if j.id == job_id]
    return found[0] if found and found[0].state != "running" else None


def test_the_runner_makes_a_requested_report_and_records_each_job(runs: Runs):
    store = runs.store
    store.ensure_layout()
    run_id = _ended_run(store, "reported")
    made = reports.write_report_request(store.root, [run_id], False, False, "test")
    gone = reports.write_report_request(
        store.root, ["20200101-000000-deleted-0000abcd"], False, False, "test"
    )
    garbage = reports.report_paths(store.root).requests / "1-report.json"
    garbage.write_text(json.dumps({"runs": "not a list"}))
    runs.runner()

    job = wait_for(lambda: _job(store, made), timeout=240, what="the report job to end")
    assert job.state == "done", (job, runs.store.root)
    html = reports.report_paths(store.root).dir / job.html
    assert html.is_file() and "reported" in html.read_text(encoding="utf-8")
    assert job.pid and job.create_time and job.source == "test"

    failed = wait_for(lambda: _job(store, gone), timeout=120, what="the second job")
    assert failed.state == "failed" and "no run 20200101-000000-deleted-0000abcd" in failed.error
    assert not garbage.exists()  # not a request: removed, logged
    assert not made.exists() and not gone.exists()
    assert [r.html for r in reports.list_reports(store.root)] == [html]


def test_bad_report_requests_are_refused_with_the_reason(tmp_path: Path):
    with pytest.raises(ValueError, match="named twice"):
        reports.check_request(["20200101-000000-a-0000abcd"] * 2, False, False, "t")
    with pytest.raises(ValueError, match="not run ids"):
        reports.check_request(["../etc"], False, False, "t")
    with pytest.raises(ValueError, match="1 to 40 runs"):
        reports.check_request([], False, False, "t")


def test_report_button_asks_the_runner_and_the_reports_page_offers_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    run_id = _ended_run(store, "buttoned")
    at = run_page(run_id)
    at.checkbox(key="run_report_pdf").check().run()
    at.button(key="run_report").click().run()
    assert not at.exception
    pending, invalid = reports.pending_report_requests(store.root, 10)
    assert invalid == [] and len(pending) == 1
    request = pending[0][1]
    assert (request.runs, request.pdf, request.source) == ([run_id], True, "dashboard")

    at.switch_page("app_pages/reports.py").run()
    assert any("No reports yet" in i.value for i in at.info)
    made = make_report(store, [run_id])
    at.switch_page("app_pages/reports.py").run()
    assert not at.exception
    assert any(made.html.name in m.value for m in at.markdown)


def test_a_remote_viewer_cannot_ask_for_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    run_id = _ended_run(store, "viewed")
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    at = run_page(run_id)
    assert "run_report" not in [b.key for b in at.button]
    with pytest.raises(PermissionError):
        actions.report([run_id])
    assert reports.pending_report_requests(store.root, 10) == ([], [])
