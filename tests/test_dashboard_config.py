"""The dashboard's shipped settings and its pure parts: .streamlit/config.toml (SEC-08), the
`make share` host list, TensorBoard smoothing, the duration estimate and the timeline."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import polars as pl

from dashboard import share
from dashboard.data import build_row
from dashboard.durations import estimate
from runstore.models import RunRecord, RunState, TrainStatus
from runstore.timeline import best_return_events, lifecycle_events, milestone_events

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_streamlit_config_is_locked_down() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    assert server["headless"] is True
    assert server["enableCORS"] is True and server["enableXsrfProtection"] is True
    assert server["enableStaticServing"] is False and server["runOnSave"] is False
    assert "enableAgentApi" not in server or server["enableAgentApi"] is False
    assert set(server["allowedHosts"]) == {"localhost", "127.0.0.1", "::1"}
    assert config["browser"]["gatherUsageStats"] is False
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text().splitlines()


def test_streamlit_is_at_least_the_patched_version() -> None:
    major, minor = (int(p) for p in version("streamlit").split(".")[:2])
    assert (major, minor) >= (1, 54)


def test_share_allows_this_machine_only_and_binds_all() -> None:
    hosts = share.allowed_hosts()
    assert hosts[:3] == ["localhost", "127.0.0.1", "::1"]
    assert all(ip in hosts for ip in share.lan_addresses())
    cmd = share.command(8600)
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    given = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--server.allowedHosts"]
    assert given == hosts and "*" not in given


def row(env: str, algo: str, device: str, fps: float) -> object:
    record = RunRecord(id="20260101-000000-x-0000", name="x", state=RunState.COMPLETED)
    status = TrainStatus(timesteps=10, total_timesteps=10, fps=fps, device=device)
    r = build_row(record, status, None)
    return r.__class__(**{**r.__dict__, "env": env, "algo": algo})


def test_estimate_uses_only_the_same_game_algorithm_and_device() -> None:
    rows = [
        row("ALE/Pong-v5", "ppo", "cuda", 1000.0),
        row("ALE/Pong-v5", "ppo", "cuda", 3000.0),
        row("ALE/Pong-v5", "ppo", "cpu", 50.0),
        row("ALE/Pong-v5", "dqn", "cuda", 99999.0),
    ]
    found = estimate(rows, "ALE/Pong-v5", "ppo", "cuda", 7_200_000, None)
    assert (found.fps, found.runs, found.seconds) == (2000.0, 2, 3600.0)
    budget = estimate(rows, "ALE/Pong-v5", "ppo", "cuda", 10_000_000, 1800.0)
    assert budget.steps == 3_600_000 and "time budget" in budget.text
    none = estimate(rows, "ALE/Breakout-v5", "ppo", "cuda", 1000, None)
    assert none.seconds is None and "No earlier" in none.text


def test_timeline_shows_what_the_runner_noted_about_the_runs_files_and_signals() -> None:
    """A damaged run.json, a refused signal, a trust action and coalesced requests are shown
    on the run with their detail (the runner records them in run.json's events)."""
    record = RunRecord(id="20260101-000000-x-0000", name="x")
    record.record("starting", at=1.0)
    record.record("run-json-damaged", "unreadable (cut short); rewritten", at=2.0)
    record.record("signal-refused", "pgid 42 is not this run's", at=3.0)
    record.record("trusted", "trust requested (cli)", at=4.0)
    record.record(
        "request-ignored", "pause does nothing in state completed (3000 requests)", at=5.0
    )
    texts = [e.text for e in lifecycle_events(record)]
    assert texts == [
        "Started",
        "run.json was damaged — unreadable (cut short); rewritten",
        "Signal refused — pgid 42 is not this run's",
        "Trusted — trust requested (cli)",
        "Request ignored — pause does nothing in state completed (3000 requests)",
    ]


def test_timeline_names_lifecycle_bests_and_milestones() -> None:
    record = RunRecord(id="20260101-000000-x-0000", name="x")
    for at, kind in [(1, "queued"), (2, "starting"), (3, "running"), (4, "paused"),
                     (5, "running"), (6, "stopping"), (7, "stopped"), (8, "queued"),
                     (9, "starting"), (10, "completed")]:  # fmt: skip
        record.record(kind, at=float(at))
    texts = [e.text for e in lifecycle_events(record)]
    assert texts == [
        "Queued", "Started", "Paused", "Resumed", "Stop requested", "Stopped",
        "Queued again", "Restarted (attempt 2)", "Completed",
    ]  # fmt: skip
    episodes = pl.DataFrame(
        {"step": [10, 20, 30, 40], "wall_time": [1.0, 2.0, 3.0, 4.0],
         "episode_return": [5.0, 3.0, 9.0, 9.0], "episode_length": [1, 1, 1, 1]}
    )  # fmt: skip
    assert [e.at for e in best_return_events(episodes)] == [1.0, 3.0]
    points = pl.DataFrame({"step": [0, 30, 60, 100], "wall_time": [0.0, 1.0, 2.0, 3.0]})
    assert [e.text.split("%")[0] for e in milestone_events(points, 100)] == [
        "10", "25", "50", "75", "100"
    ]  # fmt: skip
    assert [e.at for e in milestone_events(points, 100)] == [1.0, 1.0, 2.0, 3.0, 3.0]
