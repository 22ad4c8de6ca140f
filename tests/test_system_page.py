"""The System page on this GPU-less machine: real psutil, real NVML absence, the real
diagnostics subprocess; runner health from runner.json, a stale heartbeat shown as stale.

And the per-run resources component (dashboard/components/resources.py) on a run whose
TensorBoard file holds system/* scalars the way the trainer writes them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from runstore import RunStore
from runstore.models import ClusterInfo, ClusterNode, RunnerInfo

from .conftest import ROOT

PAGE = str(ROOT / "dashboard" / "app_pages" / "system.py")


def _texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AppTest, RunStore]:
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(store.root))
    return AppTest.from_file(PAGE, default_timeout=240), store


def test_system_page_without_a_gpu_is_calm(page: tuple[AppTest, RunStore]):
    at, _ = page
    at.run()
    assert not at.exception
    infos = _texts(at, "info")
    assert any("No NVIDIA GPU found; training runs on the CPU" in t for t in infos), infos
    assert not any("GPU" in t for t in _texts(at, "error"))  # no GPU is not an error
    captions = " ".join(_texts(at, "caption"))
    assert "No NVIDIA GPU is visible (NVML is not available)" in captions
    markdown = " ".join(_texts(at, "markdown"))
    assert "**device: cpu**" in markdown and "n_envs:" in markdown
    assert "DQN buffer_size:" in markdown and "CPU-only" in markdown  # the torch build
    labels = {m.label for m in at.metric}
    assert {"CPU", "Memory free", "Disk free (runs folder)", "Training runs"} <= labels
    assert "Runs folder" in labels and "Storage" in _texts(at, "subheader")  # issue 17, Disk
    assert any("No runner is supervising" in t for t in _texts(at, "warning"))


def test_runner_health_fresh_and_stale(page: tuple[AppTest, RunStore]):
    """The test holds the folder's runner lock itself and writes runner.json: a fresh
    heartbeat reads healthy, a two-minute-old one reads as possibly hung."""
    at, store = page
    lock = store.runner_lock()
    lock.acquire(timeout=5)
    try:
        now = time.time()
        info = RunnerInfo(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=now - 600,
            heartbeat_at=now,
            version="test",
        )
        store.write_runner_info(info)
        at.run()
        assert not at.exception
        assert any("Runner healthy" in t for t in _texts(at, "success"))
        store.write_runner_info(info.model_copy(update={"heartbeat_at": now - 120}))
        at.run()
        warnings = _texts(at, "warning")
        stale = re.compile(r"heartbeat is 2 m \d+ s old: it may be hung")
        assert any(stale.search(t) for t in warnings), warnings
        assert not any("Runner healthy" in t for t in _texts(at, "success"))
    finally:
        lock.release()


def test_the_cluster_section_lists_nodes_and_says_when_the_cluster_is_unreachable(
    page: tuple[AppTest, RunStore],
):
    """runner.json's cluster (docs/cluster.md) as the runner writes it: each node with what
    is free and which runs are there, a node refused with why; an unreachable cluster is an
    error saying queued runs wait. No cluster in runner.json: no section."""
    at, store = page
    lock = store.runner_lock()
    lock.acquire(timeout=5)
    try:
        now = time.time()
        nodes = [
            ClusterNode(
                id="a" * 56,
                hostname="desk",
                ip="10.0.0.2",
                cpus=16,
                gpus=1,
                free_cpus=8,
                free_gpus=0,
                memory=64 * 2**30,
                resources={"big_gpu": 1},
                runs=["20261202-run-a"],
            ),  # fmt: skip
            ClusterNode(
                id="b" * 56,
                hostname="laptop",
                ip="10.0.0.3",
                cpus=4,
                free_cpus=4,
                refused="node laptop does not see the runs folder",
            ),  # fmt: skip
        ]
        info = RunnerInfo(
            pid=os.getpid(), host=socket.gethostname(), started=now, heartbeat_at=now,
            version="test",
            cluster=ClusterInfo(address="10.0.0.2:6379", connected=True, checked_at=now,
                                nodes=nodes),
        )  # fmt: skip
        store.write_runner_info(info)
        at.run()
        assert not at.exception
        assert "Cluster" in _texts(at, "subheader")
        assert any("Ray cluster at `10.0.0.2:6379`" in t for t in _texts(at, "success"))
        table = at.dataframe[0].value
        rows = {r["node"]: r for r in table.to_dict("records")}
        assert rows["desk"]["CPUs free"] == "8 of 16" and rows["desk"]["GPUs free"] == "0 of 1"
        assert rows["desk"]["runs"] == "20261202-run-a" and rows["desk"]["takes runs"] == "yes"
        assert rows["desk"]["resources"] == "big_gpu: 1"
        assert rows["laptop"]["takes runs"] == "no: node laptop does not see the runs folder"
        down = info.cluster.model_copy(
            update={"connected": False, "error": "cannot reach the Ray cluster", "nodes": []}
        )
        store.write_runner_info(info.model_copy(update={"cluster": down}))
        at.run()
        errors = _texts(at, "error")
        assert any("cannot reach the Ray cluster. Queued runs wait" in t for t in errors), errors
        store.write_runner_info(info.model_copy(update={"cluster": None}))
        at.run()
        assert "Cluster" not in _texts(at, "subheader")
    finally:
        lock.release()


def test_system_page_never_imports_torch(tmp_path: Path):
    """The web server must not load torch: the PyTorch half comes from a subprocess."""
    code = (
        "import sys, json\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({PAGE!r}, default_timeout=240).run()\n"
        "print(json.dumps({'exc': [str(e.value) for e in at.exception],\n"
        "  'torch': 'torch' in sys.modules, 'cuda': 'torch.cuda' in sys.modules}))\n"
    )
    env = dict(os.environ, RETRO_ML_RUNS_DIR=str(tmp_path / "runs"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"exc": [], "torch": False, "cuda": False}


def test_resources_component_charts_system_scalars(tmp_path: Path, monkeypatch):
    """render_resources reads the system/* tags the trainer writes (SummaryWriter here)."""
    from torch.utils.tensorboard import SummaryWriter

    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    run_id = "20261125-000000-cartpole-ppo-abcd"
    paths = store.paths(run_id)
    (paths.tb / "train_1").mkdir(parents=True)
    writer = SummaryWriter(str(paths.tb / "train_1"))
    for step in range(0, 5000, 500):
        writer.add_scalar("system/cpu_percent", 95.0, step)
        writer.add_scalar("system/rss_mb", 350.0 + step / 1000, step)
    writer.close()
    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(store.root))
    script = (
        "from dashboard.components.resources import render_resources\n"
        f"render_resources({run_id!r})\n"
    )
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(charts) == 2  # CPU and memory; no GPU figures on this run
    assert any("No GPU figures" in c.value for c in at.caption)

    from dashboard.components.resources import system_scalars
    from runstore.metrics import load_scalars

    rows = system_scalars(load_scalars(paths.dir))  # by tag, then step: a tag's last is its latest
    latest = {tag: float(group["value"][-1]) for (tag,), group in rows.group_by("tag")}
    assert latest == {"system/cpu_percent": 95.0, "system/rss_mb": 354.5}
