"""A sweep whose study lives in a real PostgreSQL (Optuna's RDB storage), not a mock.

``.ci/run`` installs Debian's ``postgresql`` and starts its cluster; each test run makes a
throwaway role (with a password: the URL carries one, as a shared study's would) and a
throwaway database, over TCP on localhost, and drops both at the end. Without a running
PostgreSQL these tests fail, saying how to get one: a missing server must not pass as a
skipped feature.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from runstore import RunState

from .conftest import Runs, wait_for
from .test_sweeps import SWEEP, only_sweep, trial_runs, wait_complete

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

    study = optuna.load_study(study_name=paths.id, storage=pg_url.replace("://", "+psycopg2://"))
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
    """A wrong password: the runner says so once, never with the password, and goes on."""
    runner = runs.runner("--poll", "0.2")
    wrong = "not-the-password-" + secrets.token_hex(6)
    role = pg_url.split("//")[1].split(":")[0]
    bad_url = pg_url.replace(pg_url.split("//")[1].split("@")[0], f"{role}:{wrong}")
    runs.submit(
        SWEEP.format(trials=2, seeds=1).replace("  space:", f"  storage: {bad_url}\n  space:")
    )
    paths = only_sweep(runs)
    wait_for(lambda: "advancing the sweeps failed" in runner.output(), 60, "the storage error")
    assert "password authentication failed" in runner.output()
    assert wrong not in runner.output(), "the runner logged the storage password"
    assert wrong not in paths.state.read_text()
    assert runs.store.run_ids() == [], "no trial without its study"
