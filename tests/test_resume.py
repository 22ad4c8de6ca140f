"""Resume continues the same run: step count, schedules, replay buffer, one TensorBoard curve."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from runstore import RunState, checkpoints

from .conftest import Runs, cartpole, wait_for

DQN_CARTPOLE = """\
algo: dqn
env: CartPole-v1
n_timesteps: 4000
seed: 5
checkpoint_every: 100000
save_replay_buffer: true
hyperparams:
  buffer_size: 10000
  learning_starts: 200
  exploration_fraction: 0.8
  exploration_final_eps: 0.05
  target_update_interval: 250
"""


def tb_dirs(runs: Runs, run_id: str) -> list[Path]:
    return sorted(p for p in runs.store.paths(run_id).tb.iterdir() if p.is_dir())


def scalars(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def raw_steps(tb_dir: Path, tag: str) -> list[int]:
    steps = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == tag:
                    steps.append(event.step)
    return steps


def session_starts(tb_dir: Path) -> list[int]:
    starts = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                starts.append(event.step)
    return starts


def resume(runs: Runs, run_id: str) -> None:
    runs.store.write_request(run_id, "resume")
    runs.wait_state(run_id, RunState.QUEUED, RunState.STARTING, RunState.RUNNING, timeout=30)


def test_stop_then_resume_continues_steps_schedule_and_curve(runs: Runs):
    runs.runner()
    runs.submit(
        cartpole(steps=6000, ckpt=1000, extra="").replace(
            "  n_epochs: 2\n", "  n_epochs: 2\n  learning_rate: lin_1e-3\n"
        ),
        "lr.yaml",
    )
    run_id = runs.only_run()
    runs.wait_steps(run_id, 2500)
    runs.store.write_request(run_id, "stop")
    runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    stopped_at = runs.status(run_id).timesteps
    ckpt, _ = checkpoints.latest_complete(runs.store.paths(run_id).checkpoints)
    assert ckpt.step == stopped_at

    resume(runs, run_id)
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=240)
    assert record.state == RunState.COMPLETED, record.reason
    assert record.attempts == 2
    status = runs.status(run_id)
    assert status.start_timesteps == stopped_at
    assert status.resumed_from == checkpoints.checkpoint_name(stopped_at)
    assert 6000 <= status.timesteps < 6000 + 64

    [tb] = tb_dirs(runs, run_id)  # one TensorBoard run, not train_1 + train_2
    lr = scalars(tb, "train/learning_rate")
    steps = [s for s, _ in lr]
    assert steps == sorted(set(steps))  # no duplicated step, no restart at 0
    after = [(s, v) for s, v in lr if s > stopped_at]
    assert after and steps[0] < stopped_at
    for step, value in after:
        # lin_1e-3 over 6000 steps continues where it was, not stretched over a new total.
        # SB3 logs the rate of the update that ends at ``step``, set from the progress at
        # the start of that update, one rollout (64 steps) earlier.
        expected = 1e-3 * (1 - (step - 64) / 6000)
        assert value == pytest.approx(expected, rel=0.05), (step, value, expected)


def test_crash_then_resume_leaves_no_duplicated_steps(runs: Runs):
    runs.runner()
    runs.submit(cartpole(steps=12000, ckpt=4000), "crash.yaml")
    run_id = runs.only_run()

    def past_checkpoint():
        status = runs.status(run_id)
        if status is None or status.last_checkpoint is None:
            return None
        ckpt_step = int(status.last_checkpoint.split("-")[1])
        return ckpt_step if status.timesteps >= ckpt_step + 1000 else None

    wait_for(past_checkpoint, 90, "steps well past a checkpoint")
    os.kill(runs.record(run_id).pid, signal.SIGKILL)
    runs.wait_state(run_id, RunState.FAILED, timeout=30)
    ckpt, _ = checkpoints.latest_complete(runs.store.paths(run_id).checkpoints)

    resume(runs, run_id)
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=240)
    assert record.state == RunState.COMPLETED, record.reason
    assert runs.status(run_id).start_timesteps == ckpt.step

    [tb] = tb_dirs(runs, run_id)
    raw = raw_steps(tb, "time/fps")
    assert raw != sorted(raw), "the crash should have left a zig-zag past the checkpoint"
    assert session_starts(tb) == [ckpt.step]
    clean = [s for s, _ in scalars(tb, "time/fps")]
    assert clean == sorted(set(clean))  # TensorBoard purged the orphaned steps
    assert clean[-1] >= 12000 - 64


def test_dqn_resume_keeps_its_replay_buffer_and_exploration(runs: Runs):
    runs.runner()
    runs.submit(DQN_CARTPOLE, "dqn.yaml")
    run_id = runs.only_run()
    runs.wait_steps(run_id, 1500)
    runs.store.write_request(run_id, "stop")
    runs.wait_state(run_id, RunState.STOPPED, timeout=120)
    stopped_at = runs.status(run_id).timesteps
    ckpt, _ = checkpoints.latest_complete(runs.store.paths(run_id).checkpoints)
    assert ckpt.step == stopped_at and ckpt.replay_buffer is not None

    resume(runs, run_id)
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=240)
    assert record.state == RunState.COMPLETED, record.reason
    log = runs.store.paths(run_id).train_log.read_text()
    loaded = int(re.search(r"replay buffer loaded: (\d+) transitions", log)[1])
    # SB3 asks the callback before storing the step's transition, so a stop drops one.
    assert stopped_at - 1 <= loaded <= stopped_at

    [tb] = tb_dirs(runs, run_id)
    eps = scalars(tb, "rollout/exploration_rate")
    after = [(s, v) for s, v in eps if s > stopped_at]
    assert after
    for step, value in after:
        # epsilon decays from 1 to 0.05 over the first 80% of 4000 steps; a restart at 1.0
        # (reset_num_timesteps=True) or a stretched schedule would break this.
        expected = max(0.05, 1 - 0.95 * step / 3200)
        assert value == pytest.approx(expected, abs=0.03), (step, value)
