"""A run folder from elsewhere executes nothing (docs/architecture.md, "Trust"; issue 13,
item 1).

Real runs (SB3 on CartPole, a few hundred steps) are built in one runs folder, then copied
into another (an "import": a colleague's tarball, a shared folder) where an attacker's pickle
is planted the way the issue describes: in model.zip's ``data`` entry (sizes fixed in the
manifest), in vecnormalize.pkl, in replay_buffer.pkl and in best.zip. Unpickled, the payload
runs ``touch MARKER``. Every loading path is driven (resume through the runner, a folder
copied in as ``queued``, a clip through the runner and ``training.record``, ``init_from``,
the time-lapse): the marker never appears, and the run or job says it refused because the
folder is "not trusted". A legit import resumes once ``runner trust`` signed it.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from runner import cli
from runstore import checkpoints
from runstore.models import RunRecord, RunState
from runstore.store import RunStore

from .conftest import ROOT, Runs, cartpole, wait_for

PPO_EXTRA = "  normalize: true\neval_every: 64\neval_episodes: 1\nvideo_every: 64\n"
DQN = """\
algo: dqn
env: CartPole-v1
n_timesteps: 128
seed: 1
checkpoint_every: 64
save_replay_buffer: true
hyperparams:
  buffer_size: 1000
  learning_starts: 32
  batch_size: 32
"""
NEWEST = checkpoints.checkpoint_name(128)


class Payload:
    """What an attacker plants: unpickling it runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def train(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def make_run(store: RunStore, text: str, name: str) -> Path:
    path = store.submit(text, name)
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    return store.paths(record.id).dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real runs written by their own runs folder: PPO with VecNormalize, evaluation,
    best.zip and clips; DQN with its replay buffer saved."""
    store = RunStore(tmp_path_factory.mktemp("home") / "runs")
    ppo = make_run(store, cartpole(steps=128, ckpt=64, extra=PPO_EXTRA), "ppo.yaml")
    dqn = make_run(store, DQN, "dqn.yaml")
    for run_dir in (ppo, dqn):
        proc = train(run_dir)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (ppo / "checkpoints" / NEWEST / checkpoints.VECNORMALIZE).is_file()
    assert (ppo / "checkpoints" / checkpoints.BEST_MODEL).is_file()
    assert (dqn / "checkpoints" / NEWEST / checkpoints.REPLAY_BUFFER).is_file()
    return {"ppo": ppo, "dqn": dqn}


def import_run(runs: Runs, source: Path, state: RunState = RunState.STOPPED) -> str:
    """Copy a whole run folder into this runs folder, as a tarball or a shared folder would."""
    shutil.copytree(source, runs.store.root / source.name)
    record = runs.record(source.name)
    record.state = state
    runs.store.write_run(record)
    return source.name


def _fix_sizes(ckpt_dir: Path) -> None:
    """What an attacker does so the manifest still matches the files on disk."""
    path = ckpt_dir / checkpoints.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"] = {name: (ckpt_dir / name).stat().st_size for name in manifest["files"]}
    path.write_text(json.dumps(manifest))


def _plant_in_data(zip_path: Path, marker: Path) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    data = json.loads(entries["data"])
    payload = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    data["ep_info_buffer"][":serialized:"] = payload
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)


def plant(run_dir: Path, where: str, marker: Path) -> None:
    folder = run_dir / "checkpoints"
    newest = folder / NEWEST
    if where == "data":
        _plant_in_data(newest / checkpoints.MODEL, marker)
    elif where == "best":
        _plant_in_data(folder / checkpoints.BEST_MODEL, marker)
    else:
        name = {"vecnormalize": checkpoints.VECNORMALIZE, "replay": checkpoints.REPLAY_BUFFER}
        (newest / name[where]).write_bytes(pickle.dumps(Payload(marker)))
    if where != "best":
        _fix_sizes(newest)
        assert checkpoints.is_complete(newest)  # it passes the old completeness check


def wait_attempt_end(runs: Runs, run_id: str) -> RunRecord:
    """The run.json of a launched attempt once it ended (not the state it was imported in)."""

    def ended() -> RunRecord | None:
        record = runs.record(run_id)
        launched = any(e.kind == "starting" for e in record.events)
        return record if launched and record.state.is_ended else None

    return wait_for(ended, 180, f"an attempt of {run_id} to end")  # type: ignore[return-value]


def events(runs: Runs, run_id: str, kind: str) -> list[str]:
    return [e.detail for e in runs.record(run_id).events if e.kind == kind]


def test_payload_pickle_runs_when_unpickled(tmp_path: Path) -> None:
    """The probe itself works: unpickling the payload does create the marker."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize(
    ("source", "where"), [("ppo", "data"), ("ppo", "vecnormalize"), ("dqn", "replay")]
)
def test_resume_through_the_runner_refuses_an_imported_payload(
    runs: Runs, built: dict[str, Path], tmp_path: Path, source: str, where: str
) -> None:
    marker = tmp_path / "PWNED"
    run_id = import_run(runs, built[source])
    plant(runs.store.root / run_id, where, marker)
    runs.runner()
    assert cli.main(["resume", run_id, "--runs-dir", str(runs.store.root)]) == 0
    record = wait_attempt_end(runs, run_id)
    assert not marker.exists(), f"the payload in {where} ran"
    assert record.state == RunState.FAILED
    assert "not trusted" in record.reason, record.reason
    assert record.diagnosis and record.diagnosis.code == "not_trusted"
    assert f"python -m runner trust {run_id}" in record.reason


