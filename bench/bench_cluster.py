"""Benchmark: runs on a Ray cluster against runs on this machine (issue 16).

    python bench/bench_cluster.py                  # 5 dispatches each way, 20 live runs
    python bench/bench_cluster.py --dispatches 3 --live 8 --idle 20

A real Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head and a second node,
24 logical CPUs each, so Ray never makes a run wait for room) and the real runner
(``python -m runner``), once without and once with ``--ray-address``, each on a fresh runs
folder:

* dispatch: a CartPole queue file written, until run.json says ``running`` (the trainer has
  started and reported); one run at a time, each stopped before the next. The median, local
  and Ray side by side, and the overhead Ray adds (the difference, and the ratio);
* supervising: ``--live`` CartPole runs placed at once and paused once all run (so the
  machine is quiet and only the supervision is measured), then the runner process's own CPU
  time (user + system, ``psutil.cpu_times``) over ``--idle`` seconds, as a percentage of one
  core. CPU time, not sampling, so other load does not count.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = """\
algo: ppo
env: CartPole-v1
n_timesteps: 1000000
seed: {seed}
checkpoint_every: 100000
hyperparams:
  n_envs: 1
  n_steps: 64
  batch_size: 64
"""


def _wait(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


class Runner:
    def __init__(self, root: Path, *flags: str):
        from runstore import RunStore

        self.store = RunStore(root)
        self.store.ensure_layout()
        self.log = open(root / "runner.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "--runs-dir", str(root), "--poll", "0.5", *flags],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(lambda: self.store.read_runner_info() is not None, 60, "the runner")

    def states(self) -> dict[str, str]:
        out = {}
        for run_id in self.store.run_ids():
            record = self.store.read_run(run_id)
            out[run_id] = record.state.value if record else "?"
        return out

    def end(self) -> None:
        from tests.conftest import kill_run_groups

        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        kill_run_groups(self.store)
        self.log.close()


def dispatches(runner: Runner, count: int) -> list[float]:
    times = []
    for i in range(count):
        before = set(runner.store.run_ids())
        started = time.monotonic()
        runner.store.submit(CONFIG.format(seed=i), f"d{i}.yaml")
        _wait(lambda b=before: set(runner.store.run_ids()) - b, 60, "the run folder")
        run_id = (set(runner.store.run_ids()) - before).pop()
        _wait(lambda r=run_id: runner.states().get(r) == "running", 180, f"{run_id} running")
        times.append(time.monotonic() - started)
        runner.store.write_request(run_id, "stop")
        _wait(lambda r=run_id: runner.states().get(r) == "stopped", 120, f"{run_id} stopped")
    return times


def supervising(runner: Runner, live: int, idle: float) -> float:
    import psutil

    for i in range(live):
        runner.store.submit(CONFIG.format(seed=100 + i), f"l{i}.yaml")
    _wait(
        lambda: sum(s == "running" for s in runner.states().values()) >= live,
        900,
        f"{live} runs running",
    )
    for run_id, state in runner.states().items():
        if state == "running":
            runner.store.write_request(run_id, "pause")
    _wait(lambda: sum(s == "paused" for s in runner.states().values()) >= live, 300, "paused")
    time.sleep(2)
    proc = psutil.Process(runner.proc.pid)
    before = proc.cpu_times()
    time.sleep(idle)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / idle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dispatches", type=int, default=5)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args(argv)
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 24, "object_store_memory": 80 * 2**20, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    results: dict[str, dict[str, float]] = {}
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        for mode, flags in (("local", []), ("ray", ["--ray-address", cluster.address])):
            with tempfile.TemporaryDirectory(prefix=f"bench-cluster-{mode}-") as tmp:
                runner = Runner(Path(tmp) / "runs", "--max-concurrent", str(args.live), *flags)
                try:
                    times = dispatches(runner, args.dispatches)
                    cpu = supervising(runner, args.live, args.idle)
                finally:
                    runner.end()
            results[mode] = {"dispatch": statistics.median(times), "cpu": cpu}
            print(
                f"{mode:>5}: dispatch median {results[mode]['dispatch']:.2f} s "
                f"({', '.join(f'{t:.2f}' for t in times)}); runner CPU with {args.live} live "
                f"runs {cpu:.2f}% of a core",
                flush=True,
            )
    finally:
        cluster.shutdown()
    local, ray = results["local"], results["ray"]
    print(
        f"\nqueue -> running: local {local['dispatch']:.2f} s, Ray {ray['dispatch']:.2f} s: "
        f"+{ray['dispatch'] - local['dispatch']:.2f} s, {ray['dispatch'] / local['dispatch']:.2f}x"
    )
    print(
        f"runner CPU supervising {args.live} runs: local {local['cpu']:.2f}%, "
        f"Ray {ray['cpu']:.2f}% of a core"
    )
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
