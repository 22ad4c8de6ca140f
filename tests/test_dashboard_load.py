"""Load on the dashboard: the Runs page with 1,000 run folders, made through ``runstore``.

The folders are made the way the runner makes them (queue file, ``accept``, ``write_run``, a
status.json each; every state; four game/algorithm pairs: tests/faults/harness.py
``many_runs``). The real app script runs under AppTest: the Runs page lists every run with its
state and progress, one page of 50 at a time, the filters work, and a Run page opens; then a
run changes on disk and the next rerun shows it (the per-run caches are keyed by mtime, so
they never go stale). How long
it takes is measured by ``make bench`` (bench/bench_dashboard.py), not asserted here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import PAGE_SIZE  # rows per Runs page
from runstore import RunState, RunStore, TrainStatus, write_status_file
from tests.faults.harness import many_runs
from tests.test_dashboard import APP, open_page

RUNS = 1_000


def every_page(at: AppTest) -> pd.DataFrame:
    """The Runs table across all its pages (the page reads only the rows it shows)."""
    frames = [at.dataframe[0].value]
    assert len(frames[0]) <= PAGE_SIZE
    pager = [n for n in at.number_input if n.key == "runs_page"]
    if pager:
        for page in range(2, int(pager[0].max) + 1):
            at.number_input(key="runs_page").set_value(page).run()
            assert not at.exception
            frames.append(at.dataframe[0].value)
        at.number_input(key="runs_page").set_value(1).run()
    return pd.concat(frames, ignore_index=True)


@pytest.mark.timeout(600)
def test_runs_page_with_a_thousand_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "runs"
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    store = RunStore(root)
    ids = many_runs(store, RUNS)
    assert len(store.run_ids()) == RUNS

    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception, [e.message for e in at.exception]
    first_page = at.dataframe[0].value
    assert list(first_page["id"]) == sorted(ids, reverse=True)[:PAGE_SIZE]  # newest first
    table = every_page(at)
    assert len(table) == RUNS and set(table["id"]) == set(ids)
    per_state = Counter(table["state"])
    assert per_state == Counter(s.value for s in (list(RunState) * RUNS)[:RUNS])
    assert table["progress"].between(0, 1).all()
    assert list(table["id"]) == sorted(ids, reverse=True)  # newest first

    at.multiselect(key="runs_filter_state").set_value(["failed"]).run()
    assert not at.exception
    failed = every_page(at)
    assert set(failed["state"]) == {"failed"} and len(failed) == per_state["failed"]

    # A run changes on disk: the next rerun shows it, the other 999 come from the cache.
    changed = next(i for i in ids if store.read_run(i).state == RunState.RUNNING)
    write_status_file(
        store.paths(changed).status_json,
        TrainStatus(phase="training", timesteps=12_345, total_timesteps=50_000, fps=1.0),
    )
    at.multiselect(key="runs_filter_state").set_value(["running"]).run()
    row = every_page(at).set_index("id").loc[changed]
    assert row["progress"] == pytest.approx(12_345 / 50_000)

    at.query_params["run"] = ids[RUNS // 2]
    open_page(at, "app_pages/run.py")
    assert at.title[0].value == f"load-{RUNS // 2:04d}"
