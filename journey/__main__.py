"""``python -m journey RUN_DIR --length 60s [--size 1080|720] [--fps 30|60]``: make a run's
journey video. The runner starts this for a ``journey`` request (``runner/media.py``), in its
own process group; SIGTERM (the dashboard's Cancel) stops it and leaves no journey behind.

Exit 0: made (the last line names the mp4); 2: a journey that cannot be made (the last line
says why); 143: cancelled.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from journey.make import make_journey
from journey.story import JourneyError
from runstore.store import RunStore
from runstore.videos import parse_journey_length

CANCELLED = 128 + signal.SIGTERM


class Cancelled(BaseException):
    """SIGTERM arrived: unwind (the encoder and temporary files are cleaned up on the way)."""


def _cancel(_signum: int, _frame: object) -> None:
    raise Cancelled


def length(text: str) -> float:
    try:
        return parse_journey_length(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m journey", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="the run folder")
    parser.add_argument("--length", type=length, default=600.0, help="60s, 10m, 1h (default 10m)")
    parser.add_argument("--size", type=int, default=1080, help="frame height: 1080 or 720")
    parser.add_argument("--fps", type=int, default=30, help="30 or 60")
    parser.add_argument(
        "--no-record", action="store_true", help="use only the clips on disk, never record more"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _cancel)
    run_dir = args.run_dir.absolute()
    try:
        made = make_journey(
            RunStore(run_dir.parent),
            run_dir.name,
            args.length,
            height=args.size,
            fps=args.fps,
            record_more=not args.no_record,
        )
    except JourneyError as exc:
        print(f"no journey: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled: no journey was written", file=sys.stderr)
        return CANCELLED
    print(made.video.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
