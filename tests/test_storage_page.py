"""The dashboard's side of disk use (issue 17, Disk): the System page's Storage section (the
total, every run's size, a clean-up preview and its button) and the Run page's size line,
driven with Streamlit's AppTest on a runs folder built through ``runstore``; a viewer on
another machine sees the preview and cannot clean up. The System page itself is checked for
its Storage section in ``tests/test_system_page.py`` (its run needs the diagnostics
subprocess, which these tests leave out).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import actions, auth
from runstore.models import RunState
from runstore.store import RunStore
from runstore.videos import clip_name

from .conftest import dashboard_on
from .test_disk import best, checkpoint, new_run, write

STORAGE = "from dashboard.components.storage import render_storage\nrender_storage()\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RunStore, str, str]:
    """Two runs: a stopped one with three checkpoints, a best model and clips, and a running
    one (its clean-up is left out)."""
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    stopped = new_run(store, name="stopped.yaml")
    paths = store.paths(stopped.id)
    for step in (64, 128, 192):
        checkpoint(paths.checkpoints, step, model_bytes=200_000)
    best(paths.checkpoints, 128)
    write(paths.videos / clip_name(64), 300_000)
    write(paths.videos / "step-000000064.json", 100)
    running = new_run(store, name="running.yaml")
    running.state = RunState.RUNNING
    store.write_run(running)
    checkpoint(store.paths(running.id).checkpoints, 64)
    return store, stopped.id, running.id


def run_storage(monkeypatch: pytest.MonkeyPatch, remote: bool = False) -> AppTest:
    if remote:  # a browser on another host, no password set
        monkeypatch.setattr(auth, "peer_address", lambda: "192.0.2.10")
    at = AppTest.from_string(STORAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def choose(at: AppTest, run_ids: list[str], checkpoints: bool, clips: bool) -> AppTest:
    at.multiselect(key="storage_runs").set_value(run_ids)
    at.checkbox(key="storage_checkpoints").set_value(checkpoints)
    at.checkbox(key="storage_clips").set_value(clips)
    at.run()
    assert not at.exception, at.exception
    return at


def test_storage_shows_sizes_previews_and_asks_the_runner_per_run(
    folder: tuple[RunStore, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, stopped, running = folder
    at = run_storage(monkeypatch)
    assert [m.label for m in at.metric] == ["Runs folder"]
    table = at.dataframe[0].value
    assert set(table["id"]) == {stopped, running}
    first = table.iloc[0]  # largest first
    assert first["id"] == stopped and first["checkpoints"] > 0.5 and first["clips"] > 0.25
    assert not [b for b in at.button if b.key == "storage_cleanup"]  # nothing chosen yet

    choose(at, [stopped, running], checkpoints=True, clips=True)

    assert any("Left out" in c.value and running in c.value for c in at.caption)
    assert any("This would free" in i.value for i in at.info)
    plan = at.dataframe[1].value
    assert sorted(plan["deletes"]) == [
        "checkpoints/step-000000000064",
        "checkpoints/step-000000000128",
        f"videos/{clip_name(64)}",
    ]
    assert set(plan["run"]) == {stopped}
    at.button(key="storage_cleanup").click().run()
    assert not at.exception, at.exception
    assert any("Clean-up asked for 1 run" in s.value for s in at.success)
    requests, _ = store.pending_requests(stopped)
    assert [(r.action, r.params) for r in requests] == [
        ("cleanup", {"checkpoints": True, "clips": True})
    ]
    assert store.pending_requests(running) == ([], [])  # the live run was left out
    assert len(list(store.paths(stopped).checkpoints.glob("step-*"))) == 3  # nothing deleted


def test_a_remote_viewer_sees_the_preview_and_cannot_clean_up(
    folder: tuple[RunStore, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, stopped, _running = folder
    at = run_storage(monkeypatch, remote=True)
    choose(at, [stopped], checkpoints=True, clips=False)
    assert any("This would free" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "storage_cleanup"]
    assert any("Read-only here" in c.value for c in at.caption)
    with pytest.raises(PermissionError):  # a forged client meets the server-side check
        actions.request(stopped, "cleanup", {"checkpoints": True})
    assert store.pending_requests(stopped) == ([], [])


def test_run_page_line_shows_the_size_by_kind(
    folder: tuple[RunStore, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _store, stopped, _running = folder
    script = (
        f"from dashboard.components.storage import render_run_size\nrender_run_size({stopped!r})\n"
    )
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, at.exception
    [line] = [c.value for c in at.caption]
    assert line.startswith("On disk: ")
    for kind in ("checkpoints", "clips", "events", "logs", "other"):
        assert f"{kind} " in line
    assert "clips 293 KB" in line  # the one clip (300,000 bytes); its sidecar is 100 B more


def test_all_archived_runs_is_one_choice(
    folder: tuple[RunStore, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Delete clips of archived runs" (issue 17): one tick chooses every archived run."""
    store, stopped, running = folder
    write(store.paths(running).videos / clip_name(64), 1000)
    record = store.read_run(stopped)
    assert record is not None
    record.archived = True
    store.write_run(record)
    at = run_storage(monkeypatch)
    table = at.dataframe[0].value
    assert dict(zip(table["id"], table["archived"], strict=True)) == {
        stopped: True,
        running: False,
    }
    at.checkbox(key="storage_archived").check()
    at.checkbox(key="storage_clips").check().run()
    assert not at.exception, at.exception
    assert list(at.dataframe[1].value["deletes"]) == [f"videos/{clip_name(64)}"]
    assert set(at.dataframe[1].value["run"]) == {stopped}
    at.button(key="storage_cleanup").click().run()
    requests, _ = store.pending_requests(stopped)
    assert [r.params for r in requests] == [{"checkpoints": False, "clips": True}]
    assert store.pending_requests(running) == ([], [])
