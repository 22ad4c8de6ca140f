"""Organising runs (issue 17): tags, a note and archive per run, through the real runner (an
``annotate`` request applied into run.json), the CLI, and the Run and Runs pages under AppTest,
including a remote viewer who may look but not edit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import auth, data
from dashboard.components import annotations as page_annotations
from runstore import RunRecord, RunState, RunStore
from runstore.annotations import (
    MAX_NOTE_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    AnnotationError,
    Change,
    apply_change,
    check_note,
    normalise_tags,
    parse_change,
    parse_tags,
    write_annotate_request,
)
from runstore.timeline import lifecycle_events
from tests.conftest import ROOT, Runs, cartpole, dashboard_on, wait_for
from tests.test_dashboard import LAN_PEER, make_run

APP = str(ROOT / "dashboard" / "app.py")


def cli(store: RunStore, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args, "--runs-dir", str(store.root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def annotated(store: RunStore, run_id: str, **fields: object) -> None:
    """Set tags, note or archived in run.json as the runner would have (a test's runs folder,
    with no runner)."""
    record = store.read_run(run_id)
    assert record is not None
    for name, value in fields.items():
        setattr(record, name, value)
    store.write_run(record)


# -- the rules ---------------------------------------------------------------------------------


def test_tags_are_normalised_and_bad_tags_and_notes_say_how_to_fix_them():
    assert parse_tags(" Baseline, long  run,,baseline , Pong ") == ("baseline", "long-run", "pong")
    assert check_note("first try\r\nsecond line  \n") == "first try\nsecond line"
    refused = [  # (what is typed, words of the error that say what to do)
        (lambda: parse_tags("x" * (MAX_TAG_LENGTH + 1)), "at most 32"),
        (lambda: parse_tags(",".join(f"t{i}" for i in range(MAX_TAGS + 1))), "drop"),
        (lambda: normalise_tags(["a,b"]), "split it"),
        (lambda: parse_tags("ok, bad\x1b[31m"), "control or invisible"),
        (lambda: parse_tags("evil\u202egnp"), "control or invisible"),
        (lambda: normalise_tags("abc"), "a list of text"),  # type: ignore[arg-type]
        (lambda: check_note("n" * (MAX_NOTE_LENGTH + 1)), "shorten it"),
        (lambda: check_note("a\x07b"), "U+0007 at position 2"),
        (lambda: parse_change({"colour": "red"}), "known: tags"),
        (lambda: parse_change({"archived": "yes"}), "true or false"),
        (lambda: parse_change({}), "changes nothing"),
        (lambda: parse_change({"tags": [1]}), "must be text"),
    ]
    for call, words in refused:
        with pytest.raises(AnnotationError, match=re.escape(words)):
            call()


def test_a_change_applied_twice_is_applied_once_and_old_run_json_still_reads():
    old = RunRecord.model_validate({"id": "20261202-101500-old-ab12", "name": "old"})
    assert (old.tags, old.note, old.archived) == ([], "", False)  # written before issue 17
    change = parse_change({"add_tags": ["a", "b"], "note": "hello", "archived": True})
    assert len(apply_change(old, change, "test")) == 3
    assert apply_change(old, change, "test") == []  # again: nothing changes, no event
    assert (old.tags, old.note, old.archived) == (["a", "b"], "hello", True)
    assert [e.kind for e in old.events] == ["tagged", "note", "archived"]
    assert [e.text for e in lifecycle_events(old)] == [  # the Run page's timeline
        "Tags changed — a, b (by test)",
        "Note changed — 5 characters (by test)",
        "Archived — by test",
    ]
    apply_change(old, parse_change({"remove_tags": ["a"], "archived": False}), "test")
    assert (old.tags, old.archived) == (["b"], False)
    with pytest.raises(AnnotationError, match="at most 20"):
        apply_change(old, Change(add_tags=tuple(f"t{i}" for i in range(MAX_TAGS))), "test")
    assert old.tags == ["b"]  # refused whole


# -- the runner and the CLI -------------------------------------------------------------------


def test_the_runner_stores_tags_note_and_archive_in_any_state(runs: Runs):
    """A stopped run and a live one (real CartPole training) take tags, a note and the
    archived flag from CLI commands; a request file applied twice changes run.json once; a
    hostile one changes nothing but says why; bad input is refused before a file is written."""
    store = runs.store
    stopped = make_run(store, RunState.STOPPED, "resting")
    runs.runner()
    runs.submit(cartpole(steps=1_000_000, extra="name: busy\n"), "busy.yaml")
    busy = wait_for(lambda: {runs.record(i).name: i for i in store.run_ids()}.get("busy"), 30)
    runs.wait_state(busy, RunState.RUNNING)

    out = cli(store, "tag", "resting", "Baseline,pong", "long  run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"tags +baseline +pong +long-run requested for {stopped}"
    assert cli(store, "untag", "resting", "pong").stdout.startswith("tags -pong requested")
    assert cli(store, "note", "resting", "lr 3e-4\nsecond try").stdout.startswith(
        "note (18 characters) requested"
    )
    assert cli(store, "archive", "resting").stdout.startswith("archive requested")
    assert cli(store, "tag", busy, "live").returncode == 0
    assert cli(store, "note", busy, "tagged while it trains").returncode == 0

    def applied(run_id: str) -> RunRecord | None:
        record = store.read_run(run_id)
        done = record is not None and not store.pending_requests(run_id)[0]
        return record if done and record.note else None

    rest = wait_for(lambda: applied(stopped), 30, "the stopped run's requests applied")
    assert isinstance(rest, RunRecord)
    assert (rest.tags, rest.note, rest.archived) == (
        ["baseline", "long-run"],
        "lr 3e-4\nsecond try",
        True,
    )
    assert rest.state == RunState.STOPPED
    live = wait_for(lambda: applied(busy), 30, "the live run's requests applied")
    assert isinstance(live, RunRecord) and live.tags == ["live"]
    assert live.state == RunState.RUNNING  # annotating never touches the training
    events = [e.kind for e in rest.events]
    assert events.count("tagged") == 2 and events.count("archived") == 1

    # The same request twice: one change, one event.
    before = len(rest.events)
    for _ in range(2):
        write_annotate_request(store, stopped, Change(archived=False), source="test")
    unarchived = wait_for(
        lambda: (r := applied(stopped)) is not None and not r.archived and r, 30, "unarchived"
    )
    assert isinstance(unarchived, RunRecord)
    assert [e.kind for e in unarchived.events[before:]] == ["unarchived"]

    # A request file nobody checked (written by hand): refused, and run.json says why.
    for _ in range(3):  # a flood of the same bad request is one event, counted
        store.write_request(stopped, "annotate", source="hand", params={"tags": ["x" * 99]})
    refused = wait_for(
        lambda: (
            [e for e in runs.record(stopped).events if e.kind == "annotate-refused"]
            if not store.pending_requests(stopped)[0]
            else None
        ),
        30,
    )
    assert len(refused) == 1 and refused[0].count == 3  # type: ignore[arg-type, index]
    assert "at most 32" in refused[0].detail  # type: ignore[index]
    assert runs.record(stopped).tags == ["baseline", "long-run"]

    bad = cli(store, "tag", "resting", "bad\x01tag")
    assert bad.returncode == 2 and "control or invisible character" in bad.stderr
    long_note = cli(store, "note", "resting", "n" * (MAX_NOTE_LENGTH + 1))
    assert long_note.returncode == 2 and "shorten it to at most 2,000" in long_note.stderr
    assert store.pending_requests(stopped)[0] == []  # nothing written for bad input
    runs.store.write_request(busy, "stop")
    runs.wait_state(busy, RunState.STOPPED)


# -- the pages ---------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    rs = dashboard_on(tmp_path / "runs", monkeypatch)
    auth.throttle().reset()
    return rs


def run_page(run_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    at.query_params["run"] = run_id
    at.switch_page("app_pages/run.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def by_label(widgets, label: str):  # noqa: ANN001, ANN201
    found = [w for w in widgets if w.label == label]
    assert len(found) == 1, [w.label for w in widgets]
    return found[0]


def test_the_run_page_edits_tags_and_note_for_a_user_on_this_machine(folder: RunStore):
    run_id = make_run(folder, RunState.RUNNING, "editable")
    annotated(folder, run_id, tags=["old"], note="")
    at = run_page(run_id)
    assert any(c.value == "Tags: `old`" for c in at.caption)
    by_label(at.text_input, "Tags").set_value("Baseline, Pong")
    by_label(at.text_area, "Note").set_value("first try")
    at.button(key=f"annotate_save_{run_id}").click().run()
    assert not at.error, [e.value for e in at.error]
    (request,) = folder.pending_requests(run_id)[0]
    assert (request.action, request.source) == ("annotate", "dashboard")
    assert request.params == {"tags": ["baseline", "pong"], "note": "first try"}

    by_label(at.text_input, "Tags").set_value("fine, " + "y" * 40)
    at.button(key=f"annotate_save_{run_id}").click().run()
    assert any("Not saved" in e.value and "at most 32" in e.value for e in at.error)
    assert len(folder.pending_requests(run_id)[0]) == 1  # nothing sent for a bad tag

    at.button(key=f"run_archive_{run_id}").click().run()
    assert [r.params for r in folder.pending_requests(run_id)[0]][-1] == {"archived": True}


def test_a_remote_viewer_sees_tags_and_note_but_cannot_change_them(
    folder: RunStore, monkeypatch: pytest.MonkeyPatch
):
    run_id = make_run(folder, RunState.COMPLETED, "shared")
    # A tag of an imported run.json is shown as typed, never as Markdown (a link here).
    annotated(folder, run_id, tags=["baseline", "[a](http://x)"], note="kept for the paper")
    monkeypatch.setattr(auth, "peer_address", lambda: LAN_PEER)
    at = run_page(run_id)
    assert any(c.value == "Tags: `baseline` `[a](http://x)`" for c in at.caption)
    assert any(t.value == "kept for the paper" for t in at.text)
    assert not [w for w in at.text_input if w.label == "Tags"]
    assert not [w for w in at.text_area if w.label == "Note"]
    assert not [b for b in at.button if b.key and "archive" in b.key]
    assert any("Read-only here: tags and the note" in c.value for c in at.caption)
    with pytest.raises(PermissionError):
        page_annotations.request_annotation(run_id, Change(archived=True))
    at.switch_page("app_pages/runs.py").run()
    assert not [b for b in at.button if b.key and "archive" in b.key]
    assert folder.pending_requests(run_id)[0] == []


def test_the_runs_page_searches_filters_by_tag_and_hides_archived_runs(
    folder: RunStore, monkeypatch: pytest.MonkeyPatch
):
    alpha = make_run(folder, RunState.COMPLETED, "alpha")
    beta = make_run(folder, RunState.STOPPED, "beta")
    gamma = make_run(folder, RunState.RUNNING, "gamma")
    annotated(folder, alpha, tags=["baseline"], note="Learning rate sweep\nmore")
    annotated(folder, beta, tags=["pong", "baseline"], archived=True)
    config = folder.paths(gamma).config  # a config value only gamma has
    config.write_text(config.read_text().replace("n_epochs: 2", "n_epochs: 7"))
    reads: list[Path] = []
    real = data.read_config_words
    monkeypatch.setattr(data, "read_config_words", lambda p: reads.append(p) or real(p))

    at = AppTest.from_file(APP, default_timeout=90).run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, [e.message for e in at.exception]

    def names() -> list[str]:
        return sorted(at.dataframe[0].value["name"])

    assert names() == ["alpha", "gamma"]  # beta is archived: hidden by default
    assert any(c.value == "1 archived hidden" for c in at.caption)
    table = at.dataframe[0].value
    row = table[table["name"] == "alpha"].iloc[0]
    assert row["tags"] == "baseline" and row["note"] == "Learning rate sweep…"
    # Typed columns, so the table's header sorts by value (not "10 k" before "9 k").
    assert str(table["steps"].dtype) == "int64" and row["steps"] == 4_000
    assert str(table["started"].dtype).startswith("datetime64")
    assert str(table["ETA"].dtype) == "float64"

    at.toggle(key="runs_show_archived").set_value(True).run()
    assert names() == ["alpha", "beta", "gamma"]
    assert "archived" in at.dataframe[0].value.columns
    at.multiselect(key="runs_filter_tag").set_value(["pong"]).run()
    assert names() == ["beta"]
    at.multiselect(key="runs_filter_tag").set_value(["baseline"]).run()
    assert names() == ["alpha", "beta"]
    at.multiselect(key="runs_filter_tag").set_value([]).run()

    at.text_input(key="runs_search").set_value("cartpole ppo").run()  # game and algorithm
    assert names() == ["alpha", "beta", "gamma"]
    assert reads == []  # the index matched every run: no config.yaml was read
    for query, expected in [
        ("ALPHA", ["alpha"]),  # name, any case
        ("rate sweep", ["alpha"]),  # the note, every word
        ("pong", ["beta"]),  # a tag
        (gamma[-8:], ["gamma"]),  # the id
    ]:
        at.text_input(key="runs_search").set_value(query).run()
        assert names() == expected, query
    at.text_input(key="runs_search").set_value("n_epochs=7").run()
    assert names() == ["gamma"]  # a config value
    assert sorted(reads) == sorted(set(reads))  # each config read once, then cached
    at.text_input(key="runs_search").set_value("nothing-like-this").run()
    assert any("No run matches" in c.value for c in at.caption)

    at.text_input(key="runs_search").set_value("beta").run()
    at.button(key=f"runs_archive_{beta}").click().run()  # labelled Unarchive: it is archived
    assert [r.params for r in folder.pending_requests(beta)[0]] == [{"archived": False}]
