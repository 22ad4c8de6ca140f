"""The Compare page and what it stands on, on real files: two real short CartPole trainings
(``python -m training``, seeds 1 and 2) and four Pong runs whose event files TensorBoard's own
writer produced (seeds 1-4, known returns), all made through ``runstore``. Also the TensorBoard
launcher: a real ``tensorboard`` process that must answer HTTP, then stop.
"""

from __future__ import annotations

import io
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from analysis import compare_data as cd
from analysis.atari_scores import human_normalized
from analysis.compare_charts import chart_png, chart_svg, compare_chart
from analysis.seeds import group_key
from dashboard.tensorboard_launcher import TensorBoardLauncher, answers_http
from runstore import RunState, RunStore
from runstore.metrics import load_episodes, load_scalars
from runstore.models import TensorBoardInfo
from tests.conftest import ROOT, accept, cartpole, train

PAGE = str(ROOT / "dashboard" / "app_pages" / "compare.py")
PONG_EPISODES = 300


def _write_pong_events(folder: Path, seed: int) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for i in range(PONG_EPISODES):
        for tag, value in (("episode/return", -21.0 + 0.1 * i + seed), ("episode/length", 800.0)):
            summary = summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]
            )
            writer.add_event(
                event_pb2.Event(wall_time=1.7e9 + seed * 1e4 + i, step=i * 100, summary=summary)
            )
    writer.close()


@pytest.fixture(scope="module")
def compare_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunStore]:
    store = RunStore(tmp_path_factory.mktemp("compare") / "runs")
    store.ensure_layout()
    real = [
        accept(store, cartpole(steps=1024, ckpt=100_000).replace("seed: 1", f"seed: {s}"), f"c{s}")
        for s in (1, 2)
    ]
    train(store, real)
    for run_id in real:  # what the runner would record once the trainer exited 0
        record = store.read_run(run_id)
        assert record is not None
        record.state = RunState.COMPLETED
        store.write_run(record)
    for seed in (1, 2, 3, 4):
        run_id = accept(
            store, f"algo: ppo\nenv: ALE/Pong-v5\nn_timesteps: 100000\nseed: {seed}\n", f"p{seed}"
        )
        _write_pong_events(store.paths(run_id).tb / "train_1", seed)
    yield store


@pytest.fixture
def app(compare_runs: RunStore, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(compare_runs.root))
    return AppTest.from_file(PAGE, default_timeout=120)


def _runs_widget(at: AppTest):
    return next(m for m in at.multiselect if m.label == "Runs")


def _chart_rows(at: AppTest) -> int:
    import pyarrow as pa

    proto = at.get("vega_lite_chart")[0].proto
    return sum(pa.ipc.open_stream(d.data.data).read_all().num_rows for d in proto.datasets)


def _infos(store: RunStore, game: str) -> list[cd.RunInfo]:
    infos = []
    for run_id in store.run_ids():
        config = store.read_config(run_id)
        if game in config.env:
            infos.append(
                cd.RunInfo(run_id, run_id, config.env, config.algo, config.seed, group_key(config))
            )
    return infos


def test_compare_page_shows_real_runs_and_groups_their_seeds(app: AppTest, compare_runs: RunStore):
    at = app.run()
    assert not at.exception
    # default metric for SB3 runs: the 100-episode mean; both real runs picked
    assert at.selectbox(key="cmp_metric").value == "rollout/ep_rew_mean"
    chosen = _runs_widget(at).value
    assert len(chosen) == 2 and all("cartpole" in c for c in chosen)
    logged = sum(
        load_scalars(compare_runs.paths(c).dir)
        .filter(pl.col("tag") == "rollout/ep_rew_mean")
        .height
        for c in chosen
    )
    assert f"{logged:,} points in the selection" in at.caption[0].value
    assert _chart_rows(at) == logged  # few points: all drawn
    # The two runs' configs (the same file but its seed) differ in seed only: the diff says so.
    (expander,) = [e for e in at.expander if e.label.startswith("Config diff")]
    assert expander.label == "Config diff: 1 key differs"
    diff = next(d.value for d in at.dataframe if "key" in d.value.columns)
    configs = [compare_runs.read_config(c) for c in chosen]
    assert list(diff["key"]) == ["seed"]
    row = diff[diff["key"] == "seed"].iloc[0]
    labels = [c for c in diff.columns if c != "key"]
    assert sorted(row[labels]) == sorted(str(c.seed) for c in configs)

    at.selectbox(key="cmp_metric").select(cd.EPISODES_METRIC).run()
    at.checkbox(key="cmp_group").check().run()
    assert not at.exception
    assert "Groups: mean line, 95% bootstrap band" in at.caption[0].value
    spec = at.get("vega_lite_chart")[0].proto.spec
    assert '"low"' in spec and '"high"' in spec and '"mean"' in spec
    # CartPole has no human/random reference scores: the option is off, with the reason
    assert at.checkbox(key="cmp_norm").disabled
    assert [b.label for b in at.get("download_button")] == [
        "Data (CSV)",
        "Data (Parquet)",
        "Chart (PNG)",
        "Chart (SVG)",
    ]


