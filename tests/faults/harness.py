"""Invariants of a runs folder after a fault, and the ledger the summary line is built from.

The checks read the store the way any other process does (``RunStore``) plus the raw bytes on
disk, so a fault that the store's tolerant readers would hide (a half-written JSON file) is
still seen here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from runner import process
from runstore import RunState, RunStore, checkpoints

ROOT = Path(__file__).resolve().parents[2]
TRIALS_ENV = "RETRO_ML_FAULT_TRIALS"
SEED_ENV = "RETRO_ML_FAULT_SEED"
DEFAULT_SEED = 20261125


def trials(short: int, share: float = 1.0) -> int:
    """``short`` in ``make test``; in ``make faults`` the count from $RETRO_ML_FAULT_TRIALS
    times ``share`` (a trial that restarts a trainer costs more than one that restarts the
    runner)."""
    value = os.environ.get(TRIALS_ENV)
    return max(short, round(int(value) * share)) if value else short


def rng(salt: str) -> random.Random:
    """A fixed-seed generator per test, so a failing trial can be replayed."""
    seed = int(os.environ.get(SEED_ENV) or DEFAULT_SEED)
    return random.Random(f"{seed}-{salt}")


@dataclass
class Ledger:
    """Counts for the one-line summary at the end of the suite."""

    trials: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    losses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + n

    def lost(self, problems: list[str]) -> None:
        self.losses.extend(problems)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        total = sum(self.faults.values())
        return (
            f"fault suite: {self.trials} trials, {total} faults injected ({kinds or 'none'}), "
            f"{len(self.losses)} losses"
        )


LEDGER = Ledger()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def half_written_json(root: Path) -> list[str]:
    """Every ``*.json`` under ``root`` that does not parse (a torn write)."""
    bad = []
    for path in root.rglob("*.json"):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            bad.append(f"{path.relative_to(root)} does not parse: {exc}")
    return bad


def queue_accounting(store: RunStore, dropped: dict[str, str]) -> list[str]:
    """Every dropped file (sha256 -> name) is a run's source.yaml, in rejected/, or queued.

    Also: no file became two runs (a run started twice from one queue file).
    """
    seen: dict[str, list[str]] = {}

    def note(path: Path, where: str) -> None:
        with contextlib.suppress(OSError):
            seen.setdefault(digest(path.read_bytes()), []).append(where)

    for run_id in store.run_ids():
        note(store.paths(run_id).source, f"run {run_id}")
    for path in store.rejected_dir.glob("*.y*ml"):
        note(path, f"rejected/{path.name}")
    for path in store.queue_files():
        note(path, f"queue/{path.name}")
    for staging in store.root.glob(".partial-*"):  # only legal while a runner is mid-intake
        note(staging / "source.yaml", f"{staging.name} (half-made run folder)")
    problems = []
    for sha, name in dropped.items():
        where = seen.get(sha, [])
        if not where:
            problems.append(f"queue file {name} is lost (no run, not rejected, not queued)")
        elif len(where) > 1:
            problems.append(f"queue file {name} appears {len(where)} times: {where}")
    return problems


def stuck_runs(store: RunStore) -> list[str]:
    """Runs in a live state whose process is not alive (checked by pid *and* create time)."""
    problems = []
    for run_id in store.run_ids():
        record = store.read_run(run_id)
        if record is None:
            problems.append(f"{run_id}: run.json unreadable")
            continue
        if record.state.is_live and process.identify(record.pid, record.create_time) is None:
            problems.append(f"{run_id}: {record.state.value} but pid {record.pid} is not alive")
        if record.state.is_ended and process.identify(record.pid, record.create_time):
            problems.append(f"{run_id}: {record.state.value} but pid {record.pid} still runs")
    return problems


def started_twice(store: RunStore) -> list[str]:
    """A run whose attempts do not match its spawn events, or two live trainers for one run."""
    problems = []
    for run_id in store.run_ids():
        record = store.read_run(run_id)
        if record is None:
            continue
        spawned = sum(1 for e in record.events if e.kind == "spawned")
        resumes = sum(1 for e in record.events if e.kind == "queued" and "resume" in e.detail)
        if spawned > 1 + resumes:
            problems.append(f"{run_id}: spawned {spawned} times with {resumes} resume(s)")
        trainers = process.find_trainers(store.paths(run_id).dir)
        if len(trainers) > 1:
            problems.append(f"{run_id}: {len(trainers)} training processes at once")
    return problems


def broken_checkpoints(run_dir: Path) -> list[str]:
    """Published checkpoints (``step-*``) that do not validate; staging folders are allowed."""
    return [
        f"{run_dir.name}/{c.dir.name} is published but incomplete"
        for c in checkpoints.list_checkpoints(run_dir / "checkpoints")
        if not checkpoints.is_complete(c.dir)
    ]


LOAD_SCRIPT = """\
import sys
from stable_baselines3 import DQN, PPO
algo = {"ppo": PPO, "dqn": DQN}[sys.argv[2]]
model = algo.load(sys.argv[1], device="cpu")
print(model.num_timesteps)
"""


def sb3_load(model_zip: Path, algo: str = "ppo") -> int:
    """Load a checkpoint with SB3 for real, in a subprocess (tests never import torch)."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(model_zip), algo],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, f"SB3 could not load {model_zip}:\n{result.stderr[-2000:]}"
    return int(result.stdout.strip().splitlines()[-1])