def test_a_folder_copied_in_as_queued_loads_nothing(
    runs: Runs, built: dict[str, Path], tmp_path: Path
) -> None:
    """No click at all: the runner launches a queued folder it finds; nothing is loaded."""
    marker = tmp_path / "PWNED"
    run_id = import_run(runs, built["ppo"], RunState.QUEUED)
    plant(runs.store.root / run_id, "data", marker)
    plant(runs.store.root / run_id, "vecnormalize", marker)
    runs.runner()
    record = wait_attempt_end(runs, run_id)
    assert not marker.exists()
    assert record.state == RunState.FAILED and "not trusted" in record.reason, record.reason
    # Refused, not restarted from scratch over the imported checkpoints:
    status = runs.status(run_id)
    assert status is not None and status.resumed_from is None
    assert checkpoints.list_checkpoints(runs.store.paths(run_id).checkpoints)[0].step == 128


def test_record_request_refuses_a_planted_best_zip(
    runs: Runs, built: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    run_id = import_run(runs, built["ppo"])
    plant(runs.store.root / run_id, "best", marker)
    runs.runner()
    clips_before = sorted(runs.store.paths(run_id).videos.glob("*record*"))
    args = ["record", run_id, "--checkpoint", "best", "--runs-dir", str(runs.store.root)]
    assert cli.main(args) == 0
    wait_for(
        lambda: events(runs, run_id, "record-failed") or events(runs, run_id, "record-done"),
        timeout=120,
        what="the clip job to end",
    )
    assert not marker.exists()
    (why,) = events(runs, run_id, "record-failed")
    assert "not trusted" in why, why
    assert sorted(runs.store.paths(run_id).videos.glob("*record*")) == clips_before


def test_training_record_refuses_a_planted_checkpoint(
    runs: Runs, built: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    run_id = import_run(runs, built["ppo"])
    plant(runs.store.root / run_id, "data", marker)
    proc = subprocess.run(
        [sys.executable, "-m", "training.record", str(runs.store.paths(run_id).dir)]
        + ["--checkpoint", NEWEST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not marker.exists()
    assert proc.returncode != 0, proc.stdout
    assert "not trusted" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("checkpoint", [NEWEST, "best"])
def test_init_from_an_imported_run_is_refused(
    runs: Runs, built: dict[str, Path], tmp_path: Path, checkpoint: str
) -> None:
    marker = tmp_path / "PWNED"
    run_id = import_run(runs, built["ppo"])
    plant(runs.store.root / run_id, "data" if checkpoint == NEWEST else "best", marker)
    extra = f"  normalize: true\ninit_from: {run_id}/{checkpoint}\n"
    new = make_run(runs.store, cartpole(steps=64, ckpt=64, extra=extra), "new.yaml")
    proc = train(new)
    assert not marker.exists()
    assert proc.returncode == 1, proc.stderr[-2000:]
    status = runs.store.read_status(new.name)
    assert status is not None and status.outcome == "failed"
    assert "not trusted" in status.reason and f"init_from {run_id}" in status.reason
    assert not checkpoints.list_checkpoints(new / "checkpoints")  # it never trained


def test_timelapse_of_an_imported_run_reads_clips_only(
    runs: Runs, built: dict[str, Path], tmp_path: Path
) -> None:
    """Clips may be viewed (and stitched) for a folder that is not trusted: that reads mp4s
    and JSON sidecars, never a pickle."""
    from training.timelapse import make_timelapse

    marker = tmp_path / "PWNED"
    run_id = import_run(runs, built["ppo"])
    for where in ("data", "vecnormalize", "best"):
        plant(runs.store.root / run_id, where, marker)
    path = make_timelapse(runs.store.paths(run_id).dir, max_seconds=5)
    assert path.is_file() and path.stat().st_size > 0
    assert not marker.exists()


def test_runner_trust_lets_a_legit_import_resume(runs: Runs, built: dict[str, Path]) -> None:
    """Signed with another folder's key: refused until a user trusts it, then it resumes."""
    from runstore import trust

    run_id = import_run(runs, built["ppo"])
    paths = runs.store.paths(run_id)
    config = paths.config.read_text()
    paths.config.write_text(config.replace("n_timesteps: 128", "n_timesteps: 192"))
    assert not checkpoints.run_trust(paths.dir).trusted
    runs.runner()
    assert cli.main(["trust", run_id, "--runs-dir", str(runs.store.root)]) == 0
    (detail,) = wait_for(lambda: events(runs, run_id, "trusted"), 30, "the trust action")
    assert "cli " in detail and NEWEST in detail and "best.zip" in detail
    assert checkpoints.run_trust(paths.dir).trusted
    mode = stat.S_IMODE(os.stat(trust.secret_path(runs.store.root)).st_mode)
    assert mode == 0o600
    assert cli.main(["resume", run_id, "--runs-dir", str(runs.store.root)]) == 0
    record = wait_attempt_end(runs, run_id)
    assert record.state == RunState.COMPLETED, record.reason
    status = runs.status(run_id)
    assert status is not None and status.resumed_from == NEWEST and status.timesteps == 192
    assert checkpoints.run_trust(paths.dir).trusted  # what it wrote since is signed here


# -- the store's side, without training ----------------------------------------------------


def fake_checkpoint(folder: Path, step: int, key: bytes | None = None) -> checkpoints.Checkpoint:
    staging = checkpoints.staging_dir(folder, step)
    with zipfile.ZipFile(staging / checkpoints.MODEL, "w") as zf:
        zf.writestr("data", "{}")
    (staging / checkpoints.REPLAY_BUFFER).write_bytes(b"buffer")
    return checkpoints.commit(staging, step, key=key)


def test_secret_is_private_made_once_and_shared_by_racing_creators(tmp_path: Path) -> None:
    from runstore import trust

    root = tmp_path / "runs"
    keys: list[bytes | None] = []
    threads = [
        threading.Thread(target=lambda: keys.append(trust.folder_key(root))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0] or b"") == trust.KEY_BYTES
    assert stat.S_IMODE(os.stat(root / ".secret").st_mode) == 0o600
    assert not list(root.glob(".secret.*"))  # no temp files left
    os.chmod(root / ".secret", 0o644)
    with pytest.raises(trust.SecretError, match="chmod 600"):
        trust.folder_key(root)
    (root / ".secret").unlink()
    (root / ".secret").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(trust.SecretError):
        trust.folder_key(root)


def test_a_signed_checkpoint_whose_file_changed_is_refused(tmp_path: Path) -> None:
    from runstore.trust import NotTrustedError

    folder = tmp_path / "runs" / "20261124-031205-a-3f9a" / "checkpoints"
    ckpt = fake_checkpoint(folder, 100)
    assert checkpoints.run_trust(folder.parent).trusted
    with checkpoints.open_trusted(ckpt.model) as fh:
        assert fh.read(2) == b"PK"
    # Swapped after signing, sizes fixed: the signature holds, the hash does not.
    ckpt.replay_buffer.write_bytes(b"BUFFER")
    with pytest.raises(NotTrustedError, match="not the file that was signed"):
        checkpoints.open_trusted(ckpt.replay_buffer)
    # A file the manifest does not list is never loaded.
    (ckpt.dir / checkpoints.VECNORMALIZE).write_bytes(b"x")
    with pytest.raises(NotTrustedError, match="not listed"):
        checkpoints.open_trusted(ckpt.dir / checkpoints.VECNORMALIZE)


def test_unsigned_and_foreign_manifests_are_not_trusted_until_trusted(tmp_path: Path) -> None:
    from runstore.trust import NOT_TRUSTED, NotTrustedError

    run = tmp_path / "runs" / "20261124-031205-a-3f9a"
    folder = run / "checkpoints"
    foreign = fake_checkpoint(folder, 100, key=b"k" * 32)  # another runs folder's key
    legacy = fake_checkpoint(folder, 200)
    manifest = json.loads((legacy.dir / checkpoints.MANIFEST).read_text())
    del manifest["hmac"], manifest["sha256"]  # as written before signing existed
    (legacy.dir / checkpoints.MANIFEST).write_text(json.dumps(manifest))
    report = checkpoints.run_trust(run)
    assert not report.trusted and len(report.problems) == 2
    for ckpt in (foreign, legacy):
        with pytest.raises(NotTrustedError, match=NOT_TRUSTED):
            checkpoints.resolve_model(folder, ckpt.dir.name)
    # latest_complete still finds it (complete), the loader refuses it: never a silent skip
    assert checkpoints.latest_complete(folder)[0] == legacy
    assert checkpoints.trust_run(run) == [legacy.dir.name, foreign.dir.name]
    assert checkpoints.run_trust(run).trusted
    checkpoints.open_trusted(legacy.replay_buffer).close()


def test_trust_request_is_refused_while_the_run_is_live(runs: Runs) -> None:
    from runner.supervisor import Supervisor
    from runstore.store import Request

    path = runs.store.submit(cartpole(steps=64), "a.yaml")
    record = runs.store.accept(path, runs.store.read_queue_file(path))
    assert record is not None
    fake_checkpoint(runs.store.paths(record.id).checkpoints, 64, key=b"k" * 32)
    record.state = RunState.RUNNING
    request = Request(path=Path("x"), action="trust", at=0.0, source="cli me@here")
    Supervisor(runs.store).apply(record, request)
    assert events(runs, record.id, "trust-refused")
    assert not checkpoints.run_trust(runs.store.paths(record.id).dir).trusted


def test_run_page_shows_not_trusted_and_trust_button(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from dashboard import auth

    monkeypatch.setenv("RETRO_ML_RUNS_DIR", str(runs.store.root))
    monkeypatch.setenv("RETRO_ML_NO_AUTOSTART", "1")
    path = runs.store.submit(cartpole(steps=64), "a.yaml")
    record = runs.store.accept(path, runs.store.read_queue_file(path))
    assert record is not None
    record.state = RunState.STOPPED
    runs.store.write_run(record)
    fake_checkpoint(runs.store.paths(record.id).checkpoints, 64, key=b"k" * 32)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90)
    at.query_params["run"] = record.id
    at.run()
    at.switch_page("app_pages/run.py").run()
    assert not at.exception, at.exception
    assert any("imported: not trusted" in w.value for w in at.warning)
    assert at.button(key=f"trust_{record.id}").disabled  # until the user confirms
    at.checkbox(key=f"trust_confirm_{record.id}").check().run()
    at.button(key=f"trust_{record.id}").click().run()
    requests, _ = runs.store.pending_requests(record.id)
    assert [(r.action, r.source) for r in requests] == [("trust", "dashboard (this machine)")]
    # A viewer on another host sees the state, and no button.
    monkeypatch.setattr(auth, "peer_address", lambda: "192.0.2.10")
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90)
    at.query_params["run"] = record.id
    at.run()
    at.switch_page("app_pages/run.py").run()
    assert any("imported: not trusted" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == f"trust_{record.id}"]
