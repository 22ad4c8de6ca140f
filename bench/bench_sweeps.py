"""Benchmark: a sweep with the median pruner against the same sweep without (issue 15).

    python bench/bench_sweeps.py                      # 20 trials of 20,000 steps each
    python bench/bench_sweeps.py --trials 6 --steps 4096 --eval-every 1024   # smaller

A CartPole PPO search (TPE, the same sampler seed both times, learning rate / gamma /
n_epochs / ent_coef) runs twice under the real runner (``python -m runner``), each in a fresh
runs folder: once with ``pruner: median``, once with ``pruner: none``. For each: the steps
its trial runs trained (status.json ``timesteps``, summed), the wall time from the sweep file
to ``sweep.json`` complete, the best value (``eval/mean_return``) and the trials pruned.
The goal (issue 15): pruning spends at most 60% of the unpruned steps for a best value within
the unpruned search's spread.

Then the runner's per-trial overhead: for each trial run of the unpruned search, from the
trial's ask (Optuna's ``datetime_start``) to the run's spawn (run.json ``started_at``),
against the same configs dropped into the queue as plain runs, one at a time on an idle
runner (queue file written → ``started_at``). Both stop at the spawn: the trainer's own start
(importing torch) is not the runner's overhead. Goal: at most 1 s a trial.
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

SWEEP = """\
name: bench-{pruner}
algo: ppo
env: CartPole-v1
n_timesteps: {steps}
eval_every: {eval_every}
eval_episodes: 5
video_every: 0
hyperparams:
  n_steps: 256
  batch_size: 64
sweep:
  n_trials: {trials}
  max_concurrent: {concurrent}
  sampler: tpe
  seed: {seed}
  pruner: {pruner}
  space:
    hyperparams.learning_rate: {{float: [1.0e-5, 1.0e-2], log: true}}
    hyperparams.gamma: {{float: [0.9, 0.9999]}}
    hyperparams.n_epochs: {{int: [3, 10]}}
    hyperparams.ent_coef: {{float: [0.0, 0.05]}}
