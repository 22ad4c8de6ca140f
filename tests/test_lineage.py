"""Lineage (issue 17): a run started with ``init_from`` names its parent and the chain above it
on the Run page, and a parent lists the runs started from it; the listing of thousands of runs
learns each parent from config.yaml's top level only."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from runstore.config import read_config_listing
from runstore.lineage import MAX_ANCESTORS, ancestors
from tests.conftest import accept, cartpole, dashboard_on

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def test_ancestors_follow_parents_and_stop_at_a_loop_or_the_limit():
    parents = {"c": "b", "b": "a"}
    assert ancestors("c", parents.get) == ["b", "a"]
    assert ancestors("a", parents.get) == []
    loop = {"x": "y", "y": "z", "z": "x"}
    assert ancestors("x", loop.get) == ["y", "z"]
    long = {f"r{i}": f"r{i + 1}" for i in range(200)}
    assert len(ancestors("r0", long.get)) == MAX_ANCESTORS


def test_the_listing_reads_the_parent_from_init_from(tmp_path: Path):
    parent = "20261202-101500-cartpole-ab12"
    config = tmp_path / "config.yaml"
    for init_from, expected in [
        (f"{parent}/best", parent),
        (f"{parent}/step-000000001000", parent),
        (parent, parent),
        ("../../etc/passwd", None),  # not a run id: no parent (the schema refuses it too)
    ]:
        config.write_text(f"algo: ppo\nenv: CartPole-v1\ninit_from: {init_from}\n")
        assert read_config_listing(config).parent == expected, init_from
    config.write_text("algo: ppo\nenv: CartPole-v1\n")
    assert read_config_listing(config).parent is None


def test_the_run_page_shows_the_chain_above_a_run_and_the_runs_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    base = cartpole(steps=1000)
    first = accept(store, base.replace("seed: 1", "seed: 1\nname: first"), "a.yaml")
    second = accept(store, base + f"init_from: {first}/best\nname: second\n", "b.yaml")
    third = accept(store, base + f"init_from: {second}\nname: third\n", "c.yaml")
    at = AppTest.from_file(APP, default_timeout=90).run()

    def links_on(run_id: str) -> tuple[str, list[str]]:
        at.query_params["run"] = run_id
        at.switch_page("app_pages/run.py").run()
        at.checkbox(key="lineage_children").check().run()  # children: listed when asked
        assert not at.exception, [e.message for e in at.exception]
        text = " ".join(m.value for m in at.markdown) + " " + " ".join(c.value for c in at.caption)
        return text, [link.label for link in at.get("page_link")]

    text, links = links_on(second)
    assert f"Started from the weights of `{first}/best`" in text
    assert f"first ({first})" in links  # the chain above
    assert f"third ({third})" in links  # the run started from this one
    text, links = links_on(third)
    assert f"first ({first})" in links and f"second ({second})" in links
    assert links.index(f"first ({first})") < links.index(f"second ({second})")  # oldest first
    text, links = links_on(first)
    assert f"second ({second})" in links and f"third ({third})" not in links  # children only
    assert "Started from the weights" not in text
