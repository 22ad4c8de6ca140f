"""Old (and newer) run folders keep working (issue 20, item 7).

A run folder's ``config.yaml`` is read tolerantly: a key this version does not know (written
by an older or a newer Retro ML) is dropped from the config, named in a warning and left in the
file; the Runs page still shows the game and algorithm, the Run page shows the warning, and a
resume trains on. Queue files stay strict. The stored config carries ``config_version``; a
folder without it is version 1, a newer one is read with a warning, and older versions pass
through the migration table.

The first two tests use the real runner and trainer on CartPole; the rest are unit tests of
the one reader, ``runstore.config.read_stored_config``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from runstore import RunState, RunStore, checkpoints
from runstore import config as config_module
from runstore.config import (
    CONFIG_VERSION,
    CONFIG_VERSION_KEY,
    ConfigError,
    parse_config,
    read_stored_config,
    to_stored_yaml,
)
from runstore.store import ERROR_SUFFIX

from .conftest import Runs, cartpole, wait_for

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def add_keys(path: Path, **keys: object) -> None:
    """Add keys to a stored config.yaml, the way an older or newer version might have."""
    doc = yaml.safe_load(path.read_text())
    doc.update(keys)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def add_hyperparam(path: Path, key: str, value: object) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["hyperparams"][key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


# -- the real runner, trainer and dashboard ------------------------------------------------------


def test_a_finished_run_with_an_unknown_key_shows_its_game_and_the_warning(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(runs.store.root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    runs.runner()
    runs.submit(cartpole(steps=1_000, ckpt=500), "old.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.COMPLETED, timeout=240)
    stored = runs.store.paths(run_id).config
    # The runner wrote the format version into the folder at intake.
    assert yaml.safe_load(stored.read_text())[CONFIG_VERSION_KEY] == CONFIG_VERSION
    add_keys(stored, future_option=3)

    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    at = open_page(at, "app_pages/runs.py")
    table = at.dataframe[0].value
    row = table[table["name"] == "cartpole-ppo"].iloc[0]
    assert (row["game"], row["algo"]) == ("CartPole-v1", "PPO"), row.to_dict()

    at.query_params["run"] = run_id
    open_page(at, "app_pages/run.py")
    assert at.markdown and any("`CartPole-v1` · PPO" in m.value for m in at.markdown)
    warnings = [w.value for w in at.warning]
    assert any("future_option" in w for w in warnings), warnings
    assert any("future_option: 3" in c.value for c in at.code)  # the file is shown as it is

    # The same document as a queue file is refused, the key named: the queue stays strict.
    runs.submit(stored.read_text(), "copy.yaml")
    note = runs.store.rejected_dir / f"copy.yaml{ERROR_SUFFIX}"
    wait_for(note.exists, 60, "the copy to be rejected")
    assert "future_option: unknown key" in note.read_text()


def test_resume_of_a_stopped_run_with_an_unknown_key_trains_on_to_the_end(runs: Runs) -> None:
    runs.runner()
    runs.submit(cartpole(steps=8_000, ckpt=500), "resume.yaml")
    run_id = runs.only_run()
    paths = runs.store.paths(run_id)
    wait_for(lambda: checkpoints.latest_complete(paths.checkpoints)[0], 240, "a checkpoint")
    runs.store.write_request(run_id, "stop")
    runs.wait_state(run_id, RunState.STOPPED, timeout=180)
    stopped_at = runs.status(run_id).timesteps
    assert stopped_at < 8_000
    add_keys(paths.config, future_option=3)
    add_hyperparam(paths.config, "future_hyperparam", "x")

    runs.store.write_request(run_id, "resume")
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=300)
    assert record.state == RunState.COMPLETED, (record.reason, record.diagnosis)
    status = runs.status(run_id)
    assert status.timesteps >= 8_000
    assert status.resumed_from is not None
    log = (paths.logs / "train.log").read_text()
    assert "future_option" in log and "hyperparams.future_hyperparam" in log


# -- the one reader ---------------------------------------------------------------------------


CARTPOLE = cartpole(steps=1_000, ckpt=500).encode()


def stored_bytes(**extra: object) -> bytes:
    doc = yaml.safe_load(to_stored_yaml(parse_config(CARTPOLE)))
    doc.update(extra)
    return yaml.safe_dump(doc, sort_keys=False).encode()


def test_the_stored_config_starts_with_its_version_and_reads_back_unchanged() -> None:
    config = parse_config(CARTPOLE)
    text = to_stored_yaml(config)
    assert text.startswith(f"{CONFIG_VERSION_KEY}: {CONFIG_VERSION}\n")
    stored = read_stored_config(text.encode())
    assert stored.config == config
    assert (stored.version, stored.ignored, stored.warnings) == (CONFIG_VERSION, {}, ())


def test_a_folder_without_a_version_reads_as_version_1() -> None:
    doc = yaml.safe_load(stored_bytes())
    del doc[CONFIG_VERSION_KEY]
    stored = read_stored_config(yaml.safe_dump(doc).encode())
    assert stored.version == 1
    assert stored.warnings == ()
    assert stored.config == parse_config(CARTPOLE).model_copy(update={"seed": stored.config.seed})


def test_unknown_keys_at_every_level_are_dropped_named_and_kept() -> None:
    doc = yaml.safe_load(stored_bytes(future_option=3, resources={"gpu": "auto", "tpu": 1}))
    doc["hyperparams"]["future_hyperparam"] = "x"
    doc["hyperparams"]["policy_kwargs"] = {"net_arch": [8], "future_layer": True}
    stored = read_stored_config(yaml.safe_dump(doc).encode())
    assert stored.ignored == {
        "future_option": 3,
        "resources.tpu": 1,
        "hyperparams.future_hyperparam": "x",
        "hyperparams.policy_kwargs.future_layer": True,
    }
    assert stored.config.hyperparams.policy_kwargs.net_arch == [8]
    (warning,) = stored.warnings
    for key in stored.ignored:
        assert key in warning


def test_a_newer_version_reads_with_a_warning() -> None:
    stored = read_stored_config(stored_bytes(**{CONFIG_VERSION_KEY: CONFIG_VERSION + 1}))
    assert stored.version == CONFIG_VERSION + 1
    assert stored.config.env == "CartPole-v1"
    assert any("newer" in w and str(CONFIG_VERSION + 1) in w for w in stored.warnings)


@pytest.mark.parametrize("version", [0, -1, "two", True, 1.5, None])
def test_a_version_that_no_writer_wrote_is_a_problem(version: object) -> None:
    with pytest.raises(ConfigError, match=CONFIG_VERSION_KEY):
        read_stored_config(stored_bytes(**{CONFIG_VERSION_KEY: version}))


def test_older_versions_go_through_the_migration_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook later versions fill: version N's document -> version N+1's."""

    def rename(doc: dict) -> dict:
        doc = dict(doc)
        doc["keep_checkpoints"] = doc.pop("checkpoints_kept")
        return doc

    monkeypatch.setattr(config_module, "CONFIG_VERSION", 2)
    monkeypatch.setitem(config_module.MIGRATIONS, 1, rename)
    doc = yaml.safe_load(stored_bytes())
    del doc[CONFIG_VERSION_KEY]
    doc["checkpoints_kept"] = doc.pop("keep_checkpoints") + 4
    stored = read_stored_config(yaml.safe_dump(doc).encode())
    assert (stored.version, stored.config.keep_checkpoints, stored.ignored) == (1, 7, {})
    # A queue file that says it is of an older version is migrated the same way, then
    # checked strictly; one without the key is taken as written for this version.
    queued = parse_config(CARTPOLE + b"config_version: 1\ncheckpoints_kept: 2\n")
    assert queued.keep_checkpoints == 2
    with pytest.raises(ConfigError, match="checkpoints_kept: unknown key"):
        parse_config(CARTPOLE + b"checkpoints_kept: 2\n")


