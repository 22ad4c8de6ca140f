"""``python -m training RUN_DIR``: train the run in that folder (the runner's child process,
also usable by hand for debugging)."""

from __future__ import annotations

import argparse
import sys

from training.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("run_dir", help="a run folder holding config.yaml")
    args = parser.parse_args(argv)
    return train(args.run_dir)


# The guard matters: SubprocVecEnv's forkserver/spawn workers re-import the main module.
if __name__ == "__main__":
    sys.exit(main())
