"""The runner's part of the dashboard's controls: the `delete` request and runs/settings.yaml,
against a real runner process and real training."""

from __future__ import annotations

import pytest

from runstore import RunState
from runstore.settings import RunnerSettings, SettingsError, parse_settings, save_settings

from .conftest import Runs, cartpole, group_alive, wait_for


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
