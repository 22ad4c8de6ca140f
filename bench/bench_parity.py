"""Benchmark: learning parity of the native Atari backend against SB3's wrappers (issue 19).

    python bench/bench_parity.py queue --runs-dir runs-parity          # 8 configs into its queue
    python -m runner --runs-dir runs-parity --max-concurrent 1         # hours; stop any time
    python bench/bench_parity.py report --runs-dir runs-parity         # curves so far, any time

PPO with the RL Zoo's Atari settings on each game (default Pong and Breakout), ``backend:
native`` against ``backend: sb3`` with everything else equal, on each seed (default 1 and 2),
to ``--steps`` (default 1M). The runs go through the project's own runner, so a benchmark of
hours survives a stopped session: start the runner again and ``python -m runner --runs-dir
runs-parity resume RUN`` continues a ``lost`` run from its last checkpoint (every 100k steps).

The report prints, per game, the mean training return (whole games, real points) per 100k
steps of each run side by side, each run's last evaluation (10 whole games, deterministic),
and the published anchors at the same step where they exist.

Choices, stated in the report: no sticky actions (the published curves are the v4
"NoFrameskip" games; ALE v5's default is 0.25), and a constant learning rate 2.5e-4 and clip
0.1 instead of the Zoo's linear decay over 10M steps, because a 1M-step run with the Zoo's
``lin_`` schedules would decay to zero by its end; over the first 1M steps of a 10M-step run
the Zoo's schedule is within 10% of these constants.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("native", "sb3")
#: Published PPO anchors (Zoo settings, v4 games without sticky actions), as in issue 19:
#: (game, step) -> what was published there.
PUBLISHED: dict[tuple[str, int], str] = {
    ("Pong", 1_300_000): "CleanRL ppo_atari crosses 0 at about 1.3M steps",
    ("Pong", 3_400_000): "CleanRL ppo_atari reaches +18 at about 3.3-3.5M steps",
    ("Pong", 10_000_000): "RL Zoo PPO: 20.99 after 10M steps",
    ("Breakout", 10_000_000): "RL Zoo PPO: 398 after 10M steps",
}


def run_name(game: str, backend: str, seed: int) -> str:
    return f"parity-{game.lower()}-{backend}-s{seed}"


def config_for(game: str, backend: str, seed: int, steps: int) -> dict:
    """The Zoo's PPO Atari settings (examples/pong-ppo.yaml) on ``game`` and ``backend``."""
    doc = yaml.safe_load((ROOT / "examples" / "pong-ppo.yaml").read_text(encoding="utf-8"))
    doc["hyperparams"] |= {"learning_rate": 2.5e-4, "clip_range": 0.1}
    return doc | {
        "name": run_name(game, backend, seed),
        "env": f"ALE/{game}-v5",
        "n_timesteps": steps,
        "seed": seed,
        "device": "cpu",
        "backend": backend,
        "checkpoint_every": 100_000,
        "eval_every": 250_000,
        "eval_episodes": 10,
        "video_every": 0,
        "atari": {"repeat_action_probability": 0.0},
    }


def queue(runs_dir: Path, games: list[str], seeds: list[int], steps: int) -> None:
    from runstore.config import ConfigError, parse_config
    from runstore.store import RunStore

    store = RunStore(runs_dir)
    store.ensure_layout()
    existing = {r.name for r in map(store.read_run, store.run_ids()) if r is not None}
    existing |= {path.stem for path in store.queue_files()}  # queued, not taken in yet
    for game in games:
        for seed in seeds:
            for backend in BACKENDS:
                name = run_name(game, backend, seed)
                if name in existing:
                    print(f"  {name}: already in {runs_dir}, left as it is")
                    continue
                text = yaml.safe_dump(config_for(game, backend, seed, steps), sort_keys=False)
                try:
                    parse_config(text.encode())
                except ConfigError as exc:
                    raise SystemExit(f"{name}: {exc}") from None
                print(f"  queued {store.submit(text, name + '.yaml').name}")
    print(f"now: python -m runner --runs-dir {runs_dir} --max-concurrent 1")


def report(runs_dir: Path, bin_steps: int) -> None:
    from analysis import learning
    from runstore.metrics import load_episodes, load_scalars
    from runstore.store import RunStore

    store = RunStore(runs_dir)
    records = (store.read_run(run_id) for run_id in store.run_ids())
    runs = {r.name: r for r in records if r is not None and r.name.startswith("parity-")}
    if not runs:
        raise SystemExit(f"no parity runs in {runs_dir}: run `bench_parity.py queue` first")
    games = sorted({name.split("-")[1] for name in runs})
    for game in games:
        names = sorted(n for n in runs if n.split("-")[1] == game)
        print(f"\n{game}: mean training return per {bin_steps:,} steps (whole games, points)")
        tables = {}
        for name in names:
            episodes = load_episodes(store.paths(runs[name].id).dir)
            tables[name] = dict(
                learning.returns_per_bin(episodes, bin_steps).select("upto", "mean").iter_rows()
            )
        short = [name.removeprefix(f"parity-{game}-") for name in names]
        print(f"  {'steps':>9}  " + "  ".join(f"{s:>10}" for s in short))
        uptos = sorted({u for table in tables.values() for u in table})
        for upto in uptos:
            cells = [tables[n].get(upto) for n in names]
            row = "  ".join(f"{c:>10.1f}" if c is not None else f"{'-':>10}" for c in cells)
            print(f"  {upto:>9,}  {row}")
        for name in names:
            record = runs[name]
            run_id = record.id
            status = store.read_status(run_id)
            final, _ = learning.final_and_best(
                learning.eval_curve(load_scalars(store.paths(run_id).dir))
            )
            last = f"{final.mean:g} at {final.step:,}" if final else "none yet"
            steps = status.timesteps if status else 0
            fps = steps / status.train_seconds if status and status.train_seconds else 0
            state = record.state.value
            print(f"  {name}: {state}, {steps:,} steps, {fps:.0f} steps/s, last evaluation {last}")
        for (g, step), text in PUBLISHED.items():
            if g.lower() == game:
                print(f"  published at {step:,}: {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("queue", "report"))
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs-parity")
    parser.add_argument("--games", default="Pong,Breakout", help="ALE game names, comma-separated")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--bin", type=int, default=100_000, help="steps per row of the report")
    args = parser.parse_args(argv)
    if args.action == "queue":
        games = [g.strip() for g in args.games.split(",") if g.strip()]
        queue(args.runs_dir, games, [int(s) for s in args.seeds.split(",")], args.steps)
    else:
        report(args.runs_dir, args.bin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