def live_states() -> set[RunState]:
    return {s for s in RunState if s.is_live}


# -- hand damage: one intact run copied into run folders that each carry one kind of damage --


@dataclass
class Damaged:
    """Run ids of the damaged copies of ``base`` (see ``damage_copies``)."""

    base: str
    status_cut: str
    run_garbage: str
    tb_cut: str
    tb_flip: str
    ckpt_cut: str
    cut_checkpoint: checkpoints.Checkpoint  # the newest checkpoint of ckpt_cut, cut in half

    @property
    def all(self) -> list[str]:
        return [self.base, self.status_cut, self.run_garbage, self.tb_cut, self.tb_flip,
                self.ckpt_cut]  # fmt: skip


def copy_run(store: RunStore, run_id: str, name: str, run_json: bytes | None = None) -> str:
    """A copy of a run folder under a new id and name, published by one rename with its
    run.json (or ``run_json``, damage) already in place: a runner watching the folder never
    sees the copy with another run's record, nor a valid record before the damage (it would
    keep that copy and repair the damage from it)."""
    import shutil

    from runstore.atomic import atomic_write_bytes, atomic_write_json
    from runstore.paths import new_run_id

    new_id = new_run_id(name)
    staging = store.root / f".copy-{new_id}"
    shutil.copytree(store.paths(run_id).dir, staging)
    record = store.read_run(run_id).model_copy(update={"id": new_id, "name": name})
    if run_json is None:
        atomic_write_json(staging / "run.json", record.model_dump(mode="json"))
    else:
        atomic_write_bytes(staging / "run.json", run_json)
    staging.rename(store.root / new_id)
    return new_id


def cut_file(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def event_files(store: RunStore, run_id: str) -> list[Path]:
    return sorted(store.paths(run_id).tb.rglob("events.out.tfevents.*"))


def damage_copies(store: RunStore, base: str, r: random.Random) -> Damaged:
    """Copies of an ended run with checkpoints and event files, each damaged by hand: a
    truncated status.json, a garbage run.json, an event file cut mid-record, one with a
    flipped byte, the newest checkpoint zip cut in half."""
    status_cut = copy_run(store, base, "status-cut")
    cut_file(store.paths(status_cut).status_json, 0.5)
    run_garbage = copy_run(store, base, "run-garbage", run_json=r.randbytes(300))
    tb_cut = copy_run(store, base, "tb-cut")
    event = event_files(store, tb_cut)[-1]
    event.write_bytes(event.read_bytes()[:-7])
    tb_flip = copy_run(store, base, "tb-flip")
    event = event_files(store, tb_flip)[0]
    data = bytearray(event.read_bytes())
    data[len(data) // 2] ^= 0xFF
    event.write_bytes(bytes(data))
    ckpt_cut = copy_run(store, base, "ckpt-cut")
    newest = checkpoints.list_checkpoints(store.paths(ckpt_cut).checkpoints)[0]
    cut_file(newest.model, 0.5)
    return Damaged(base, status_cut, run_garbage, tb_cut, tb_flip, ckpt_cut, newest)


# -- load: many run folders, made the way the runner makes them -------------------------------


def many_runs(store: RunStore, n: int, seed: int = 1) -> list[str]:
    """``n`` run folders through the run store (queue file, ``accept``, ``write_run``) plus a
    status.json each, in every state, over a few games and algorithms: the Runs page's load.
    Cheap (no training): a few ms a run."""
    from runstore import TrainStatus, write_status_file
    from runstore.config import parse_config

    r = random.Random(seed)
    configs = [
        parse_config(f"algo: {algo}\nenv: {env}\nn_timesteps: {steps}\n".encode())
        for algo, env, steps in (
            ("ppo", "CartPole-v1", 50_000),
            ("ppo", "ALE/Pong-v5", 10_000_000),
            ("dqn", "ALE/Breakout-v5", 10_000_000),
            ("dqn", "CartPole-v1", 100_000),
        )
    ]
    states = list(RunState)
    store.ensure_layout()
    ids = []
    for i in range(n):
        config = configs[i % len(configs)]
        config = config.model_copy(update={"name": f"load-{i:04d}"})
        path = store.submit("# made by many_runs\n", f"load-{i:04d}.yaml")
        record = store.accept(path, config)
        state = states[i % len(states)]
        record.state = state
        record.record(state.value, "made by many_runs")
        if state != RunState.QUEUED:
            record.started_at = record.queued_at + 1
            total = config.n_timesteps
            write_status_file(
                store.paths(record.id).status_json,
                TrainStatus(
                    phase="training",
                    timesteps=r.randrange(total),
                    total_timesteps=total,
                    fps=r.uniform(100, 5000),
                    last_episode_return=r.uniform(-21, 21),
                    best_episode_return=21.0,
                ),
            )
        store.write_run(record)
        ids.append(record.id)
    return ids
