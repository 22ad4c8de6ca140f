"""Benchmark: our training process against a plain Stable-Baselines3 script, same settings.

    python bench/bench_train.py                        # PPO + DQN on ALE/Pong-v5, 3 reps, CPU
    python bench/bench_train.py --reps 5 --ppo-steps 4096 --device cuda
    python bench/bench_train.py --only env             # env-only throughput
    python bench/bench_train.py --only threads         # torch threads: 1 vs one per core
    python bench/bench_train.py --only layout          # NatureCNN: NCHW vs channels-last
    python bench/bench_train.py --only eval            # evaluation: 10 games side by side
    python bench/bench_train.py --only concurrent      # two trainers at once: torch threads

Three ways, alternating within each repetition so machine noise hits all of them alike, each in
its own fresh process:

1. ``plain``: the script a user would write, ``make_atari_env(env_id, n_envs, seed,
   env_kwargs={"frameskip": 1})`` + ``VecFrameStack(4)`` + the algorithm with the Zoo's Atari
   hyperparameters (DummyVecEnv, make_atari_env's default). ``frameskip: 1`` because the
   AtariWrapper skips 4 frames itself (ALE v5 would skip 4 more); sticky actions stay at ALE
   v5's 0.25, which is also our config's default.
2. ``ours``: ``python -m training RUN_DIR`` on a run folder made through runstore (status.json
   heartbeat, TensorBoard, episode records, a checkpoint mid-run and one at the end), with the
   config's defaults (``backend: auto``, i.e. the native Atari env).
3. ``ours-off``: our trainer's env and model on the same kind of run folder, ``learn`` with
   no callback, TensorBoard or checkpoints (the ``untracked`` child), to measure what
   tracking costs.
4. ``ours-nchw`` (PPO): ``ours`` with ``channels_last: false``, to show what the
   channels-last convolutions (``training/memory_format.py``) bring.

fps is timesteps divided by the time spent in ``learn()`` (interpreter start-up and env
construction excluded on both sides; both print the same measure); the process wall time is
shown too. DQN uses the Zoo's Atari settings except ``learning_starts`` and ``buffer_size``,
scaled down (same on all sides) so that gradient steps happen within a short benchmark.

Env-only throughput steps random actions through the native backend and through SB3's
SubprocVecEnv and DummyVecEnv (AtariWrapper + VecFrameStack), 8 envs each.

``--only layout`` times NatureCNN alone (PPO's minibatch step of 256 frames and the rollout's
forward pass of 8) in NCHW and channels-last layout, in this process.

``--only concurrent`` runs two of our PPO trainers at the same time (what ``python -m runner
--max-concurrent 2`` does), each with one torch thread per core against its share of the
cores (``runner/resources.py``), alternating.

``--only eval`` times one evaluation (10 whole games, the evaluation protocol, an untrained
PPO agent that loses every point, so the games are of similar length, or ``--eval-model`` with
``--eval-config``: a run's checkpoint and config) with the games played one at a time and side
by side (``training/evaluation.py``), alternating, in this process.

The learning check of the native backend against ``backend: sb3`` is ``bench_parity.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runstore.config_schema import TORCH_THREADS_ENV  # noqa: E402

LEARNED = re.compile(
    r"learned (\d+) steps in ([0-9.]+) s .*?, ([0-9.]+) CPU s, tracking ([0-9.]+) s"
)
# DQN: the Zoo's Atari entry, except these (both sides), so a short run does gradient steps.
DQN_BENCH_OVERRIDES = {"learning_starts": 1_000, "buffer_size": 10_000}


# --- the plain SB3 script (run as a child process) ---------------------------------------


def plain_script(algo: str, env_id: str, steps: int, seed: int, device: str) -> dict:
    """What a user would write with SB3 alone; prints the same speed measure as ours."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.utils import LinearSchedule
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    if algo == "ppo":
        env = make_atari_env(env_id, n_envs=8, seed=seed, env_kwargs={"frameskip": 1})
        env = VecFrameStack(env, n_stack=4)
        model = PPO(
            "CnnPolicy",
            env,
            n_steps=128,
            n_epochs=4,
            batch_size=256,
            learning_rate=LinearSchedule(2.5e-4, 0.0, 1.0),
            clip_range=LinearSchedule(0.1, 0.0, 1.0),
            vf_coef=0.5,
            ent_coef=0.01,
            seed=seed,
            device=device,
        )
    else:
        env = make_atari_env(env_id, n_envs=1, seed=seed, env_kwargs={"frameskip": 1})
        env = VecFrameStack(env, n_stack=4)
        model = DQN(
            "CnnPolicy",
            env,
            learning_rate=1e-4,
            batch_size=32,
            target_update_interval=1000,
            train_freq=4,
            gradient_steps=1,
            exploration_fraction=0.1,
            exploration_final_eps=0.01,
            optimize_memory_usage=False,
            seed=seed,
            device=device,
            **DQN_BENCH_OVERRIDES,
        )
    started, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    env.close()
    return {"steps": model.num_timesteps, "seconds": seconds, "cpu": cpu}


