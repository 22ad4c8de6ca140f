"""``python -m training.record RUN_DIR [--checkpoint NAME] [--episodes N]``: a clip on demand.

A short evaluation process (the runner starts it for a ``record`` request, in its own process
group, beside a training that goes on undisturbed): it builds this run's network, loads the
weights of one of its checkpoints (``best``, ``step-NNN``, default the best model if there is
one, else the newest checkpoint), plays N games with the evaluation protocol on the CPU and
writes ``videos/step-NNN-record.mp4`` with its sidecar. The checkpoint must be signed by
this runs folder (``checkpoints.open_trusted``); an imported run that was not trusted is
refused with exit code 3 and a line that says so, before anything of it is read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from runstore import checkpoints
from runstore.config import read_run_config
from runstore.paths import RunPaths
from runstore.store import MAX_RECORD_EPISODES
from runstore.trust import NotTrustedError
from runstore.videos import ClipMeta, clip_path
from training.evaluation import clip_fps, make_eval_env, run_episodes
from training.sb3_kwargs import ALGORITHMS, model_kwargs
from training.video import ClipWriter, Overlay
from training.weights import WeightsError, load_foreign_weights, load_weights

log = logging.getLogger("training.record")


def record(
    run_dir: Path,
    checkpoint: str | None = None,
    episodes: int = 1,
    foreign_zip: Path | None = None,
    trust_foreign_zip: bool = False,
) -> Path:
    paths = RunPaths(Path(run_dir).absolute())
    config = read_run_config(paths.config).config
    if foreign_zip is None:  # which checkpoint, and is it ours: before anything is built
        if checkpoint is None and checkpoints.best_model(paths.checkpoints) is not None:
            checkpoint = checkpoints.BEST
        zip_path, step = checkpoints.resolve_model(paths.checkpoints, checkpoint)
    env = make_eval_env(config)
    kwargs = model_kwargs(config)
    if config.algo == "dqn":  # playing needs no replay buffer; don't reserve one
        kwargs.update(buffer_size=1, learning_starts=0, batch_size=1)
        kwargs.pop("replay_buffer_kwargs", None)
        kwargs["optimize_memory_usage"] = False
    assert config.hyperparams is not None
    model = ALGORITHMS[config.algo](config.hyperparams.policy, env, device="cpu", **kwargs)
    if foreign_zip is not None:
        load_foreign_weights(model, foreign_zip, trust_foreign_zip)
        name, step = f"imported {foreign_zip.name}", 0
    else:
        load_weights(model, zip_path, "cpu")
        name = checkpoint or zip_path.parent.name
    overlay = Overlay(config.display_name, step) if config.video_overlay else None
    writer = ClipWriter(
        clip_path(paths.videos, step, "record"), clip_fps(config, env), config.video_length, overlay
    )
    try:
        played = run_episodes(
            model, env, episodes, config.eval_deterministic, writer, seed=config.seed
        )
    except BaseException:
        writer.abort()
        raise
    finally:
        env.close()
    assert played is not None
    returns, lengths = played
    clip = writer.close(
        ClipMeta(
            step=step,
            kind="record",
            run_name=config.display_name,
            env=config.env,
            algo=config.algo,
            checkpoint=name,
            episode_return=returns[0],
            episode_length=lengths[0],
            eval_mean_return=sum(returns) / len(returns),
            eval_episodes=len(returns),
            deterministic=config.eval_deterministic,
        )
    )
    log.info("recorded %s from %s: returns %s", clip.path.name, name, returns)
    return clip.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.record", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="the run folder")
    parser.add_argument("--checkpoint", help="best, or a checkpoint folder name (step-NNN)")
    parser.add_argument(
        "--episodes", type=int, default=1, help=f"games to play (1-{MAX_RECORD_EPISODES})"
    )
    parser.add_argument("--foreign-zip", type=Path, help="a model zip from elsewhere")
    parser.add_argument(
        "--trust-foreign-zip",
        action="store_true",
        help="load --foreign-zip although this trainer did not write it (SB3 zips are pickles)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not 1 <= args.episodes <= MAX_RECORD_EPISODES:
        parser.error(f"--episodes must be between 1 and {MAX_RECORD_EPISODES}")
    torch.set_num_threads(1)  # a clip beside a training run must not take its cores
    try:
        path = record(
            args.run_dir, args.checkpoint, args.episodes, args.foreign_zip, args.trust_foreign_zip
        )
    except NotTrustedError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    except (WeightsError, checkpoints.CheckpointNotFoundError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