def test_a_damaged_stored_config_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        read_stored_config(stored_bytes(keep_checkpoints=-1))


# -- queue files stay strict --------------------------------------------------------------------


def test_a_queue_file_with_an_unknown_key_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(CARTPOLE + b"future_option: 3\nkeep_checkpoint: 2\n")
    problems = info.value.problems
    assert "future_option: unknown key" in problems
    assert any(
        "keep_checkpoint: unknown key; did you mean 'keep_checkpoints'" in p for p in problems
    )


def test_a_run_folders_config_copied_into_the_queue_is_accepted() -> None:
    """config_version is a key a queue file may carry: a stored config is a valid queue file."""
    config = parse_config(CARTPOLE)
    assert parse_config(to_stored_yaml(config).encode()) == config


def test_a_queue_file_from_a_newer_version_is_refused() -> None:
    with pytest.raises(ConfigError, match="newer"):
        parse_config(CARTPOLE + f"{CONFIG_VERSION_KEY}: {CONFIG_VERSION + 1}\n".encode())


def test_the_store_reads_a_folder_tolerantly(tmp_path: Path) -> None:
    rs = RunStore(tmp_path / "runs")
    rs.ensure_layout()
    record = rs.accept(rs.submit(CARTPOLE.decode(), "a.yaml"), parse_config(CARTPOLE))
    assert record is not None
    add_keys(rs.paths(record.id).config, future_option=3)
    assert rs.read_config(record.id).env == "CartPole-v1"
    assert rs.read_stored_config(record.id).ignored == {"future_option": 3}