# --- our training process ------------------------------------------------------------------


def our_config(algo: str, env_id: str, steps: int, seed: int, device: str, extra: str) -> str:
    text = (
        f"algo: {algo}\nenv: {env_id}\nn_timesteps: {steps}\nseed: {seed}\ndevice: {device}\n"
        f"checkpoint_every: {max(1, steps // 2)}\n"
    )
    if algo == "dqn":
        text += "hyperparams:\n" + "".join(f"  {k}: {v}\n" for k, v in DQN_BENCH_OVERRIDES.items())
    return text + extra


def queue_run(root: Path, config_text: str) -> Any:
    """A run folder made through runstore, as the runner makes it: its ``RunPaths``."""
    from runstore import RunStore

    store = RunStore(root)
    store.ensure_layout()
    path = store.submit(config_text, "bench.yaml")
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    return store.paths(record.id)


def run_child(args: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> Any:
    """``python ARGS`` from the repository root, output captured; (result, wall seconds)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.perf_counter() - started


def last_json(result: Any, what: str) -> dict:
    """The JSON a child printed last, or the end of its stderr as the error."""
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_ours(
    root: Path, config_text: str, tracking: bool, env: dict[str, str] | None = None
) -> dict:
    """Our trainer on a fresh run folder: ``python -m training RUN_DIR`` with all its tracking,
    or (``tracking`` False) the ``untracked`` child below on the same folder."""
    run = queue_run(root, config_text)
    if not tracking:
        result, wall = run_child([__file__, "--child", "untracked", "--run-dir", str(run.dir)], env)
        return {**last_json(result, "untracked trainer"), "wall": wall, "run": run.dir}
    result, wall = run_child(["-m", "training", str(run.dir)], env)
    log = run.train_log.read_text(errors="replace") if run.train_log.exists() else ""
    match = LEARNED.search(log)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"our trainer failed ({result.returncode}):\n{log[-3000:]}")
    return {
        "steps": int(match[1]),
        "seconds": float(match[2]),
        "cpu": float(match[3]),
        "tracking": float(match[4]),
        "wall": wall,
        "run": run.dir,
    }


def untracked(run_dir: Path) -> dict:
    """``ours-off``: our trainer's env and model for the run (``Trainer.prepare``, without
    TensorBoard), then ``learn`` with no callback, status heartbeat or checkpoints, timed as
    ``Trainer.run`` times it. The difference to ``ours`` is what tracking costs."""
    from runstore.config import load_resolved
    from runstore.paths import RunPaths
    from training.status import StatusWriter
    from training.trainer import Trainer

    paths = RunPaths(run_dir.absolute())
    config = load_resolved(paths.config.read_text(encoding="utf-8"))
    trainer = Trainer(paths, config, StatusWriter(paths))
    try:
        start = trainer.prepare(tensorboard=False)
        assert trainer.model is not None
        remaining = config.n_timesteps - start
        started, cpu = time.perf_counter(), time.process_time()
        trainer.model.learn(total_timesteps=remaining, reset_num_timesteps=start == 0)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    finally:
        trainer.close()
    steps = trainer.model.num_timesteps - start  # whole rollouts, as ``ours`` counts them
    return {"steps": steps, "seconds": seconds, "cpu": cpu_seconds, "tracking": 0.0}


def run_plain(algo: str, env_id: str, steps: int, seed: int, device: str) -> dict:
    args = ["--child", algo, "--env", env_id, "--child-steps", str(steps)]
    args += ["--seed", str(seed), "--device", device]
    result, wall = run_child([__file__, *args])
    return {**last_json(result, "plain SB3 script"), "wall": wall}


# --- env-only throughput -------------------------------------------------------------------


def env_throughput(kind: str, env_id: str, n_envs: int, steps: int) -> float:
    """Random-action vector steps per second x n_envs, after a warm-up, in this process."""
    import numpy as np

    if kind == "native":
        from runstore.config import AtariSettings
        from training.atari_vec import NativeAtariVecEnv

        env = NativeAtariVecEnv(env_id, n_envs, AtariSettings())
    else:
        import ale_py
        import gymnasium as gym
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

        from training.envs import make_env

        gym.register_envs(ale_py)
        cls = SubprocVecEnv if kind == "subproc" else DummyVecEnv
        kwargs = {"start_method": "forkserver"} if cls is SubprocVecEnv else None
        env = make_atari_env(
            # a forkserver worker is a fresh interpreter: make_env registers ALE there
            functools.partial(make_env, env_id),
            n_envs=n_envs,
            seed=0,
            env_kwargs={"frameskip": 1},
            vec_env_cls=cls,
            vec_env_kwargs=kwargs,
        )
        env = VecFrameStack(env, n_stack=4)
    rng = np.random.default_rng(0)
    n_actions = env.action_space.n
    env.reset()
    for _ in range(20):
        env.step(rng.integers(0, n_actions, n_envs))
    vec_steps = max(1, steps // n_envs)
    actions = rng.integers(0, n_actions, (vec_steps, n_envs))
    started = time.perf_counter()
    for a in actions:
        env.step(a)
    seconds = time.perf_counter() - started
    env.close()
    return vec_steps * n_envs / seconds


def run_env_child(kind: str, env_id: str, steps: int) -> float:
    args = ["--child", f"env-{kind}", "--env", env_id, "--child-steps", str(steps)]
    result, _ = run_child([__file__, *args], timeout=900)
    return last_json(result, f"env benchmark {kind}")["fps"]


# --- reporting -----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_training_table(algo: str, results: dict[str, list[dict]]) -> dict[str, float]:
    """fps: steps per second of ``learn``; cpu fps: steps per CPU second of the training
    process (all its threads), which a busy machine disturbs far less than wall time."""
    fps = {k: median([r["steps"] / r["seconds"] for r in v]) for k, v in results.items()}
    cpu = {k: median([r["steps"] / r["cpu"] for r in v]) for k, v in results.items()}
    wall = {k: median([r["wall"] for r in v]) for k, v in results.items()}
    base, cpu_base = fps["plain"], cpu["plain"]
    print(f"\n{algo.upper()} ({len(results['plain'])} reps, median)")
    print(
        f"  {'way':<10} {'fps':>8} {'vs plain':>9} {'cpu fps':>8} {'vs plain':>9} "
        f"{'wall s':>7}   all fps"
    )
    for key, value in fps.items():
        every = " ".join(f"{r['steps'] / r['seconds']:.0f}" for r in results[key])
        print(
            f"  {key:<10} {value:>8.1f} {value / base:>8.2f}x {cpu[key]:>8.1f} "
            f"{cpu[key] / cpu_base:>8.2f}x {wall[key]:>7.1f}   {every}"
        )
    for name, table in (("fps", fps), ("cpu fps", cpu)):
        if "ours-nchw" in table:
            print(f"  {name}: channels-last {table['ours'] / table['ours-nchw']:.2f}x NCHW")
        overhead = 1 - table["ours"] / table["ours-off"]
        line = f"  {name}: ours vs ours-off {overhead * 100:+.1f}%"
        if algo == "ppo":
            line += f", ours/plain {table['ours'] / table['plain']:.2f}x (goal >= 1.10x)"
        print(line)
    share = median([r["tracking"] / r["seconds"] for r in results["ours"]])
    print(
        f"  tracking overhead, measured inside ours: {share * 100:.2f}% of learn() time "
        "(goal <= 2%; main-thread time in the callback, checkpoints and TensorBoard writes)"
    )
    return fps


def bench_training(args: argparse.Namespace, algo: str, steps: int, work: Path) -> None:
    ways = ["plain", "ours", "ours-off"] + (["ours-nchw"] if algo == "ppo" else [])
    results: dict[str, list[dict]] = {w: [] for w in ways}
    for rep in range(args.reps):
        order = ways[rep % len(ways) :] + ways[: rep % len(ways)]  # rotate who goes first
        for way in order:
            seed = args.seed + rep
            if way == "plain":
                r = run_plain(algo, args.env, steps, seed, args.device)
            else:
                extra = args.extra + ("channels_last: false\n" if way == "ours-nchw" else "")
                config = our_config(algo, args.env, steps, seed, args.device, extra)
                r = run_ours(work / f"{algo}-{way}", config, tracking=way != "ours-off")
                shutil.rmtree(r.pop("run"), ignore_errors=True)
            results[way].append(r)
            print(
                f"  {algo} rep {rep + 1}/{args.reps} {way:<9} "
                f"{r['steps'] / r['seconds']:7.1f} fps  ({r['wall']:.1f} s wall)",
                flush=True,
            )
    print_training_table(algo, results)


def bench_env(args: argparse.Namespace) -> None:
    kinds = ["native", "subproc", "dummy"]
    fps: dict[str, list[float]] = {k: [] for k in kinds}
    for rep in range(args.reps):
        for kind in kinds[rep % 3 :] + kinds[: rep % 3]:
            fps[kind].append(run_env_child(kind, args.env, args.env_steps))
    base = median(fps["subproc"])
    print(f"\nEnv only, {args.env}, 8 envs, random actions ({args.reps} reps, median)")
    print(f"  {'backend':<24} {'steps/s':>9} {'vs subproc':>11}   all")
    names = {
        "native": "native (AtariVectorEnv)",
        "subproc": "SB3 SubprocVecEnv",
        "dummy": "SB3 DummyVecEnv",
    }
    for kind in kinds:
        value = median(fps[kind])
        every = " ".join(f"{v:.0f}" for v in fps[kind])
        print(f"  {names[kind]:<24} {value:>9.0f} {value / base:>10.2f}x   {every}")


def fps_by_threads(
    args: argparse.Namespace, work: Path, counts: list[int], at_once: int
) -> dict[int, list[float]]:
    """Our PPO trainer, ``at_once`` of them at the same time, with each torch thread count in
    ``counts`` (``RETRO_ML_TORCH_THREADS``), alternating: steps/s of every trainer."""
    from concurrent.futures import ThreadPoolExecutor

    config = our_config("ppo", args.env, args.ppo_steps, args.seed, args.device, "")
    fps: dict[int, list[float]] = {n: [] for n in counts}
    for rep in range(args.reps):
        for n in counts[rep % len(counts) :] + counts[: rep % len(counts)]:
            play = functools.partial(
                run_ours, config_text=config, tracking=True, env={TORCH_THREADS_ENV: str(n)}
            )
            with ThreadPoolExecutor(at_once) as pool:
                results = list(pool.map(play, [work / f"threads-{n}-{i}" for i in range(at_once)]))
            for r in results:
                shutil.rmtree(r.pop("run"), ignore_errors=True)
                fps[n].append(r["steps"] / r["seconds"])
    return fps


def bench_threads(args: argparse.Namespace, work: Path) -> None:
    """Our PPO trainer with 1 torch thread, all cores but one, and one per core (the
    default), alternating."""
    cores = len(os.sched_getaffinity(0))
    fps = fps_by_threads(args, work, sorted({1, max(1, cores - 1), cores}), at_once=1)
    print(f"\nPPO, our trainer, torch intra-op threads ({args.reps} reps, median fps)")
    for n, values in fps.items():
        every = " ".join(f"{v:.0f}" for v in values)
        print(f"  {n} thread(s): {median(values):7.1f}   {every}")


def bench_concurrent(args: argparse.Namespace, work: Path) -> None:
    """Two trainers at once, each with torch threads = all cores against half of them."""
    cores = len(os.sched_getaffinity(0))
    fps = fps_by_threads(args, work, sorted({cores, max(1, cores // 2)}, reverse=True), at_once=2)
    print(f"\nPPO, two of our trainers at once, torch threads each ({args.reps} reps, median fps)")
    for n, values in fps.items():
        every = " ".join(f"{v:.0f}" for v in values)
        print(f"  {n} thread(s) each: {median(values):7.1f} per trainer   {every}")


def _time_policy(policy: Any, batch: Any) -> dict[str, float]:
    """Seconds of one training step and of one acting forward pass: PPO's minibatch of 256
    and rollout of 8 envs, or DQN's batch of 32 and its single env."""
    import torch

    ppo = hasattr(policy, "evaluate_actions")
    size, acting = (256, 8) if ppo else (32, 1)
    obs = batch[:size]
    actions = torch.randint(0, 6, (size,))

    def train_step() -> None:
        if ppo:
            values, log_prob, entropy = policy.evaluate_actions(obs, actions)
            loss = values.pow(2).mean() - log_prob.mean() - 0.01 * entropy.mean()
        else:
            with torch.no_grad():
                target = policy.q_net_target(obs).max(dim=1).values
            q = policy.q_net(obs).gather(1, actions[:, None])[:, 0]
            loss = (q - target).pow(2).mean()
        policy.optimizer.zero_grad()
        loss.backward()
        policy.optimizer.step()

    def act() -> None:
        with torch.no_grad():
            policy(obs[:acting])

    name = "PPO" if ppo else "DQN"
    out = {}
    for label, fn, n in (
        (f"{name} train step ({size})", train_step, 10 if ppo else 40),
        (f"{name} forward ({acting})", act, 200),
    ):
        fn()
        started = time.perf_counter()
        for _ in range(n):
            fn()
        out[label] = (time.perf_counter() - started) / n
    return out


