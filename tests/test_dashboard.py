"""The dashboard's pages under Streamlit's AppTest, against runs folders built through the
run store in every lifecycle state and by real short runs (runner + trainer processes).

AppTest runs the real app script (dashboard/app.py and its pages) in this process, without a
browser; ``RETRO_ML_NO_AUTOSTART`` keeps it from starting a runner where a test builds the
states itself (a runner would adopt them and change them). The LAN rule is tested by making
the session's TCP peer a LAN address (``auth.peer_address``), the one thing AppTest cannot
give: it has no network client at all.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import actions, auth
from runstore import RunState, RunStore, TrainStatus, write_status_file
from runstore.models import Diagnosis
from runstore.settings import load_settings
from tests.conftest import cartpole, dashboard_on, wait_for

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGES = ["app_pages/runs.py", "app_pages/new_run.py", "app_pages/run.py", "app_pages/settings.py"]
LAN_PEER = "192.0.2.10"  # TEST-NET-1: never this machine
# Buttons that change nothing (they re-read what is shown); every other button is a control.
VIEW_ONLY_BUTTONS = {"system_recheck"}


def make_run(rs: RunStore, state: RunState, name: str) -> str:
    """A run in ``state``, made the way the runner makes one (queue file, accept, record)."""
    path = rs.submit(cartpole(10_000, 1_000) + f"name: {name}\n", f"{name}.yaml")
    record = rs.accept(path, rs.read_queue_file(path))
    assert record is not None
    record.state = state
    record.record(state.value, "made by the test")
    if state not in (RunState.QUEUED,):
        record.started_at = record.queued_at + 1
        write_status_file(
            rs.paths(record.id).status_json,
            TrainStatus(
                phase="training",
                timesteps=4_000,
                total_timesteps=10_000,
                fps=1234.0,
                last_episode_return=21.0,
                best_episode_return=42.0,
            ),
        )
    if state in (RunState.FAILED, RunState.LOST):
        record.reason = "the training process was killed by SIGKILL"
        record.diagnosis = Diagnosis(
            code="oom",
            title="Out of memory",
            meaning="The machine ran out of memory.",
            steps=("Use fewer environments (n_envs).",),
            evidence="Killed",
        )
    rs.write_run(record)
    return record.id


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    rs = dashboard_on(tmp_path / "runs", monkeypatch)
    auth.throttle().reset()
    return rs


@pytest.fixture
def every_state(folder: RunStore) -> dict[RunState, str]:
    return {state: make_run(folder, state, f"run-{state.value}") for state in RunState}


def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def buttons(at: AppTest) -> dict[str, bool]:
    """Button key -> enabled, for the buttons of one run (keys end with the run id)."""
    return {b.key: not b.disabled for b in at.button if b.key}


def select_run(at: AppTest, run_id: str) -> AppTest:
    at.selectbox(key="runs_selected").set_value(run_id).run()
    assert not at.exception
    return at


def test_empty_folder_teaches_presets_and_the_queue(folder: RunStore) -> None:
    at = open_page(app(), "app_pages/runs.py")
    assert "No runs yet" in at.info[0].value
    assert str(folder.queue_dir) in at.info[0].value
    assert {b.label for b in at.button} >= {"Use CartPole PPO smoke run", "Use Pong PPO (zoo)"}


def test_a_queue_file_that_could_not_be_rejected_shows_why(folder: RunStore) -> None:
    stuck = folder.queue_dir / "bad.yaml"
    stuck.write_text("algo: ppo\nenv: CartPole-v1\nn_timesteps: -5\n")
    folder.note_unmovable(stuck, ["n_timesteps: must be above 0"], PermissionError(13, "denied"))
    folder.submit("algo: ppo\nenv: CartPole-v1\nn_timesteps: 64\n", "waiting.yaml")
    at = open_page(app(), "app_pages/runs.py")
    texts = [t.value for t in at.text]
    assert any(t.startswith("bad.yaml") for t in texts)
    assert any(t.startswith("waiting.yaml") for t in texts)
    assert not any(".error.txt" in t for t in texts)  # the note is not listed as a config
    (error,) = [e.value for e in at.error]
    assert "n_timesteps: must be above 0" in error and "stays in the queue" in error


def test_every_page_renders_every_state(every_state: dict[RunState, str]) -> None:
    at = app()
    for page in PAGES:
        open_page(at, page)
    at = open_page(at, "app_pages/runs.py")
    table = at.dataframe[0].value
    assert sorted(table["name"]) == sorted(f"run-{s.value}" for s in RunState)
    assert dict(zip(table["name"], table["state"], strict=True)) == {
        f"run-{s.value}": s.value for s in RunState
    }
    running = table[table["name"] == "run-running"].iloc[0]
    assert running["progress"] == pytest.approx(0.4)
    assert running["best return"] == 42.0
    for state, run_id in every_state.items():
        at.query_params["run"] = run_id
        open_page(at, "app_pages/run.py")
        assert at.title[0].value == f"run-{state.value}"
        if state in (RunState.FAILED, RunState.LOST):
            assert "SIGKILL" in at.error[0].value
            assert any("Out of memory" in m.value for m in at.markdown)


@pytest.mark.parametrize(
    ("state", "enabled", "disabled"),
    [
        (RunState.QUEUED, {"stop", "clone"}, {"pause", "resume_ckpt", "delete"}),
        (RunState.RUNNING, {"stop", "pause", "clone"}, {"resume_ckpt"}),
        (RunState.PAUSED, {"stop", "resume", "clone"}, {"resume_ckpt"}),
        (RunState.STOPPING, {"clone"}, {"stop", "pause", "resume_ckpt"}),
        (RunState.STOPPED, {"resume_ckpt", "clone"}, {"stop", "pause"}),
        (RunState.COMPLETED, {"clone"}, {"stop", "pause", "resume_ckpt"}),
        (RunState.FAILED, {"resume_ckpt"}, {"stop", "pause"}),
        (RunState.LOST, {"resume_ckpt"}, {"stop", "pause"}),
    ],
)
def test_buttons_follow_the_state(
    folder: RunStore, state: RunState, enabled: set[str], disabled: set[str]
) -> None:
    run_id = make_run(folder, state, f"run-{state.value}")
    at = select_run(open_page(app(), "app_pages/runs.py"), run_id)
    got = buttons(at)
    for action in enabled:
        assert got[f"runs_{action}_{run_id}"], (action, got)
    for action in disabled:
        assert not got[f"runs_{action}_{run_id}"], (action, got)


def test_buttons_write_requests_and_delete_needs_confirmation(folder: RunStore) -> None:
    run_id = make_run(folder, RunState.RUNNING, "victim")
    at = select_run(open_page(app(), "app_pages/runs.py"), run_id)
    at.button(key=f"runs_pause_{run_id}").click().run()
    valid, _ = folder.pending_requests(run_id)
    assert [r.action for r in valid] == ["pause"]
    assert valid[0].source == "dashboard"
    assert not buttons(at)[f"runs_delete_{run_id}"]
    at.checkbox(key=f"runs_confirm_delete_{run_id}").check().run()
    at.button(key=f"runs_delete_{run_id}").click().run()
    assert [r.action for r in folder.pending_requests(run_id)[0]] == ["pause", "delete"]


def test_clone_prefills_the_new_run_form(folder: RunStore) -> None:
    run_id = make_run(folder, RunState.COMPLETED, "original")
    at = select_run(open_page(app(), "app_pages/runs.py"), run_id)
    at.button(key=f"runs_clone_{run_id}").click().run()
    assert not at.exception
    assert at.title[0].value == "New run"
    # AppTest goes back to its own page on the next run; a browser stays on the new one.
    open_page(at, "app_pages/new_run.py")
    assert at.selectbox(key="new_run_preset").value == "Cloned run"
    assert "name: original-copy" in at.code[0].value
    at.button(key="new_run_submit").click().run()
    (queued,) = folder.queue_files()
    config = folder.read_queue_file(queued)
    assert config.name == "original-copy" and config.n_timesteps == 10_000


def test_new_run_form_queues_a_valid_file(folder: RunStore) -> None:
    at = open_page(app(), "app_pages/new_run.py")
    assert at.selectbox(key="new_run_preset").value == "CartPole PPO smoke run"
    at.number_input(key="nr_cartpole_n_timesteps").set_value(3_000).run()
    at.text_input(key="nr_cartpole_time_budget").set_value("2h").run()
    assert not at.error
    at.button(key="new_run_submit").click().run()
    assert at.success, "no confirmation shown"
    (queued,) = folder.queue_files()
    config = folder.read_queue_file(queued)
    assert (config.env, config.algo, config.n_timesteps) == ("CartPole-v1", "ppo", 3_000)
    assert config.time_budget == 7200
    assert config.hyperparams is not None and config.hyperparams.n_envs == 4


def test_atari_preset_keeps_the_zoo_settings(folder: RunStore) -> None:
    at = open_page(app(), "app_pages/new_run.py")
    at.selectbox(key="new_run_preset").set_value("Pong PPO (zoo)").run()
    assert not at.error
    at.button(key="new_run_submit").click().run()
    config = folder.read_queue_file(folder.queue_files()[0])
    assert config.env == "ALE/Pong-v5" and config.atari is not None
    assert config.hyperparams.policy == "CnnPolicy" and config.hyperparams.n_envs == 8


def test_the_fast_pong_preset_comes_first_and_is_queued_as_written(folder: RunStore) -> None:
    at = open_page(app(), "app_pages/new_run.py")
    assert at.selectbox(key="new_run_preset").options[:2] == [
        "CartPole PPO smoke run",  # the default: checks the chain in a minute
        "Pong PPO, fast",  # the first agent offered
    ]
    at.selectbox(key="new_run_preset").set_value("Pong PPO, fast").run()
    assert not at.error
    at.button(key="new_run_submit").click().run()
    config = folder.read_queue_file(folder.queue_files()[0])
    hp = config.hyperparams
    # the preset's own choices, not the Zoo's that the form starts other Atari runs from
    assert (hp.n_envs, hp.n_steps, hp.n_epochs, hp.batch_size) == (8, 128, 3, 32)
    assert (hp.learning_rate, hp.clip_range) == (2.5e-4, 0.1)  # constant, not the Zoo's lin_
    assert config.atari is not None and config.atari.repeat_action_probability == 0.0
    assert (config.stop_at_score, config.eval_every, config.eval_episodes) == (18, 50_000, 10)


def test_bad_form_shows_the_error_and_queues_nothing(folder: RunStore) -> None:
    at = open_page(app(), "app_pages/new_run.py")
    at.text_input(key="nr_cartpole_name").set_value("bad/name").run()
    assert "not a valid run name" in at.error[0].value
    at.expander[1]  # the advanced hyperparameters exist, folded
    at.button(key="new_run_submit").click().run()
    assert any("Not queued" in e.value for e in at.error)
    assert folder.queue_files() == []
    at.text_input(key="nr_cartpole_name").set_value("fine").run()
    at.number_input(key="nr_cartpole_ppo_0_hp_batch_size").set_value(100_000).run()
    assert "batch_size" in at.error[0].value
    at.button(key="new_run_submit").click().run()
    assert folder.queue_files() == []


def test_estimate_uses_earlier_runs_of_the_same_game_algo_device(folder: RunStore) -> None:
    make_run(folder, RunState.COMPLETED, "earlier")  # CartPole PPO, 1234 steps/s (status.json)
    at = open_page(app(), "app_pages/new_run.py")
    at.selectbox(key="nr_cartpole_device").set_value("auto").run()
    at.number_input(key="nr_cartpole_n_timesteps").set_value(1_234_000).run()
    assert "About 16 m 40 s" in at.info[-1].value
    at.text_input(key="nr_cartpole_time_budget").set_value("1m").run()
    assert "74 k of 1.23 M steps" in at.info[-1].value


def test_remote_browser_without_password_is_read_only(
    every_state: dict[RunState, str], monkeypatch: pytest.MonkeyPatch, folder: RunStore
) -> None:
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    at = app()
    assert any("Read-only" in i.value for i in at.sidebar.info)
    every_page = sorted(
        f"app_pages/{p.name}" for p in (Path(APP).parent / "app_pages").glob("*.py")
    )
    for page in every_page:  # every page in the navigation, the other engineers' ones too
        open_page(at, page)
        enabled = [b.key for b in at.button if not b.disabled]
        assert [k for k in enabled if k not in VIEW_ONLY_BUTTONS] == [], page
    at = open_page(at, "app_pages/runs.py")
    for run_id in every_state.values():
        select_run(at, run_id)
        assert [b for b in at.button if not b.disabled] == []
    run_id = every_state[RunState.RUNNING]
    for action in (actions.stop, actions.pause, actions.resume, actions.delete):
        with pytest.raises(PermissionError):
            action(run_id)
    with pytest.raises(PermissionError):
        actions.submit_config(cartpole(1000))
    assert folder.pending_requests(run_id)[0] == [] and folder.queue_files() == []


def test_remote_browser_with_password(folder: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = make_run(folder, RunState.RUNNING, "shared")
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    monkeypatch.setenv("RETRO_ML_PASSWORD", "correct horse")
    at = open_page(app(), "app_pages/runs.py")
    assert f"runs_stop_{run_id}" not in buttons(at)
    at.text_input(key="auth_password_input").set_value("wrong")
    at.sidebar.button[0].click().run()
    assert any("wrong password" in e.value for e in at.sidebar.error)
    assert f"runs_stop_{run_id}" not in buttons(at)
    at.text_input(key="auth_password_input").set_value("correct horse")
    at.sidebar.button[0].click().run()
    assert buttons(at)[f"runs_stop_{run_id}"]
    at.button(key=f"runs_stop_{run_id}").click().run()
    assert [r.action for r in folder.pending_requests(run_id)[0]] == ["stop"]


def test_failed_passwords_are_throttled_for_every_session(
    folder: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    monkeypatch.setenv("RETRO_ML_PASSWORD", "correct horse")
    for _ in range(auth.FREE_ATTEMPTS):
        at = app()  # a fresh session each time: the counter is per server process
        at.text_input(key="auth_password_input").set_value("guess")
        at.sidebar.button[0].click().run()
    at = app()
    at.text_input(key="auth_password_input").set_value("correct horse")
    at.sidebar.button[0].click().run()
    assert any("too many wrong passwords" in e.value for e in at.sidebar.error)


def test_throttle_doubles_the_wait_and_forgets_after_an_hour() -> None:
    gate = auth.Throttle()
    for _ in range(auth.FREE_ATTEMPTS):
        assert gate.wait_seconds(now=1000.0) == 0
        gate.record_failure(now=1000.0)
    assert gate.wait_seconds(now=1000.0) == auth.FIRST_WAIT_SECONDS
    gate.record_failure(now=1030.0)
    assert gate.wait_seconds(now=1030.0) == 2 * auth.FIRST_WAIT_SECONDS
    for i in range(20):
        gate.record_failure(now=1100.0 + i)
    assert gate.wait_seconds(now=1119.0) == auth.MAX_WAIT_SECONDS
    assert gate.wait_seconds(now=1119.0 + auth.FORGET_AFTER_SECONDS + 1) == 0


def test_empty_password_counts_as_none(folder: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    monkeypatch.setenv("RETRO_ML_PASSWORD", "")
    at = app()
    assert not at.sidebar.text_input  # no password box: nothing could ever match
    assert ok_is_false(auth.check_password(""))


def ok_is_false(result: tuple[bool, str]) -> bool:
    return result[0] is False


def test_settings_page_writes_the_runner_settings(folder: RunStore) -> None:
    at = open_page(app(), "app_pages/settings.py")
    assert any("No password is set" in m.value for m in at.markdown)
    at.number_input(key="settings_max_concurrent").set_value(3)
    at.selectbox(key="settings_device").set_value("cpu")
    at.number_input(key="settings_keep_checkpoints").set_value(5)
    at.text_input(key="settings_ray_address").set_value(" 192.168.1.10:6379 ")
    at.button[0].click().run()
    assert not at.exception and at.success
    settings = load_settings(folder.root)
    assert (settings.max_concurrent, settings.default_device, settings.keep_checkpoints) == (
        3,
        "cpu",
        5,
    )
    assert settings.ray_address == "192.168.1.10:6379"
    at = open_page(app(), "app_pages/settings.py")  # a save keeps the address it shows
    assert at.text_input(key="settings_ray_address").value == "192.168.1.10:6379"
    at.text_input(key="settings_ray_address").set_value("not an address")
    at.button[0].click().run()
    assert any("is not a Ray address" in e.value for e in at.error)
    assert load_settings(folder.root).ray_address == "192.168.1.10:6379"  # the bad one not saved


def test_real_run_page_shows_curves_timeline_and_checkpoints(runs, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(runs.store.root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    runs.runner()
    runs.submit(cartpole(steps=2_000, ckpt=500, n_envs=2), "curves.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.COMPLETED, timeout=600)  # a ceiling: ~20 s unloaded
    at = app()
    at.query_params["run"] = run_id
    open_page(at, "app_pages/run.py")
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3, "return chart and training metric charts"
    texts = [t.value for t in at.text]
    assert any("Completed" in t for t in texts)
    assert any("Checkpoint saved at step" in t for t in texts)
    assert any("100% of the steps" in t for t in texts)
    assert any("New best return" in t for t in texts)
    assert any("step-" in t and "complete" in t for t in texts)
    assert any(c.value.startswith("On disk: ") for c in at.caption)  # issue 17, Disk
    at = open_page(at, "app_pages/runs.py")
    assert list(at.dataframe[0].value["state"]) == ["completed"]


def test_app_starts_a_runner_when_none_is_alive(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    root = tmp_path / "runs"
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(root))
    monkeypatch.delenv("RETRO_ML_NO_AUTOSTART", raising=False)
    rs = RunStore(root)
    at = AppTest.from_file(APP, default_timeout=90).run()
    try:
        assert not at.exception
        info = wait_for(rs.read_runner_info, 60, "the runner the dashboard started")
        assert rs.runner_is_alive()
        assert any("started one in the background" in i.value for i in at.sidebar.info)
    finally:
        info = rs.read_runner_info()
        if info is not None:
            os.killpg(info.pid, signal.SIGKILL)  # started in its own session: pgid == pid


def test_new_run_form_preselects_the_device_recommended_for_this_machine(
    folder: RunStore,
) -> None:
    """This machine has no GPU (no NVML library): the form proposes the CPU and says why."""
    at = open_page(app(), "app_pages/new_run.py")
    at.selectbox(key="new_run_preset").set_value("Blank").run()
    assert at.selectbox(key="nr_blank_device").value == "cpu"
    assert any("n_envs" in c.value and "device cpu" in c.value for c in at.caption)
