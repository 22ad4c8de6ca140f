"""The diagnosis box (dashboard/components/diagnosis.py) on a run.json written before the
diagnosis was a typed model: a plain dict, some keys missing."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from runstore import RunStore

OLD_RUN_JSON = {
    "id": "20261125-000000-pong-dqn-abcd",
    "name": "pong",
    "state": "failed",
    "reason": "the training process was killed by SIGKILL",
    "diagnosis": {
        "code": "host_oom",
        "title": "The computer ran out of memory (RAM)",
        "steps": ["Lower hyperparams.buffer_size for DQN."],
        "severity": "error",
        "evidence": "killed by SIGKILL at 7.9 GiB",
    },
}


def test_an_old_diagnosis_dict_loads_and_renders(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    run_id = OLD_RUN_JSON["id"]
    store.paths(run_id).dir.mkdir(parents=True)
    store.paths(run_id).run_json.write_text(json.dumps(OLD_RUN_JSON), encoding="utf-8")
    record = store.read_run(run_id)
    assert record is not None and record.diagnosis is not None
    assert record.diagnosis.meaning == ""  # absent in the old file: the default
    script = (
        "from dashboard.components.diagnosis import render_diagnosis\n"
        "from runstore.models import Diagnosis\n"
        f"render_diagnosis(Diagnosis.model_validate_json({record.diagnosis.model_dump_json()!r}),"
        f" {record.reason!r})\n"
    )
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception
    assert "Why it stopped" in at.error[0].value
    markdown = " ".join(m.value for m in at.markdown)
    assert "The computer ran out of memory (RAM)" in markdown
    assert "Lower hyperparams.buffer_size for DQN." in markdown
    assert at.code[0].value == "killed by SIGKILL at 7.9 GiB"


def test_no_diagnosis_shows_only_the_reason() -> None:
    script = (
        "from dashboard.components.diagnosis import render_diagnosis\nrender_diagnosis(None, '')\n"
    )
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["**Why it stopped:** no reason was recorded"]
    assert not at.markdown