"""


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


class Runner:
    """``python -m runner`` on a runs folder, ended with SIGTERM (its process group)."""

    def __init__(self, root: Path, concurrent: int):
        self.log = open(root.parent / f"runner-{root.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "--runs-dir", str(root), "--poll", "0.2",
             "--max-concurrent", str(concurrent)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def search(tmp: Path, args: argparse.Namespace, pruner: str) -> dict:
    import optuna

    from runstore import RunStore, sweeps

    store = RunStore(tmp / f"runs-{pruner}")
    store.ensure_layout()
    runner = Runner(store.root, args.concurrent)
    try:
        text = SWEEP.format(
            pruner=pruner, steps=args.steps, eval_every=args.eval_every, trials=args.trials,
            concurrent=args.concurrent, seed=args.seed,
        )  # fmt: skip
        started = time.perf_counter()
        store.submit(text, f"bench-{pruner}.yaml")
        (sweep_id,) = _wait(lambda: sweeps.sweep_ids(store.root), 60, "the sweep folder")
        paths = sweeps.sweep_paths(store.root, sweep_id)

        def done():
            state = sweeps.read_sweep_state(paths)
            if state is not None and state.state == "failed":
                raise SystemExit(f"the {pruner} sweep failed: {state.reason}")
            return state if state is not None and state.state == "complete" else None

        state = _wait(done, 120 * args.trials + 600, f"the {pruner} sweep")
        wall = time.perf_counter() - started
        _wait(
            lambda: all((r := store.read_run(i)) and r.state.is_ended for i in store.run_ids()),
            120,
            "every trial run to end",
        )
    finally:
        runner.stop()
    backend = optuna.storages.journal.JournalFileBackend(str(paths.journal))
    study = optuna.load_study(study_name=sweep_id, storage=optuna.storages.JournalStorage(backend))
    asked = {t.number: t.datetime_start.timestamp() for t in study.get_trials()}
    steps, overheads, configs = 0, [], []
    for run_id in store.run_ids():
        status, record = store.read_status(run_id), store.read_run(run_id)
        steps += status.timesteps if status else 0
        ref = store.read_config(run_id).sweep
        if record.started_at and ref is not None and ref.trial in asked:
            overheads.append(record.started_at - asked[ref.trial])
        configs.append(store.paths(run_id).config.read_text())
    values = [t.value for t in study.get_trials() if t.value is not None]
    return {
        "pruner": pruner,
        "steps": steps,
        "wall": wall,
        "best": state.best_value,
        "complete": state.complete,
        "pruned": state.pruned,
        "failed": state.failed,
        "spread": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "overheads": overheads,
        "configs": configs,
    }


def plain_overhead(tmp: Path, configs: list[str]) -> list[float]:
    """The same configs as plain queue files, one at a time on an idle runner: queue file
    written → run.json ``started_at`` (then the run is stopped, not trained)."""
    import yaml

    from runstore import RunStore

    store = RunStore(tmp / "runs-plain")
    store.ensure_layout()
    runner = Runner(store.root, 2)
    out = []
    try:
        _wait(lambda: store.read_runner_info() is not None, 60, "the runner")
        for i, text in enumerate(configs):
            doc = yaml.safe_load(text)
            doc.pop("sweep", None)
            doc["name"] = f"plain-{i:03d}"
            before = set(store.run_ids())
            submitted = time.time()
            store.submit(yaml.safe_dump(doc, sort_keys=False), f"plain-{i:03d}.yaml")
            (run_id,) = _wait(lambda b=before: set(store.run_ids()) - b, 60, "the plain run")
            record = _wait(
                lambda r=run_id: (rec := store.read_run(r)) and rec.started_at and rec,
                60,
                "the plain run's spawn",
            )
            out.append(record.started_at - submitted)
            store.write_request(run_id, "stop", source="bench")
            _wait(lambda r=run_id: store.read_run(r).state.is_ended, 120, "the stop")
    finally:
        runner.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20_000, help="n_timesteps of each trial")
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--concurrent", type=int, default=2, help="trials training at once")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed (both searches)")
    args = parser.parse_args(argv)
    print(
        f"CartPole PPO, TPE seed {args.seed}: {args.trials} trials of {args.steps:,} steps "
        f"(eval every {args.eval_every:,}), {args.concurrent} at once; cpu count {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as name:
        tmp = Path(name)
        results = [search(tmp, args, "median"), search(tmp, args, "none")]
        plain = plain_overhead(tmp, results[1]["configs"])
    pruned, unpruned = results
    print(f"\n{'search':<10} {'steps':>10} {'wall s':>8} {'best':>8} {'spread':>8}  trials")
    for r in results:
        print(
            f"{r['pruner']:<10} {r['steps']:>10,} {r['wall']:>8.0f} {r['best'] or 0:>8.1f} "
            f"{r['spread']:>8.1f}  {r['complete']} complete, {r['pruned']} pruned, "
            f"{r['failed']} failed"
        )
    ratio = pruned["steps"] / max(unpruned["steps"], 1)
    gap = (unpruned["best"] or 0) - (pruned["best"] or 0)
    print(
        f"pruning: {ratio:.0%} of the unpruned steps (goal <= 60%), "
        f"{pruned['wall'] / unpruned['wall']:.0%} of the wall time; best value "
        f"{gap:+.1f} below the unpruned (its trials' spread {unpruned['spread']:.1f})"
    )
    trial = unpruned["overheads"]
    print(
        f"\nper-trial overhead, ask → spawn: median {statistics.median(trial):.2f} s, "
        f"max {max(trial):.2f} s over {len(trial)} trials (goal <= 1 s)"
    )
    print(
        f"plain runs, queue file → spawn:    median {statistics.median(plain):.2f} s, "
        f"max {max(plain):.2f} s over {len(plain)} runs (baseline)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