def test_compare_page_filters_by_game_and_normalises_atari_scores(app: AppTest):
    at = app.run()
    at.multiselect(key="cmp_games").select("ALE/Pong-v5").run()
    assert not at.exception
    assert at.selectbox(key="cmp_metric").value == cd.EPISODES_METRIC
    assert len(_runs_widget(at).value) == 4
    assert not at.checkbox(key="cmp_norm").disabled
    at.checkbox(key="cmp_norm").check().run()
    at.checkbox(key="cmp_group").check().run()
    at.radio(key="cmp_x").set_value(cd.X_RELATIVE).run()
    assert not at.exception
    spec = at.get("vega_lite_chart")[0].proto.spec
    assert "human-normalised" in spec and '"iqm"' in spec  # 4 seeds: IQM drawn
    at.multiselect(key="cmp_states").select("completed").run()  # only CartPole completed
    assert not at.exception
    assert "None of the 0 matching runs" in at.info[0].value
    at.multiselect(key="cmp_games").unselect("ALE/Pong-v5").run()
    assert all("cartpole" in c for c in _runs_widget(at).value)
    assert len(_runs_widget(at).value) == 2


def test_final_scores_by_group_compare_two_seed_groups_with_their_statistics(
    app: AppTest, compare_runs: RunStore
):
    at = app.run()
    at.selectbox(key="cmp_metric").select(cd.EPISODES_METRIC).run()
    _runs_widget(at).set_value(compare_runs.run_ids()).run()  # CartPole's two first
    assert len(_runs_widget(at).value) == 6
    assert not [e for e in at.expander if e.label == "Final scores by group"]  # not grouped yet
    at.checkbox(key="cmp_group").check().run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "IQM" in d.value.columns)
    rows = {r["group"]: r for r in table.to_dict("records")}
    # Pong (synthetic events): episode i of seed s returns -21 + 0.1 i + s, 300 episodes; the
    # final score is the mean of the last 100: 3.95 + s, for seeds 1 to 4.
    (pong,) = [r for label, r in rows.items() if "4 runs" in label]
    assert pong["runs"] == 4
    assert pong["mean"] == pytest.approx(6.45) and pong["median"] == pytest.approx(6.45)
    assert pong["IQM"] == pytest.approx(6.45)  # the middle two of 4.95 .. 7.95
    assert pong["mean 95% low"] < 6.45 < pong["mean 95% high"]
    # CartPole (real runs): the same from the run store's episodes.
    (cart,) = [r for label, r in rows.items() if "2 runs" in label]
    finals = []
    for run_id in compare_runs.run_ids():
        if "CartPole" in compare_runs.read_config(run_id).env:
            episodes = load_episodes(compare_runs.paths(run_id).dir)
            returns = episodes.sort("step", maintain_order=True)["episode_return"].to_list()
            finals.append(float(np.mean(returns[-100:])))
    assert cart["mean"] == pytest.approx(np.mean(finals))
    # Group A (the first picked: CartPole) against B (Pong): CartPole's short runs end near
    # 20-40 a game, Pong's on 5-8, so every CartPole run ends above every Pong run.
    text = " ".join(m.value for m in at.markdown)
    assert "P(A > B) = 1.00" in text and "Welch's t-test p = " in text
    assert "2 and 4 runs" in at.warning[0].value  # too few seeds to conclude: said
    at.selectbox(key="cmp_vs_a").set_value(at.selectbox(key="cmp_vs_b").value).run()
    assert "Pick two different groups" in " ".join(c.value for c in at.caption)


