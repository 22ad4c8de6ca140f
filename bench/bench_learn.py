"""Benchmark: time to a winning agent, our trainer against a plain Stable-Baselines3 script.

    python bench/bench_learn.py                          # CartPole to 475 (a few minutes)
    python bench/bench_learn.py --game Pong --cap 3h     # Pong to +18: hours on a CPU
    python bench/bench_learn.py --game pong-fast         # Pong, fast: +18 in 20-40 min, 2 cores
    python bench/bench_learn.py --game pong-zoo --sides plain --cap 20m  # the Zoo's baseline
    python bench/bench_learn.py --game Pong --seeds 1,2 --device cuda
    make learn GAME=Pong                                 # the same, through make

Each side trains a preset (an example config of this repository, ``PRESETS``) until its
evaluation's mean return reaches the preset's threshold or the time cap is spent, and the
benchmark prints the wall time and steps to each milestone (Pong: -15, -10, 0, +10, +18):

1. ``ours``: ``python -m training RUN_DIR`` on a run folder made through runstore, with the
   preset's config plus ``stop_at_score`` (the threshold), ``time_budget`` (the cap), seed and
   device. Milestones come from its evaluations in TensorBoard (``analysis.learning``).
2. ``plain``: the script a user would write with SB3 alone and the baseline's settings (for
   Atari the RL Zoo's: ``make_atari_env`` + ``VecFrameStack``, the AtariWrapper's defaults,
   sticky actions as the preset's config states), with SB3's ``EvalCallback`` at the same
   frequency and episode count (a separate env playing whole games for real points) and
   a stop at the threshold (what ``StopTrainingOnRewardThreshold`` does).

Seconds count from the moment each process is launched (interpreter start-up and env
construction included: the user waits for them too). The two sides run one after the other,
never side by side, so neither slows the other; the ratio is measured in one run of this
script on one machine. Evaluations cost both sides the same (same games, same frequency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Preset:
    """A config to train, its milestones (the last one is the threshold), and a time cap."""

    config: str  # relative to the repository root
    milestones: tuple[float, ...]
    cap: str  # a time_budget text: '10m', '3h'
    eval_every: int
    eval_episodes: int
    #: top-level config keys set on top of the example's (a preset that differs from its
    #: example only in what the benchmark needs)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.milestones[-1]


#: Pong's milestones: the last is the threshold, the Zoo's "solved" level.
PONG_MARKS = (-15, -10, 0, 10, 18)

#: ``--game`` -> the preset trained on both sides. Pong's threshold is the Zoo's "solved"
#: level (+18 mean over 10 games, 21 is the cap); CartPole-v1's is Gymnasium's
#: reward_threshold (475 of 500).
PRESETS: dict[str, Preset] = {
    "cartpole": Preset(
        "examples/cartpole-ppo-zoo.yaml", (100, 200, 300, 400, 475), "10m", 10_000, 10
    ),
    "pong": Preset("examples/pong-ppo.yaml", PONG_MARKS, "3h", 100_000, 10),
    "pong-fast": Preset("examples/pong-ppo-fast.yaml", PONG_MARKS, "90m", 50_000, 10),
    # The Zoo's settings as the published curves ran them (v4 games: no sticky actions), on
    # the fast preset's evaluation grid: the baseline to compare ``pong-fast`` with.
    "pong-zoo": Preset(
        "examples/pong-ppo.yaml",
        PONG_MARKS,
        "3h",
        50_000,
        10,
        {"atari": {"repeat_action_probability": 0.0}},
    ),
}


# --- the plain SB3 script (run as a child process) ---------------------------------------


def plain_script(config_path: Path, threshold: float, cap: float, launched: float) -> dict:
    """What a user would write with SB3 alone, from a resolved run config: the same
    hyperparameters, SB3's own env pipeline, EvalCallback, and a stop at the threshold.
    Prints each evaluation as (step, seconds since launch, mean return)."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import (
        BaseCallback,
        CallbackList,
        EvalCallback,
    )
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from runstore.config import load_resolved
    from training.sb3_kwargs import model_kwargs

    gym.register_envs(ale_py)
    config = load_resolved(config_path.read_text(encoding="utf-8"))
    hp = config.hyperparams
    assert hp is not None and config.seed is not None
    eval_seed = config.seed + 1_000_003

    def env(n: int, seed: int, evaluation: bool) -> Any:
        if not config.is_atari:
            return make_vec_env(config.env, n_envs=n, seed=seed)
        atari = config.atari
        assert atari is not None
        venv = make_atari_env(
            config.env,
            n_envs=n,
            seed=seed,
            # the AtariWrapper skips frames itself; the ALE must not skip more
            env_kwargs={
                "frameskip": 1,
                "repeat_action_probability": atari.repeat_action_probability,
            },
            # evaluation plays whole games for real points (Machado et al. 2018)
            wrapper_kwargs={"terminal_on_life_loss": False, "clip_reward": False}
            if evaluation
            else None,
        )
        return VecFrameStack(venv, n_stack=atari.frame_stack)

    train_env = env(hp.n_envs, config.seed, False)
    algo = {"ppo": PPO, "dqn": DQN}[config.algo]
    model = algo(
        hp.policy, train_env, seed=config.seed, device=config.device, **model_kwargs(config)
    )
    evaluations: list[tuple[int, float, float]] = []

    class Record(BaseCallback):
        """After each evaluation: note it, and stop at the threshold. (SB3's
        StopTrainingOnRewardThreshold would stop there too, but as ``callback_on_new_best`` it
        runs first, and EvalCallback then skips this callback: the winning evaluation would
        go unrecorded.)"""

        def _on_step(self) -> bool:
            mean = float(self.parent.last_mean_reward)  # type: ignore[union-attr]
            evaluations.append((self.num_timesteps, time.time() - launched, mean))
            return mean < threshold

    class Cap(BaseCallback):
        def _on_training_start(self) -> None:
            self.started = time.monotonic()

        def _on_step(self) -> bool:
            return time.monotonic() - self.started < cap

    evaluate = EvalCallback(
        env(1, eval_seed, True),
        n_eval_episodes=config.eval_episodes,
        eval_freq=max(1, (config.eval_every or 0) // hp.n_envs),
        deterministic=config.eval_deterministic,
        callback_after_eval=Record(),
        verbose=0,
    )
    started = time.monotonic()
    model.learn(total_timesteps=config.n_timesteps, callback=CallbackList([evaluate, Cap()]))
    seconds = time.monotonic() - started
    return {"evaluations": evaluations, "steps": model.num_timesteps, "seconds": seconds}


# --- our training process ------------------------------------------------------------------


def our_side(work: Path, config_text: str, cap: float) -> dict:
    """``python -m training`` on a fresh run folder; its evaluations as the plain side
    reports them: (step, seconds since launch, mean return)."""
    from bench_train import queue_run, run_child

    from analysis import learning
    from runstore import tags
    from runstore.metrics import load_scalars
    from runstore.store import read_status_file

    run = queue_run(work, config_text)
    launched = time.time()
    result, _ = run_child(["-m", "training", str(run.dir)], timeout=_timeout(cap))
    if result.returncode != 0:
        log = run.train_log.read_text(errors="replace") if run.train_log.exists() else ""
        raise RuntimeError(f"our trainer failed ({result.returncode}):\n{log[-3000:]}")
    scalars = load_scalars(run.dir)
    curve = learning.eval_curve(scalars)
    evaluations = [
        (int(step), float(wall) - launched, float(mean))
        for step, wall, mean in curve.select("step", "wall_time", "mean").iter_rows()
    ]
    status = read_status_file(run.status_json)
    assert status is not None, "the trainer left no status.json"
    eval_seconds = scalars.filter(scalars["tag"] == tags.EVAL_SECONDS)["value"].sum()
    return {
        "evaluations": evaluations,
        "steps": status.timesteps,
        "seconds": status.train_seconds,
        "eval_seconds": float(eval_seconds),
    }


def plain_side(config_path: Path, preset: Preset, cap: float) -> dict:
    from bench_train import last_json, run_child

    launched = time.time()
    args = [__file__, "--child", str(config_path), "--threshold", str(preset.threshold)]
    args += ["--cap-seconds", str(cap), "--launched", repr(launched)]
    result, _ = run_child(args, timeout=_timeout(cap))
    return last_json(result, "plain SB3 script")


def _timeout(cap: float) -> float:
    """A side's process is given its cap plus start-up and a last evaluation."""
    return cap * 1.5 + 600


# --- milestones and the report ---------------------------------------------------------------


def milestones(evaluations: list, marks: tuple[float, ...]) -> list[Any]:
    """``analysis.learning.time_to_threshold`` over a side's evaluations, seconds counted
    from its launch."""
    import polars as pl

    from analysis import learning

    curve = pl.DataFrame(
        [(int(s), float(t), float(m)) for s, t, m in evaluations],
        schema={"step": pl.Int64, "wall_time": pl.Float64, "mean": pl.Float64},
        orient="row",
    )
    return learning.time_to_threshold(curve, marks, start=0.0)


def report(game: str, seed: int, marks: tuple[float, ...], sides: dict[str, dict]) -> None:
    reached = {name: milestones(side["evaluations"], marks) for name, side in sides.items()}
    print(f"\n{game}, seed {seed}: steps and minutes from launch to each milestone")
    print(f"  {'mean return':>11}  {'ours steps':>11} {'min':>6}  {'plain steps':>11} {'min':>6}"
          f"  {'plain/ours time':>15}")  # fmt: skip
    for mark, ours, plain in zip(marks, reached["ours"], reached["plain"], strict=True):
        both = ours.seconds is not None and plain.seconds is not None and ours.seconds > 0
        ratio = f"{plain.seconds / ours.seconds:.2f}x" if both else "-"
        print(f"  {mark:>11g}  {_cell(ours)}  {_cell(plain)}  {ratio:>15}")
    for name in ("ours", "plain"):
        side = sides[name]
        curve = ", ".join(f"{s:,}: {m:g}" for s, _, m in side["evaluations"])
        print(f"  {name} evaluations (step: mean return): {curve}")
        print(f"  {name} throughput: {throughput(side)}")


def throughput(side: dict) -> str:
    """Steady-state speed over the whole run (evaluations and checkpoints included), and for
    our side the share of it that evaluations took: a long run's fps against the short
    bench's (bench_train.py times 8k steps with no evaluation)."""
    steps, seconds = side.get("steps"), side.get("seconds")
    if not steps or not seconds:
        return "-"
    text = f"{steps:,} steps in {seconds / 60:.1f} min of training: {steps / seconds:.0f} steps/s"
    evals = side.get("eval_seconds")
    if evals:
        text += (
            f"; evaluations took {evals / 60:.1f} min ({evals / seconds:.0%}), "
            f"{steps / (seconds - evals):.0f} steps/s between them"
        )
    return text


def _cell(hit: Any) -> str:
    """A ``learning.Reached``: steps and minutes, or never."""
    if hit.step is None:
        return f"{'never':>11} {'-':>6}"
    return f"{hit.step:>11,} {hit.seconds / 60:>6.2f}"


def machine_line(device: str) -> str:
    from machine.probes import probe_cpu
    from training.status import versions

    cpu = probe_cpu()
    libs = ", ".join(f"{k} {v}" for k, v in versions().items())
    return (
        f"machine: {cpu['model']}, {cpu['usable_cores']} usable cores, load "
        f"{os.getloadavg()[0]:.2f}, {platform.system()}; device {device}; {libs}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--game", default="CartPole", help=f"one of: {', '.join(PRESETS)}")
    parser.add_argument("--seeds", default="1", help="comma-separated seeds, e.g. 1,2")
    parser.add_argument("--cap", help="time cap per side, e.g. 90m (default: the preset's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--sides", default="ours,plain", help="ours, plain or both")
    parser.add_argument("--json", type=Path, help="also write every evaluation to this file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threshold", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--cap-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(plain_script(args.child, args.threshold, args.cap_seconds, args.launched)))
        return 0

    from runstore.config import ConfigError, parse_config, to_stored_yaml
    from runstore.config_schema import parse_duration

    preset = PRESETS.get(args.game.lower())
    if preset is None:
        parser.error(f"--game: no preset for {args.game!r}; there are: {', '.join(PRESETS)}")
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or set(sides) - {"ours", "plain"}:
        parser.error("--sides: write ours, plain or ours,plain")
    cap = parse_duration(args.cap or preset.cap)
    if not isinstance(cap, float | int) or cap <= 0:
        parser.error(f"--cap: {args.cap!r} is not a duration; write 90m, 3h or seconds")
    print(f"bench_learn: {args.game}, preset {preset.config}, threshold {preset.threshold:g}, "
          f"cap {cap / 60:.0f} min per side")  # fmt: skip
    print(machine_line(args.device))
    results: dict[str, Any] = {"game": args.game, "preset": preset.config, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-learn-") as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            doc = yaml.safe_load((ROOT / preset.config).read_text(encoding="utf-8"))
            doc |= preset.overrides | {
                "seed": seed,
                "device": args.device,
                "eval_every": preset.eval_every,
                "eval_episodes": preset.eval_episodes,
                "stop_at_score": preset.threshold,
                "time_budget": cap,
                "video_every": 0,
            }
            text = yaml.safe_dump(doc, sort_keys=False)
            try:
                config = parse_config(text.encode())
            except ConfigError as exc:
                raise SystemExit(f"{preset.config}: {exc}") from None
            work = Path(tmp) / f"seed-{seed}"
            work.mkdir()
            resolved = work / "config.yaml"
            resolved.write_text(to_stored_yaml(config), encoding="utf-8")
            done: dict[str, dict] = {}
            for side in sides:
                if side == "ours":
                    done["ours"] = our_side(work / "runs", text, cap)
                else:
                    done["plain"] = plain_side(resolved, preset, cap)
            for side in ("ours", "plain"):
                done.setdefault(side, {"evaluations": []})
            report(args.game, seed, preset.milestones, done)
            results["runs"].append({"seed": seed, **done})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