def bench_layout(args: argparse.Namespace) -> None:
    """NatureCNN (SB3's PPO and DQN CnnPolicy for Pong) in NCHW and channels-last, alternating."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3.common.policies import ActorCriticCnnPolicy
    from stable_baselines3.dqn.policies import CnnPolicy as DQNCnnPolicy

    from training.memory_format import use_channels_last
    from training.trainer import torch_threads

    torch.set_num_threads(torch_threads(len(os.sched_getaffinity(0))))
    obs_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    batch = torch.randint(0, 256, (256, 4, 84, 84), dtype=torch.uint8)
    layouts = ("nchw", "channels-last")
    times: dict[str, dict[str, list[float]]] = {}
    for rep in range(args.reps):
        for layout in layouts[rep % 2 :] + layouts[: rep % 2]:
            for policy_cls in (ActorCriticCnnPolicy, DQNCnnPolicy):
                torch.manual_seed(rep)
                policy = policy_cls(obs_space, gym.spaces.Discrete(6), lambda _: 2.5e-4)
                if layout == "channels-last":
                    use_channels_last(policy)
                for name, took in _time_policy(policy, batch).items():
                    times.setdefault(name, {}).setdefault(layout, []).append(took)
    threads = torch.get_num_threads()
    print(f"\nNatureCNN layout, {threads} torch threads ({args.reps} reps, median ms)")
    for name, by_layout in times.items():
        a, b = median(by_layout["nchw"]), median(by_layout["channels-last"])
        print(f"  {name:<22} NCHW {a * 1e3:7.2f}   channels-last {b * 1e3:7.2f}   {a / b:.2f}x")


def bench_eval(args: argparse.Namespace) -> None:
    """One evaluation of 10 games, one env at a time against side by side, alternating."""
    from stable_baselines3 import PPO

    from runstore.config import parse_config, resolve
    from training.evaluation import eval_envs, make_eval_env, run_episodes

    text = f"algo: ppo\nenv: {args.env}\nn_timesteps: 1000\nseed: {args.seed}\neval_episodes: 10"
    config = resolve(
        parse_config(args.eval_config.read_bytes() if args.eval_config else text.encode())
    )
    ways = {"one at a time": 1, "side by side": eval_envs(config)}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    steps: dict[str, int] = {}
    model = None
    for rep in range(args.reps):
        names = list(ways)[rep % 2 :] + list(ways)[: rep % 2]
        for way in names:
            env = make_eval_env(config, ways[way])
            if model is None:
                model = PPO("CnnPolicy", env, device="cpu", seed=args.seed)
                if args.eval_model:  # weights only: SB3 reads no pickled data for this
                    model.set_parameters(str(args.eval_model), device="cpu")
            started = time.perf_counter()
            played = run_episodes(model, env, config.eval_episodes, seed=args.seed)
            seconds[way].append(time.perf_counter() - started)
            env.close()
            assert played is not None
            steps[way] = sum(played[1])
    agent = args.eval_model or "an untrained agent"
    print(f"\nEvaluation, {config.env}, 10 games of {agent} ({args.reps} reps, median seconds)")
    base = median(seconds["one at a time"])
    for way, n in ways.items():
        took, every = median(seconds[way]), " ".join(f"{v:.1f}" for v in seconds[way])
        print(
            f"  {way:<14} {n:>2} env(s) {took:7.1f} s  {steps[way] / took:6.0f} game steps/s"
            f"  {base / took:5.2f}x   {every}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each way")
    parser.add_argument("--ppo-steps", type=int, default=2048, help="PPO timesteps per run")
    parser.add_argument("--dqn-steps", type=int, default=2000, help="DQN timesteps per run")
    parser.add_argument("--env-steps", type=int, default=4000, help="env-only steps per run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--only",
        default="ppo,dqn,env",
        help="comma-separated parts: ppo, dqn, env, threads, concurrent, layout, eval "
        "(default: ppo,dqn,env)",
    )
    parser.add_argument(
        "--eval-config", type=Path, help="eval: a run's config.yaml (its env and atari block)"
    )
    parser.add_argument("--eval-model", type=Path, help="eval: a PPO model.zip to play with")
    parser.add_argument("--extra", default="", help=argparse.SUPPRESS)  # config lines for ours
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)  # --child untracked
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "untracked":
            print(json.dumps(untracked(args.run_dir)))
        elif args.child.startswith("env-"):
            fps = env_throughput(args.child[4:], args.env, 8, args.child_steps)
            print(json.dumps({"fps": fps}))
        else:
            out = plain_script(args.child, args.env, args.child_steps, args.seed, args.device)
            print(json.dumps(out))
        return 0

    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - {"ppo", "dqn", "env", "threads", "concurrent", "layout", "eval"}
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f"bench_train: {args.env}, device {args.device}, {cores} cores, load {load:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        if "ppo" in parts:
            bench_training(args, "ppo", args.ppo_steps, work)
        if "dqn" in parts:
            bench_training(args, "dqn", args.dqn_steps, work)
        if "env" in parts:
            bench_env(args)
        if "threads" in parts:
            bench_threads(args, work)
        if "concurrent" in parts:
            bench_concurrent(args, work)
        if "layout" in parts:
            bench_layout(args)
        if "eval" in parts:
            bench_eval(args)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
