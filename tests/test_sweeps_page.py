"""The Sweeps page, the New sweep form and the sweep columns of Runs, under AppTest and in
Chromium, over a sweep the real runner made (real Optuna journal, real CartPole trials).

The sweep is made once per module (3 trials of 1024 steps) and then only read: the runner
that made it is gone, so what the page shows can be compared with the study itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis import sweep_study
from dashboard import actions, auth, sweep_data
from runstore import RunState, RunStore, sweeps
from runstore.sweep_config import parse_sweep
from tests.conftest import Runs, cartpole, dashboard_on
from tests.test_dashboard import APP, LAN_PEER, VIEW_ONLY_BUTTONS, open_page
from tests.test_sweeps import SWEEP, only_sweep, study_of, wait_complete

PAGE = "app_pages/sweeps.py"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sweeps.SweepPaths]:
    """A finished sweep of 3 trials, made by the real runner; the runner is then stopped."""
    runs = Runs(tmp_path_factory.mktemp("sweep") / "runs")
    try:
        runs.runner("--poll", "0.2", "--max-concurrent", "2")
        runs.submit(SWEEP.format(trials=3, seeds=1), "lr.yaml")
        paths = only_sweep(runs)
        wait_complete(paths)
    finally:
        runs.cleanup()
    yield paths


@pytest.fixture
def swept(made: sweeps.SweepPaths, monkeypatch: pytest.MonkeyPatch) -> sweeps.SweepPaths:
    """The module's sweep folder as this test's runs folder (no runner started for it)."""
    dashboard_on(made.dir.parent.parent, monkeypatch)
    auth.throttle().reset()
    return made


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    return dashboard_on(tmp_path / "runs", monkeypatch)


def sweeps_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return open_page(at, PAGE)


def test_trials_table_equals_the_study_and_the_charts_are_drawn(swept: sweeps.SweepPaths):
    before = (swept.journal.read_bytes(), os.stat(swept.journal).st_mtime_ns)
    at = sweeps_page()
    study = study_of(swept)
    (table,) = at.dataframe
    frame = table.value.sort_values("number")
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert list(frame["number"]) == [t.number for t in trials]
    assert list(frame["state"]) == [t.state.name.lower().replace("fail", "failed") for t in trials]
    for (_, row), trial in zip(frame.iterrows(), trials, strict=True):
        if trial.value is not None:
            assert row["value"] == pytest.approx(trial.value)
        for name, value in trial.params.items():
            assert row[name] == pytest.approx(value)
    state = sweeps.read_sweep_state(swept)
    assert state is not None
    links = list(frame["run"])
    assert links == [f"run?run={state.trial_runs[str(t.number)][0]}" for t in trials]
    assert any(f"{state.asked}/3 trials asked" in m.value for m in at.markdown)
    assert any(f"Best trial: {study.best_trial.number}" in s.value for s in at.subheader)
    charts = at.get("vega_lite_chart")
    complete = sum(1 for t in trials if t.value is not None)
    assert len(charts) >= 2, "history and parallel coordinates"
    found, why = sweep_data.importances(swept.id)
    if complete >= 2 and found:  # Optuna ranks them unless every trial took the same values
        assert len(charts) == 3 and set(found) == set(study.best_trial.params)
        assert sum(found.values()) == pytest.approx(1.0)
    elif complete < 2:
        assert "at least 2 complete trials" in why
    # Reading the study wrote nothing to it.
    assert (swept.journal.read_bytes(), os.stat(swept.journal).st_mtime_ns) == before


def test_the_journal_is_opened_read_only(swept: sweeps.SweepPaths):
    backend = sweep_study.ReadOnlyJournal(str(swept.journal))
    with pytest.raises(PermissionError):
        backend.append_logs([{"op_code": 0}])
    missing = swept.dir / "nothing.journal"
    sweep_study.ReadOnlyJournal(str(missing))
    assert not missing.exists(), "a missing journal is not created"


def test_promote_and_pause_write_sweep_requests(swept: sweeps.SweepPaths):
    at = sweeps_page()
    at.number_input(key=f"sweep_promote_steps_{swept.id}").set_value(5000)
    at.button(key=f"sweep_promote_{swept.id}").click().run()
    assert not at.exception
    try:
        valid, invalid = sweeps.pending_sweep_requests(swept)
        assert invalid == []
        assert [(r.action, r.params, r.source) for r in valid] == [
            ("promote", {"n_timesteps": 5000}, "dashboard")
        ]
        # A complete sweep offers no stop or pause: nothing is left to act on.
        assert at.button(key=f"sweep_stop_{swept.id}").disabled
        assert at.button(key=f"sweep_pause_{swept.id}").disabled
    finally:
        for request in swept.requests.glob("*.json"):
            request.unlink()  # the browser test's runner must find nothing to do


def test_a_viewer_sees_no_controls(swept: sweeps.SweepPaths, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    at = sweeps_page()
    assert at.dataframe, "the trials are shown to a viewer"
    enabled = [b.key for b in at.button if not b.disabled and b.key not in VIEW_ONLY_BUTTONS]
    assert enabled == []
    assert not [w for w in at.number_input if w.key and w.key.startswith("sweep_promote")]
    assert any("Read-only" in c.value for c in at.caption)
    for action in ("stop", "pause", "resume", "promote"):
        with pytest.raises(PermissionError):
            actions.sweep_request(swept.id, action)
    assert sweeps.pending_sweep_requests(swept) == ([], [])


def add_entry(at: AppTest, key: str, low: str, high: str, log: bool = False) -> AppTest:
    at.selectbox(key="sweep_form_key").set_value(key)
    at.selectbox(key="sweep_form_kind").set_value("float")
    at.text_input(key="sweep_form_low").set_value(low)
    at.text_input(key="sweep_form_high").set_value(high)
    at.checkbox(key="sweep_form_log").set_value(log)
    at.button(key="sweep_form_add").click().run()
    assert not at.exception, at.exception
    return at


def test_new_sweep_form_rejects_a_bad_space_and_queues_a_valid_one(empty: RunStore):
    at = sweeps_page()
    assert any("No sweeps yet" in i.value for i in at.info)
    at.text_area(key="sweep_form_base_cartpole").set_value(cartpole(2048, 1024))
    add_entry(at, "hyperparams.learning_rate", "0.01", "0.0001", log=True)
    problems = " ".join(e.value for e in at.error)
    assert "sweep.space.hyperparams.learning_rate" in problems and "above high" in problems
    at.button(key="sweep_form_submit").click().run()
    assert empty.queue_files() == [], "a rejected sweep is not queued"

    add_entry(at, "hyperparams.learning_rate", "0.0001", "0.01", log=True)
    at.number_input(key="sweep_form_n_trials").set_value(5)
    assert not at.error and at.success
    at.button(key="sweep_form_submit").click().run()
    (queued,) = empty.queue_files()
    sweep = parse_sweep(queued.read_bytes())
    assert sweep.block.n_trials == 5 and sweep.base.n_timesteps == 2048
    space = sweep.block.space["hyperparams.learning_rate"]
    assert space.bounds == (0.0001, 0.01) and space.log


def test_run_on_n_seeds_is_a_sweep_without_a_space(empty: RunStore):
    at = sweeps_page()
    at.number_input(key="sweep_form_seeds").set_value(3).run()
    assert not at.error
    at.button(key="sweep_form_submit").click().run()
    (queued,) = empty.queue_files()
    sweep = parse_sweep(queued.read_bytes())
    assert sweep.block.seeds == 3 and sweep.block.space == {} and sweep.n_trials == 1


def test_new_run_on_n_seeds_queues_a_seeds_only_sweep(empty: RunStore):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    open_page(at, "app_pages/new_run.py")
    at.number_input(key="new_run_seeds").set_value(4)
    at.button(key="new_run_submit").click().run()
    assert not at.exception and at.success
    (queued,) = empty.queue_files()
    sweep = parse_sweep(queued.read_bytes())
    assert sweep.block.seeds == 4 and sweep.block.space == {}
    assert sweep.base.env == "CartPole-v1"


def test_runs_page_shows_the_sweep_column_and_filters_by_it(swept: sweeps.SweepPaths):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    frame = at.dataframe[0].value
    state = sweeps.read_sweep_state(swept)
    assert state is not None
    expected = {f"{swept.id}/t{n}" for n in state.trial_runs}
    assert set(frame["sweep"]) == expected
    at.multiselect(key="runs_filter_sweep").set_value([swept.id]).run()
    assert len(at.dataframe[0].value) == len(expected)


def test_a_pruned_run_says_so_on_runs_and_run(empty: RunStore):
    path = empty.submit(cartpole(10_000, 1_000) + "name: pruned-one\n", "p.yaml")
    record = empty.accept(path, empty.read_queue_file(path))
    assert record is not None
    record.state = RunState.STOPPED
    record.pruned_at = 512
    record.started_at = record.ended_at = time.time()
    empty.write_run(record)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert list(at.dataframe[0].value["state"]) == ["stopped (pruned at 512)"]
    assert any("stopped (pruned at 512)" in m.value for m in at.markdown)
    at.query_params["run"] = record.id
    open_page(at, "app_pages/run.py")
    assert any("stopped (pruned at 512)" in m.value for m in at.markdown)


@pytest.mark.timeout(600)
def test_sweeps_page_in_chromium_draws_history_parallel_and_trials(made: sweeps.SweepPaths):
    """A real streamlit server over the real sweep: the page draws its charts (canvas or svg
    inside each vega-embed container) and the trials table. Set RETRO_ML_SCREENSHOT_DIR to
    save sweeps-page.png (docs/sweeps-page.png is made this way)."""
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, Dashboard

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)
    app = Dashboard(made.dir.parent.parent)
    shots = os.environ.get("RETRO_ML_SCREENSHOT_DIR")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            # Streamlit scrolls inside its own container: a tall window shows the whole page.
            height = 2300 if shots else 1000
            page = browser.new_page(viewport={"width": 1400, "height": height})
            try:
                page.set_default_timeout(90_000)
                page.goto(f"{app.url}/sweeps")
                expect(page.get_by_text("Optimisation history").first).to_be_attached()
                for name in ("sweep_history", "sweep_parallel"):
                    chart = page.locator(f".st-key-{name} .vega-embed")
                    drawn = chart.locator("canvas, svg").first
                    expect(drawn).to_be_visible()
                    box = drawn.bounding_box()
                    assert box is not None and box["width"] > 100 and box["height"] > 100
                table = page.locator('[data-testid="stDataFrame"]').first
                expect(table).to_be_visible()
                expect(page.get_by_text("Best trial:").first).to_be_visible()
                if shots:  # once the runner the server started is seen alive (no warning)
                    time.sleep(3)
                    page.reload()
                    parallel = page.locator(".st-key-sweep_parallel .vega-embed")
                    expect(parallel.locator("canvas, svg").first).to_be_visible()
                    time.sleep(3)
                    page.screenshot(path=str(Path(shots) / "sweeps-page.png"), full_page=True)
            except BaseException:
                page.screenshot(path=str(made.dir.parent.parent.parent / "failure.png"))
                raise
            finally:
                browser.close()
    finally:
        app.close()


def test_seed_spread_is_the_range_of_the_runs_final_metric(swept: sweeps.SweepPaths):
    """A trial's runs' final values, lowest and highest: here two real trials' runs stand for
    two seeds of one trial (a one-run trial has no spread)."""
    state = sweeps.read_sweep_state(swept)
    assert state is not None
    first, second = state.trial_runs["0"][0], state.trial_runs["1"][0]
    paired = state.model_copy(update={"trial_runs": {"0": [first, second], "1": [second]}})
    study = study_of(swept)
    finals = [study.trials[0].value, study.trials[1].value]  # each trial told its run's final
    spread = sweep_data.seed_spread(paired, state.metric)
    assert spread[1] is None
    assert spread[0] == (pytest.approx(min(finals)), pytest.approx(max(finals)))


def test_a_running_sweep_offers_pause_and_stop_which_write_requests(
    made: sweeps.SweepPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The real sweep copied into another runs folder, its sweep.json saying running (as the
    runner writes it while trials train): Pause then Stop each write one sweep request."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(made.dir.parent.parent, root, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    paths = sweeps.sweep_paths(root, made.id)
    state = sweeps.read_sweep_state(paths)
    assert state is not None
    state.state = "running"
    sweeps.write_sweep_state(paths, state)
    at = sweeps_page()
    assert not at.button(key=f"sweep_stop_{made.id}").disabled
    at.button(key=f"sweep_pause_{made.id}").click().run()
    at.button(key=f"sweep_stop_{made.id}").click().run()
    assert not at.exception
    valid, _ = sweeps.pending_sweep_requests(paths)
    assert [r.action for r in valid] == ["pause", "stop"]


def test_a_cloned_run_is_offered_as_the_base_of_a_sweep(empty: RunStore):
    at = sweeps_page()
    at.session_state["new_run_yaml"] = cartpole(3000, 1000) + "name: from-a-clone\n"
    at.run()
    at.selectbox(key="sweep_form_preset").set_value("Cloned run").run()
    at.number_input(key="sweep_form_seeds").set_value(2).run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="sweep_form_submit").click().run()
    (queued,) = empty.queue_files()
    sweep = parse_sweep(queued.read_bytes())
    assert sweep.base.name == "from-a-clone" and sweep.base.n_timesteps == 3000


def test_a_sweeps_report_shows_its_study_offline_and_leaves_it_untouched(
    swept: sweeps.SweepPaths, tmp_path: Path
):
    """The sweep's report (issue 17): the best trials and every trial equal the study's, the
    history, importances and parallel coordinates are drawn, nothing is fetched, and the
    journal is neither written nor touched."""
    from reports.build import make_sweep_report
    from tests.test_reports import _assert_offline_and_drawn, _open_offline

    before = (swept.journal.read_bytes(), os.stat(swept.journal).st_mtime_ns)
    made = make_sweep_report(RunStore(swept.dir.parent.parent), swept.id, out=tmp_path / "s.html")
    page = _open_offline(made.html)
    _assert_offline_and_drawn(page, at_least=2)  # history, parallel (importances: 3 trials)
    complete = [t for t in study_of(swept).get_trials() if t.state.name == "COMPLETE"]
    best = sorted(complete, key=lambda t: (-t.value, t.number))
    shown = [(int(r[0]), float(r[1])) for r in page["cells"]["best"] if r]
    assert shown == [(t.number, t.value) for t in best[:5]]
    every = [int(r[0]) for r in page["cells"]["trials"] if r]
    assert every == sorted(t.number for t in study_of(swept).get_trials())
    assert (swept.journal.read_bytes(), os.stat(swept.journal).st_mtime_ns) == before


def test_the_sweeps_report_button_asks_the_runner(swept: sweeps.SweepPaths):
    from runstore import reports

    at = sweeps_page()
    at.button(key=f"sweep_report_{swept.id}").click().run()
    assert not at.exception
    root = swept.dir.parent.parent
    (pending,), invalid = reports.pending_report_requests(root, 10)
    assert invalid == [] and (pending[1].sweep, pending[1].runs) == (swept.id, [])
    pending[0].unlink()
