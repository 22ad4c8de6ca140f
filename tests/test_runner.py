"""The runner supervisor against real processes, signals, files and SB3 training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from runner import process
from runstore import RunState, checkpoints

from .conftest import ROOT, Runs, cartpole, group_alive, wait_for

PONG_PPO = """\
algo: ppo
env: ALE/Pong-v5
n_timesteps: 100000
seed: 3
checkpoint_every: 100000
backend: sb3
vec_env: subproc
hyperparams:
  n_envs: 2
  n_steps: 32
  batch_size: 64
  n_epochs: 1
"""


def cli(runs: Runs, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args, "--runs-dir", str(runs.store.root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_queue_file_starts_a_run_on_the_file_event(runs: Runs):
    """With a 60 s poll, only the watchdog event can start the run this soon."""
    runs.runner("--poll", "60")
    runs.submit(cartpole(steps=300), "quick.yaml")
    run_id = runs.only_run(timeout=15)
    runs.wait_state(run_id, RunState.STARTING, RunState.RUNNING, RunState.COMPLETED, timeout=15)
    assert not (runs.store.queue_dir / "quick.yaml").exists()


def test_max_concurrent_is_respected_first_in_first_out(runs: Runs):
    runs.runner("--max-concurrent", "1")
    names = ["a", "b", "c"]
    for name in names:
        runs.submit(cartpole(extra=f"name: {name}\n"), f"{name}.yaml")
        time.sleep(0.05)
    ids = wait_for(lambda: len(runs.store.run_ids()) == 3 and runs.store.run_ids(), 10)
    by_name = {runs.record(i).name: i for i in ids}
    a, b, c = (by_name[n] for n in names)
    runs.wait_state(a, RunState.RUNNING)
    assert runs.record(b).state == runs.record(c).state == RunState.QUEUED
    runs.store.write_request(a, "stop")
    runs.wait_state(a, RunState.STOPPED)
    runs.wait_state(b, RunState.STARTING, RunState.RUNNING)
    assert runs.record(c).state == RunState.QUEUED
    live = [i for i in ids if runs.record(i).state.is_live]
    assert live == [b]


def test_pause_freezes_the_whole_group_and_stop_while_paused_is_graceful(runs: Runs):
    """Atari PPO with SubprocVecEnv workers: pause must reach every process of the group."""
    runs.runner()
    runs.submit(PONG_PPO, "pong.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.RUNNING)
    runs.wait_steps(run_id, 100)
    pgid = runs.record(run_id).pgid

    assert cli(runs, "pause", run_id).returncode == 0
    runs.wait_state(run_id, RunState.PAUSED, timeout=30)
    members = group_alive(pgid)
    assert len(members) >= 3  # trainer, forkserver, env workers
    wait_for(
        lambda: all(p.status() == psutil.STATUS_STOPPED for p in group_alive(pgid)),
        10,
        "every process of the group to be stopped",
    )
    frozen = runs.status(run_id).timesteps
    time.sleep(3)
    assert runs.status(run_id).timesteps == frozen

    assert cli(runs, "resume", run_id).returncode == 0
    runs.wait_state(run_id, RunState.RUNNING, timeout=30)
    runs.wait_steps(run_id, frozen + 64, timeout=120)

    runs.store.write_request(run_id, "pause")
    runs.wait_state(run_id, RunState.PAUSED, timeout=30)
    # A stopped process acts on SIGTERM only once continued: stop must still be graceful.
    assert cli(runs, "stop", run_id).returncode == 0
    record = runs.wait_state(run_id, RunState.STOPPED, RunState.FAILED, timeout=120)
    assert record.state == RunState.STOPPED, record.reason
    status = runs.status(run_id)
    assert status.outcome == "stopped"
    ckpt, _ = checkpoints.latest_complete(runs.store.paths(run_id).checkpoints)
    assert ckpt is not None and ckpt.step == status.timesteps
    wait_for(lambda: not group_alive(pgid), 10, "no process of the run to survive")


def test_forced_stop_kills_the_whole_group_after_the_grace_period(runs: Runs, tmp_path: Path):
    """A trainer that ignores SIGTERM, with a worker child: both die after the grace period."""
    from runner.supervisor import Supervisor

    record = runs.store.accept(
        runs.submit(cartpole(), "x.yaml"),
        runs.store.read_queue_file(runs.store.queue_dir / "x.yaml"),
    )
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "time.sleep(600)\n",
        ],
        start_new_session=True,
    )
    runs.extra_pgids.add(stubborn.pid)
    wait_for(lambda: len(group_alive(stubborn.pid)) == 2, 10, "the worker child")
    supervisor = Supervisor(runs.store, stop_grace=1.0)
    handle = process.Handle(
        stubborn.pid, stubborn.pid, psutil.Process(stubborn.pid).create_time(), stubborn
    )
    supervisor.handles[record.id] = handle
    record.state = RunState.RUNNING
    runs.store.write_run(record)
    runs.store.write_request(record.id, "stop")
    supervisor.handle_requests(record.id)
    assert runs.record(record.id).state == RunState.STOPPING
    supervisor.check_processes()
    assert stubborn.poll() is None  # still inside the grace period
    time.sleep(1.2)
    supervisor.check_processes()  # past the deadline: SIGKILL to the group
    wait_for(lambda: not group_alive(stubborn.pid), 10, "the group to be gone")
    supervisor.check_processes()
    final = runs.record(record.id)
    assert final.state == RunState.STOPPED
    assert "SIGKILL" in final.reason
    assert any(e.kind == "killed" for e in final.events)


def test_runner_sigkill_leaves_training_running_and_a_new_runner_adopts(runs: Runs):
    first = runs.runner()
    runs.submit(cartpole(), "long.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.RUNNING)
    pid = runs.record(run_id).pid

    first.kill(signal.SIGKILL)
    before = runs.wait_steps(run_id, 1).timesteps
    runs.wait_steps(run_id, before + 500)  # training goes on without a supervisor
    assert psutil.pid_exists(pid)

    runs.runner()
    wait_for(lambda: any(e.kind == "adopted" for e in runs.record(run_id).events), 10)
    record = runs.record(run_id)
    assert record.state == RunState.RUNNING and record.pid == pid

    # A second supervisor on the same folder refuses to start.
    third = subprocess.run(
        [sys.executable, "-m", "runner", "--runs-dir", str(runs.store.root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert third.returncode == 1
    assert "already supervising" in third.stderr

    # The adopted run is still under control. "paused" in run.json means stopped: SIGSTOP
    # acts only when a process next runs (under load, well after the signal), so the runner
    # records the pause once every process of the group shows stopped (it used to record it
    # at once, and this check failed under load).
    runs.store.write_request(run_id, "pause")
    record = runs.wait_state(run_id, RunState.PAUSED, timeout=30)
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    assert {p.status() for p in group_alive(record.pgid)} == {psutil.STATUS_STOPPED}
    assert not [e for e in record.events if e.kind == "pause-pending"]
    runs.store.write_request(run_id, "resume")
    runs.wait_state(run_id, RunState.RUNNING, timeout=30)

    # Killing an adopted trainer (no exit code for a non-parent) ends the run as lost.
    os.kill(pid, signal.SIGKILL)
    record = runs.wait_state(run_id, RunState.LOST, RunState.FAILED, timeout=30)
    assert record.state == RunState.LOST
    assert "vanished" in record.reason


def test_trainer_sigkill_ends_the_run_failed(runs: Runs):
    runs.runner()
    runs.submit(cartpole(n_envs=2, extra="vec_env: subproc\n"), "k.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.RUNNING)
    record = runs.record(run_id)
    os.kill(record.pid, signal.SIGKILL)
    record = runs.wait_state(run_id, RunState.FAILED, RunState.LOST, timeout=30)
    assert record.state == RunState.FAILED
    assert "SIGKILL" in record.reason
    wait_for(lambda: not group_alive(record.pgid), 10, "the workers to be killed too")


def test_bad_queue_files_are_rejected_and_the_runner_keeps_going(runs: Runs, tmp_path: Path):
    marker = Path("/tmp") / f"retro-ml-pwn-{uuid.uuid4().hex}"
    bad = {
        "binary.yaml": b"\x00\x01\x02\xff" * 10,
        "empty.yaml": b"",
        "unparseable.yaml": b"algo: [ppo\n",
        "tag.yaml": f"algo: !!python/object/apply:os.system ['touch {marker}']\n".encode(),
        "algo.yaml": b"algo: sac\nenv: CartPole-v1\nn_timesteps: 100\n",
        "env.yaml": b"algo: ppo\nenv: NoSuchGame-v9\nn_timesteps: 100\n",
        "key.yaml": b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 100\nhyperparams: {gama: 0.9}\n",
        "negative.yaml": b"algo: ppo\nenv: CartPole-v1\nn_timesteps: -100\n",
        "millions.yaml": b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 9\nhyperparams:\n"
        b"  n_envs: 4000000\n",
        "zero-buffer.yaml": b"algo: dqn\nenv: CartPole-v1\nn_timesteps: 9\nhyperparams:\n"
        b"  buffer_size: 0\n",
        "name.yaml": b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 9\nname: ../../../etc/cron.d/x\n",
        "eval.yaml": b"algo: ppo\nenv: CartPole-v1\nn_timesteps: 9\nhyperparams:\n"
        b"  policy_kwargs: \"__import__('os').system('touch /tmp/x')\"\n",
        "bomb.yaml": b"a: &a [1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
        b"c: [*b,*b,*b,*b,*b,*b,*b,*b]\n",
        "notes.txt": b"algo: ppo\n",
    }
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    runs.runner()
    for name, data in bad.items():
        (runs.store.queue_dir / name).write_bytes(data)
    wait_for(lambda: not runs.store.queue_files(), 15, "the queue to empty")
    for name in bad:
        assert (runs.store.rejected_dir / name).exists(), name
        reason = (runs.store.rejected_dir / f"{name}.error.txt").read_text()
        assert "was not started" in reason and "\n- " in reason, name
    assert runs.store.run_ids() == []
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    # The runner is still alive and takes the next good file.
    runs.submit(cartpole(steps=200), "good.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.COMPLETED, timeout=120)


def test_cli_ls_finds_runs_by_name_and_explains_mistakes(runs: Runs):
    runs.runner()
    runs.submit(cartpole(steps=300, extra="name: tiny\n"), "tiny.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.COMPLETED, timeout=120)
    listing = cli(runs, "ls")
    assert listing.returncode == 0
    assert run_id in listing.stdout and "completed" in listing.stdout
    ignored = cli(runs, "pause", "tiny")
    assert ignored.returncode == 0 and run_id in ignored.stdout
    wait_for(lambda: any(e.kind == "request-ignored" for e in runs.record(run_id).events), 10)
    missing = cli(runs, "stop", "nope")
    assert missing.returncode == 2 and "no run matches 'nope'" in missing.stderr
    escape = cli(runs, "stop", "../../etc")
    assert escape.returncode == 2


def test_sigterm_ends_the_runner_cleanly_and_leaves_training_going(runs: Runs):
    runner = runs.runner()
    runs.submit(cartpole(), "long.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.RUNNING)
    runner.kill(signal.SIGTERM)
    assert runner.proc.returncode == 0
    assert "shutting down" in runner.output()
    before = runs.wait_steps(run_id, 1).timesteps
    runs.wait_steps(run_id, before + 500)  # the trainer did not get the signal
    assert not runs.store.runner_is_alive()  # the lock was released
    assert runs.record(run_id).state == RunState.RUNNING
