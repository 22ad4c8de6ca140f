"""Dashboard inputs cannot read or delete outside the runs folder, and damaged run folders are a
problem on that run, never an exception page.

Under Streamlit's AppTest (the real app script, in this process): every hostile run id of
tests/test_hostile_input.py fed as the Run page's ``?run=`` query parameter (the Runs page's
picker offers listed runs only) and into every action the buttons call; a run folder that is
itself a symlink to a folder outside; a run whose ``requests/`` is a link out. The folder outside is
hashed before and after. Then the damaged copies of tests/faults (truncated status.json,
garbage run.json, cut and bit-flipped event files, a checkpoint zip cut in half) of a real
short CartPole run, rendered on the Runs and Run pages.
"""

from __future__ import annotations

import random
import shutil
import signal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import actions
from runstore import RunState, RunStore
from runstore.paths import UnsafePathError
from tests.conftest import Runs, cartpole
from tests.faults.harness import damage_copies
from tests.test_dashboard import app, folder, make_run, open_page  # noqa: F401
from tests.test_hostile_input import BAD_IDS, _tree, outside  # noqa: F401  (a fixture)

SECRET = '"action": "stop", "at": 1'  # the text of outside/secret.json


@pytest.fixture
def store(request: pytest.FixtureRequest) -> RunStore:
    """The dashboard tests' runs folder (env, no autostart, no password, fresh throttle)."""
    return request.getfixturevalue("folder")


def _plant(rs: RunStore, elsewhere: Path) -> str:
    """A run folder that is a symlink to a complete run folder outside the runs folder."""
    run_id = make_run(rs, RunState.STOPPED, "planted")
    target = elsewhere / "planted-run"
    shutil.move(rs.paths(run_id).dir, target)
    (rs.root / run_id).symlink_to(target, target_is_directory=True)
    return run_id


def _shown(at: AppTest) -> str:
    """Every text the page shows (titles, markdown, text, code, captions, alerts)."""
    parts = []
    for kind in ("title", "markdown", "text", "code", "caption", "error", "warning", "info"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(e.value) for e in at.sidebar.error]
    return "\n".join(parts)


def test_hostile_run_query_parameters_show_a_real_run(
    store: RunStore,
    outside: Path,  # noqa: F811
) -> None:
    alpha = make_run(store, RunState.STOPPED, "alpha")
    beta = make_run(store, RunState.FAILED, "beta")
    planted = _plant(store, outside)
    before = _tree(outside)
    hostile = [*BAD_IDS, planted, "../outside/secret.json", str(outside / "secret.json"),
               "../outside/planted-run", f"{alpha}/../../outside"]  # fmt: skip
    at = app()
    for bad in hostile:
        at.query_params["run"] = bad
        open_page(at, "app_pages/run.py")
        assert at.title[0].value in ("alpha", "beta"), bad
        assert at.query_params["run"] in (alpha, beta), bad
        shown = _shown(at)
        assert "planted" not in shown and SECRET not in shown, bad
    at = open_page(at, "app_pages/runs.py")
    assert sorted(at.dataframe[0].value["name"]) == ["alpha", "beta"]
    assert "planted" not in _shown(at)  # the linked folder is not listed, not even as damaged
    assert _tree(outside) == before
    assert store.run_ids() == sorted([alpha, beta])
    assert all(store.pending_requests(i) == ([], []) for i in (alpha, beta))


def test_actions_refuse_hostile_ids_and_links_out(
    store: RunStore,
    outside: Path,  # noqa: F811
) -> None:
    alpha = make_run(store, RunState.RUNNING, "alpha")
    planted = _plant(store, outside)
    before = _tree(outside)
    listing = sorted(p.name for p in store.root.iterdir())
    for bad in [*BAD_IDS, planted]:
        for action in (actions.stop, actions.pause, actions.resume, actions.delete):
            with pytest.raises(UnsafePathError) as caught:
                action(bad)
            assert "run id" in str(caught.value) or "symlink" in str(caught.value), bad
        with pytest.raises(ValueError):
            actions.clone_yaml(bad)
    assert (outside / "planted-run" / "run.json").is_file()
    assert sorted(p.name for p in store.root.iterdir()) == listing

    # A run whose requests/ is a link out: the button says why, nothing is written there.
    requests = store.paths(alpha).requests
    requests.rmdir()
    requests.symlink_to(outside, target_is_directory=True)
    at = open_page(app(), "app_pages/runs.py")
    at.selectbox(key="runs_selected").set_value(alpha).run()
    at.button(key=f"runs_stop_{alpha}").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("symlink" in e.value for e in at.error)
    assert _tree(outside) == before


@pytest.mark.timeout(400)
def test_damaged_run_folders_are_a_problem_on_that_run(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(runs.store.root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    monkeypatch.delenv("RETRO_ML_PASSWORD", raising=False)
    runner = runs.runner("--poll", "0.2")
    runs.submit(cartpole(steps=1_200, ckpt=200, extra="keep_checkpoints: 10\n"), "base.yaml")
    base = runs.only_run()
    runs.wait_state(base, RunState.COMPLETED, timeout=300)
    runner.kill(signal.SIGTERM)  # the pages alone from here
    damaged = damage_copies(runs.store, base, random.Random(7))

    at = open_page(app(), "app_pages/runs.py")
    names = sorted(at.dataframe[0].value["name"])
    assert names == sorted([runs.record(base).name, "ckpt-cut", "status-cut", "tb-cut", "tb-flip"])
    assert any(damaged.run_garbage in e.value and "damaged" in e.value for e in at.error)
    at.selectbox(key="runs_selected").set_value(damaged.status_cut).run()
    assert not at.exception
    assert any("status.json cannot be read" in w.value for w in at.warning)

    for run_id in damaged.all:
        at.query_params["run"] = run_id
        open_page(at, "app_pages/run.py")
        warnings = [w.value for w in at.warning]
        if run_id == damaged.run_garbage:
            assert any("run.json is damaged" in e.value for e in at.error)
            continue
        assert at.title[0].value == (runs.record(run_id).name)
        if run_id == damaged.status_cut:
            assert any("status.json cannot be read" in w for w in warnings)
        if run_id == damaged.tb_flip:
            assert any("Event files are damaged" in w and "byte" in w for w in warnings)
        if run_id == damaged.ckpt_cut:
            cut = damaged.cut_checkpoint.dir.name
            assert any(cut in t.value and "incomplete" in t.value for t in at.text)
        if run_id in (damaged.base, damaged.tb_cut, damaged.ckpt_cut):
            assert len(at.get("vega_lite_chart")) >= 2, run_id  # curves up to the damage
