"""A clean-up through a real runner process on a real CartPole run (issue 17, Disk): refused
while the trainer runs, carried out once it stopped (old checkpoints and clips gone, best.zip,
the latest complete checkpoint and the clips' sidecars kept), and the run then resumes from
that checkpoint and its best model still loads."""

from __future__ import annotations

from runstore import RunState, checkpoints
from runstore.models import RunEvent
from runstore.videos import list_clips

from .conftest import Runs, cartpole, wait_for

EXTRA = "keep_checkpoints: 5\neval_every: 128\neval_episodes: 1\nvideo_every: 128\n"
BOTH = {"checkpoints": True, "clips": True}


def event(runs: Runs, run_id: str, kind: str) -> RunEvent:
    def found() -> RunEvent | None:
        return next((e for e in runs.record(run_id).events if e.kind == kind), None)

    return wait_for(found, 60, f"a {kind} event")  # type: ignore[return-value]


def test_cleanup_through_the_runner_keeps_resume_and_best(runs: Runs) -> None:
    runs.runner()
    runs.submit(cartpole(steps=200_000, ckpt=64, extra=EXTRA), "disk.yaml")
    run_id = runs.only_run()
    paths = runs.store.paths(run_id)
    runs.wait_steps(run_id, 400)
    runs.store.write_request(run_id, "cleanup", params=BOTH)
    refused = event(runs, run_id, "cleanup-refused")
    assert "the run is running" in refused.detail and "stop it first" in refused.detail

    runs.store.write_request(run_id, "stop")
    runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    wait_for(lambda: runs.record(run_id).media_job is None, 60, "no clip job")
    before = checkpoints.list_checkpoints(paths.checkpoints)
    latest, _ = checkpoints.latest_complete(paths.checkpoints)
    best = checkpoints.read_best(paths.checkpoints)
    clips = list_clips(paths.videos)
    assert len(before) >= 3 and latest is not None and best is not None and clips

    runs.store.write_request(run_id, "cleanup", params=BOTH)
    done = event(runs, run_id, "cleaned-up")

    assert f"{len(before) - 1} checkpoints" in done.detail and "freed" in done.detail
    assert [c.dir.name for c in checkpoints.list_checkpoints(paths.checkpoints)] == [
        latest.dir.name
    ]
    assert checkpoints.resolve_model(paths.checkpoints, checkpoints.BEST)[1] == best["step"]
    assert checkpoints.run_trust(paths.dir).trusted
    assert list_clips(paths.videos) == []
    assert all(c.meta_path.exists() for c in clips)  # what each clip scored stays

    runs.store.write_request(run_id, "resume")
    runs.wait_state(run_id, RunState.QUEUED, RunState.STARTING, RunState.RUNNING, timeout=30)
    status = runs.wait_steps(run_id, latest.step + 64)
    assert status.resumed_from == latest.dir.name
    assert status.start_timesteps == latest.step
    runs.store.write_request(run_id, "stop")
    runs.wait_state(run_id, RunState.STOPPED, timeout=120)