def test_selection_export_round_trips_as_csv_and_parquet(compare_runs: RunStore):
    infos = _infos(compare_runs, "Pong")
    series = {
        i.id: cd.metric_series(
            cd.EPISODES_METRIC, pl.DataFrame(), load_episodes(compare_runs.paths(i.id).dir)
        )
        for i in infos
    }
    table = cd.selection_table(infos, series, cd.EPISODES_METRIC, 0.6, normalize=True)
    assert table.height == 4 * PONG_EPISODES
    first = table.filter(pl.col("run_id") == infos[0].id)
    np.testing.assert_allclose(
        first["y"], human_normalized("ALE/Pong-v5", first["value"].to_numpy())
    )
    assert pl.read_parquet(io.BytesIO(cd.to_parquet(table))).equals(table)
    back = pl.read_csv(io.BytesIO(cd.to_csv(table)), schema=table.schema)
    assert back.select("run_id", "step", "seed").equals(table.select("run_id", "step", "seed"))
    np.testing.assert_allclose(back["value"], table["value"], rtol=1e-12)

    groups = cd.seed_groups(table, infos, cd.X_STEPS)
    assert groups["n_seeds"].unique().to_list() == [4]
    chart = compare_chart(cd.downsample(table, cd.X_STEPS, 100), groups, cd.X_STEPS, "score")
    assert chart_png(chart)[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.fromstring(chart_svg(chart)).tag.endswith("svg")


def test_downsampled_points_are_exact_logged_values(compare_runs: RunStore):
    infos = _infos(compare_runs, "Pong")[:1]
    eps = load_episodes(compare_runs.paths(infos[0].id).dir)
    table = cd.selection_table(
        infos,
        {infos[0].id: cd.metric_series(cd.EPISODES_METRIC, pl.DataFrame(), eps)},
        cd.EPISODES_METRIC,
        0.9,
    )
    small = cd.downsample(table, cd.X_STEPS, 50)
    assert small.height == 50
    assert small["step"][0] == 0 and small["step"][-1] == (PONG_EPISODES - 1) * 100
    joined = small.join(eps, on="step")
    assert (joined["value"] == joined["episode_return"]).all()


# -- TensorBoard beside the dashboard ---------------------------------------------------------


@pytest.fixture
def launcher(compare_runs: RunStore) -> Iterator[TensorBoardLauncher]:
    tb = TensorBoardLauncher(compare_runs)
    yield tb
    info = compare_runs.read_tensorboard_info()
    if info is not None:
        try:
            proc = psutil.Process(info.pid)
            if abs(proc.create_time() - info.create_time) < 0.05:
                os.killpg(info.pgid, signal.SIGKILL)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
        compare_runs.clear_tensorboard_info()


def test_tensorboard_starts_answers_http_is_reused_and_stops(
    launcher: TensorBoardLauncher, compare_runs: RunStore
):
    import json
    import urllib.request

    info = launcher.start()
    assert answers_http(info.port)
    with urllib.request.urlopen(f"http://127.0.0.1:{info.port}/data/runs", timeout=10) as resp:
        tb_runs = json.load(resp)
    # every run shows under its run id (the folder name carries the run's name)
    for run_id in compare_runs.run_ids():
        assert f"{run_id}/tb/train_1" in tb_runs
    # a restarted dashboard (a new launcher on the same folder) finds the same instance
    again = TensorBoardLauncher(RunStore(compare_runs.root))
    assert again.running() == info
    assert again.start() == info
    assert again.stop()
    assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == "zombie"
    assert not answers_http(info.port, timeout=1)
    assert compare_runs.read_tensorboard_info() is None
    assert not launcher.stop()


def test_a_recycled_pid_is_never_taken_for_tensorboard(compare_runs: RunStore):
    me = psutil.Process()
    compare_runs.write_tensorboard_info(
        TensorBoardInfo(
            pid=me.pid,
            pgid=os.getpgid(0),
            create_time=me.create_time() - 100,
            host="127.0.0.1",
            port=1,
            logdir=str(compare_runs.root),
            started=0,
        )
    )
    tb = TensorBoardLauncher(compare_runs)
    assert tb.running() is None
    assert not tb.stop()  # and this test process was not signalled
    assert compare_runs.read_tensorboard_info() is None


def test_compare_page_starts_and_stops_tensorboard(app: AppTest, compare_runs: RunStore, launcher):
    at = app.run()
    at.button(key="tb_start").click().run()
    assert not at.exception and not at.error
    info = compare_runs.read_tensorboard_info()
    assert info is not None and answers_http(info.port)
    assert at.get("link_button")[0].proto.url == f"http://127.0.0.1:{info.port}/"
    at.button(key="tb_stop").click().run()
    assert not at.exception
    assert compare_runs.read_tensorboard_info() is None
    assert not answers_http(info.port, timeout=1)
