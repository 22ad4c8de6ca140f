"""A sweep whose study lives in a real PostgreSQL (Optuna's RDB storage), not a mock.

``.ci/run`` installs Debian's ``postgresql`` and starts its cluster; each test run makes a
throwaway role (with a password: the URL carries one, as a shared study's would) and a
throwaway database, over TCP on localhost, and drops both at the end. Without a running
PostgreSQL these tests fail, saying how to get one: a missing server must not pass as a
skipped feature.

The Sweeps page is tested over a study written into the database with Optuna directly (as the
runner's ``tell`` writes it) beside a sweep folder naming that storage: no runner needed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from streamlit.testing.v1 import AppTest

from dashboard import sweep_data
from runstore import RunState, RunStore, sweeps
from runstore.sweep_config import rdb_url

from .conftest import Runs, dashboard_on, wait_for
from .test_sweeps import SWEEP, only_sweep, trial_runs, wait_complete
from .test_sweeps_page import sweeps_page

NO_SERVER = (
    "PostgreSQL is needed for the sweep storage tests: run .ci/run (it installs Debian's "
    "postgresql package and starts its cluster), or `apt-get install postgresql` and "
    "`pg_ctlcluster <version> main start`"
)


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess[str]:
    """A client command as the ``postgres`` superuser (peer auth on the unix socket): through
    runuser when we are root (CI), as ourselves otherwise."""
    if os.geteuid() == 0:
        cmd = ("runuser", "-u", "postgres", "--", *cmd)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _online_port() -> int:
    if shutil.which("pg_lsclusters") is None or shutil.which("psql") is None:
        pytest.fail(f"{NO_SERVER} (pg_lsclusters/psql not found)")
    lines = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.splitlines()
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[3].startswith("online"):
            return int(fields[2])
    pytest.fail(f"{NO_SERVER} (no cluster is online: {lines or 'none made'})")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """``postgresql://ROLE:PASSWORD@127.0.0.1:PORT/DB``, a database made for this run."""
    port = _online_port()
    token = secrets.token_hex(4)
    role, db, password = f"retro_ml_test_{token}", f"retro_ml_test_{token}", secrets.token_hex(12)
    sql = f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"
    made = _as_postgres("psql", "-p", str(port), "-v", "ON_ERROR_STOP=1", "-c", sql)
    if made.returncode != 0:
        pytest.fail(f"{NO_SERVER}; making a test role failed: {made.stderr.strip()}")
    made = _as_postgres("createdb", "-p", str(port), "-O", role, db)
    assert made.returncode == 0, made.stderr
    try:
        yield f"postgresql://{role}:{password}@127.0.0.1:{port}/{db}"
    finally:
        _as_postgres("dropdb", "-p", str(port), "--force", "--if-exists", db)
        _as_postgres("psql", "-p", str(port), "-c", f"DROP ROLE IF EXISTS {role}")


def test_a_sweep_with_postgresql_storage_keeps_its_study_there(runs: Runs, pg_url: str):
    runner = runs.runner("--poll", "0.2", "--max-concurrent", "2")
    text = SWEEP.format(trials=2, seeds=1).replace("  space:", f"  storage: {pg_url}\n  space:")
    runs.submit(text, "pg.yaml")
    paths = only_sweep(runs)
    state = wait_complete(paths)

    study = optuna.load_study(study_name=paths.id, storage=rdb_url(pg_url))
    trials = study.get_trials()
    assert len(trials) == 2 and state.asked == 2
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    found = trial_runs(runs, paths.id)
    assert sorted(found) == [(t.number, 0) for t in trials], "one run per trial, none twice"
    for trial in trials:
        (run_id,) = found[(trial.number, 0)]
        assert runs.record(run_id).state in (RunState.COMPLETED, RunState.STOPPED)
        config = runs.store.read_config(run_id)
        assert config.hyperparams.learning_rate == trial.params["hyperparams.learning_rate"]
    if state.complete:
        assert (state.best_trial, state.best_value) == (study.best_trial.number, study.best_value)
    assert not paths.journal.exists(), "no journal file beside a PostgreSQL study"
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in runner.output(), "the runner logged the storage password"
    assert password not in paths.state.read_text()
    for run_id in runs.store.run_ids():  # a trial's config names its sweep, not the storage
        assert password not in runs.store.paths(run_id).config.read_text()


def test_an_unreachable_postgresql_is_logged_without_its_password(runs: Runs, pg_url: str):
    """A wrong password: the runner says so once, in its log and sweep.json, never with the
    password, and goes on."""
    runner = runs.runner("--poll", "0.2")
    wrong = "not-the-password-" + secrets.token_hex(6)
    role = pg_url.split("//")[1].split(":")[0]
    bad_url = pg_url.replace(pg_url.split("//")[1].split("@")[0], f"{role}:{wrong}")
    runs.submit(
        SWEEP.format(trials=2, seeds=1).replace("  space:", f"  storage: {bad_url}\n  space:")
    )
    paths = only_sweep(runs)
    state = wait_for(
        lambda: (s := sweeps.read_sweep_state(paths)) and "cannot advance" in s.reason and s,
        60,
        "the storage error in sweep.json",
    )
    assert "password authentication failed" in state.reason, state.reason
    assert "password authentication failed" in runner.output()
    assert wrong not in runner.output(), "the runner logged the storage password"
    assert wrong not in paths.state.read_text()
    assert runs.store.run_ids() == [], "no trial without its study"


