"""The runner's part of the dashboard's controls: the `delete` request and runs/settings.yaml,
against a real runner process and real training."""

from __future__ import annotations

from pathlib import Path

import pytest

from runstore import RunState
from runstore.settings import (
    RunnerSettings,
    SettingsError,
    load_settings,
    parse_settings,
    save_settings,
)

from .conftest import ROOT, Runs, cartpole, group_alive, wait_for


def test_delete_stops_a_live_run_then_removes_its_folder(runs: Runs) -> None:
    runs.runner()
    runs.submit(cartpole(steps=500_000), "long.yaml")
    run_id = runs.only_run()
    runs.wait_steps(run_id, 200)
    pgid = runs.record(run_id).pgid
    assert pgid and group_alive(pgid)
    runs.store.write_request(run_id, "delete", source="test")
    wait_for(lambda: not runs.store.paths(run_id).dir.exists(), 60, "the run folder to go")
    wait_for(lambda: not group_alive(pgid), 30, "the training process group to die")
    assert runs.store.run_ids() == []


def test_delete_of_a_queued_run_never_starts_it(runs: Runs) -> None:
    runs.runner("--max-concurrent", "1")
    runs.submit(cartpole(steps=500_000, extra="name: first\n"), "first.yaml")
    first = runs.only_run()
    runs.wait_steps(first, 100)
    runs.submit(cartpole(steps=300, extra="name: second\n"), "second.yaml")
    second = wait_for(lambda: [i for i in runs.store.run_ids() if i != first], 30, "run 2")[0]
    assert runs.record(second).state == RunState.QUEUED
    runs.store.write_request(second, "delete", source="test")
    wait_for(lambda: not runs.store.paths(second).dir.exists(), 30, "the queued run to go")
    assert runs.record(first).state == RunState.RUNNING


def test_settings_file_sets_defaults_and_is_followed_on_change(runs: Runs) -> None:
    save_settings(
        runs.store.root,
        RunnerSettings(max_concurrent=2, default_device="cpu", keep_checkpoints=5),
    )
    runs.runner()
    assert runs.store.read_runner_info().max_concurrent == 2
    runs.submit(cartpole(steps=300), "defaults.yaml")
    run_id = runs.only_run()
    config = runs.store.read_config(run_id)
    assert (config.device, config.keep_checkpoints) == ("cpu", 5)
    save_settings(runs.store.root, RunnerSettings(max_concurrent=3))
    wait_for(lambda: runs.store.read_runner_info().max_concurrent == 3, 30, "the runner to re-read")


def test_a_key_in_the_config_wins_over_the_settings(runs: Runs) -> None:
    save_settings(runs.store.root, RunnerSettings(keep_checkpoints=5))
    runs.runner()
    runs.submit(cartpole(steps=300, extra="keep_checkpoints: 1\n"), "own.yaml")
    assert runs.store.read_config(runs.only_run()).keep_checkpoints == 1


def test_command_line_flag_wins_over_the_file(runs: Runs) -> None:
    save_settings(runs.store.root, RunnerSettings(max_concurrent=4))
    runs.runner("--max-concurrent", "1")
    assert runs.store.read_runner_info().max_concurrent == 1


def test_a_bad_settings_file_is_reported_and_the_runner_keeps_going(runs: Runs) -> None:
    (runs.store.root / "settings.yaml").write_text("max_concurrent: 0\ndefault_device: gpu\n")
    runner = runs.runner()
    assert runs.store.read_runner_info().max_concurrent == 1
    wait_for(lambda: "ignored" in runner.output(), 30, "the runner to report the bad file")
    assert "default_device" in runner.output()


def test_settings_are_validated_by_the_config_schema_rules() -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings(b"max_concurrent: 0\ndefault_device: gpu\nmax_concurent: 2\n")
    text = " ".join(err.value.problems)
    assert "max_concurrent" in text and "not a device" in text and "max_concurent" in text


def test_settings_yaml_that_is_a_folder_is_explained_on_the_settings_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an exception: the page names the file and the fix, and a save says the same."""
    from streamlit.testing.v1 import AppTest

    from dashboard import auth
    from runstore import RunStore

    root = tmp_path / "runs"
    RunStore(root).ensure_layout()
    (root / "settings.yaml").mkdir()
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    auth.throttle().reset()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90).run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception, [e.message for e in at.exception]
    shown = " ".join([e.value for e in at.error] + [c.value for c in at.code])
    assert str(root / "settings.yaml") in shown
    assert "is a folder" in shown and "remove or rename" in shown, shown

    at.number_input(key="settings_max_concurrent").set_value(2)
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("is a folder" in e.value for e in at.error), [e.value for e in at.error]
    assert (root / "settings.yaml").is_dir()  # nothing of the user's was removed


def test_load_settings_names_the_file_and_the_fix_for_a_folder(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").mkdir()
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path)
    assert str(tmp_path / "settings.yaml") in str(err.value)
    assert "is a folder" in str(err.value) and "remove or rename" in str(err.value)
    with pytest.raises(SettingsError, match="is a folder"):
        save_settings(tmp_path, RunnerSettings())