def pg_sweep(store: RunStore, url: str, *, trials: int) -> sweeps.SweepPaths:
    """A sweep folder naming ``url`` as its storage, as the runner leaves it (sweep.yaml,
    resolved.yaml, sweep.json; no journal), and, when the server answers, its study there
    with ``trials`` complete trials, written by Optuna as the runner's ``tell`` writes them."""
    text = SWEEP.format(trials=4, seeds=1).replace("  space:", f"  storage: {url}\n  space:")
    queued = store.submit(text, "pg.yaml")
    paths = sweeps.create_sweep(store.root, queued, "sweep-cp", yaml.safe_load(text))
    assert paths is not None
    state = sweeps.SweepState(
        id=paths.id, name="sweep-cp", state="complete", metric="eval/mean_return"
    )
    state.n_trials = state.asked = state.complete = trials
    if trials:
        study = optuna.create_study(study_name=paths.id, storage=rdb_url(url), direction="maximize")
        add_trials(study, trials)
        state.best_trial, state.best_value = study.best_trial.number, study.best_value
        state.direction = study.direction.name.lower()
    sweeps.write_sweep_state(paths, state)
    return paths


def add_trials(study: optuna.Study, count: int) -> None:
    lr = FloatDistribution(1e-4, 1e-2, log=True)
    epochs = IntDistribution(1, 3)
    for i in range(count):
        n = len(study.trials)
        study.add_trial(
            create_trial(
                params={
                    "hyperparams.learning_rate": 1e-4 * (3**n),
                    "hyperparams.n_epochs": i % 3 + 1,
                },
                distributions={"hyperparams.learning_rate": lr, "hyperparams.n_epochs": epochs},
                value=10.0 * n + (i % 3),
            )
        )


def page_text(at: AppTest) -> str:
    """Every piece of text the page shows (messages, markdown, captions, code, headings)."""
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "code")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def test_the_sweeps_page_shows_a_postgresql_study(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    paths = pg_sweep(store, pg_url, trials=3)
    at = sweeps_page()
    text = page_text(at)
    assert "no journal" not in text and "cannot be read" not in text, text
    study = optuna.load_study(study_name=paths.id, storage=rdb_url(pg_url))
    (table,) = at.dataframe
    frame = table.value.sort_values("number")
    assert list(frame["number"]) == [t.number for t in study.trials]
    assert list(frame["value"]) == pytest.approx([t.value for t in study.trials])
    assert list(frame["hyperparams.n_epochs"]) == [1, 2, 3]
    assert len(at.get("vega_lite_chart")) == 3, "history, importances and parallel"
    found, why = sweep_data.importances(paths.id)
    assert set(found) == set(study.best_trial.params), why
    assert not paths.journal.exists(), "the page made no journal beside a PostgreSQL study"
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in text

    # A trial told since: shown once the runner rewrites sweep.json (the cache key's stamp).
    add_trials(study, 1)
    state = sweeps.read_sweep_state(paths)
    assert state is not None
    state.asked = state.complete = 4
    sweeps.write_sweep_state(paths, state)
    at.run()
    assert list(at.dataframe[0].value.sort_values("number")["number"]) == [0, 1, 2, 3]


def test_the_dashboard_cannot_write_to_a_postgresql_study(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The dashboard's connection is read-only in PostgreSQL itself: a trial asked of the
    study it loads is refused by the server, and the study is left as it was."""
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    paths = pg_sweep(store, pg_url, trials=2)
    study = sweep_data.load_study(paths.id)
    with pytest.raises(optuna.exceptions.StorageInternalError) as refused:
        study.ask()
    assert "read-only transaction" in str(refused.value.__cause__)
    assert len(optuna.load_study(study_name=paths.id, storage=rdb_url(pg_url)).trials) == 2


@pytest.mark.parametrize("fault", ["refused", "wrong password"])
def test_an_unreachable_postgresql_is_named_on_the_page_without_its_password(
    fault: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = dashboard_on(tmp_path / "runs", monkeypatch)
    if fault == "refused":
        url, secret, host = "postgresql://u:secret@127.0.0.1:1/db", "secret", "127.0.0.1:1"
    else:
        secret = "not-the-password-" + secrets.token_hex(6)
        role, _, rest = pg_url.removeprefix("postgresql://").partition(":")
        url = f"postgresql://{role}:{secret}@{rest.partition('@')[2]}"
        host = rest.partition("@")[2].split("/")[0]
    pg_sweep(store, url, trials=0)
    at = sweeps_page()
    text = page_text(at)
    (warning,) = [w.value for w in at.warning if "supervising" not in w.value]
    assert host in warning and "PostgreSQL" in warning, warning
    assert "runner" in warning and "check" in warning.lower(), warning
    if fault == "wrong password":
        assert "password authentication failed" in warning
    assert secret not in text and secret not in warning
    assert not at.dataframe
