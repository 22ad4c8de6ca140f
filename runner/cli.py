"""``python -m runner``: the supervisor, and commands that talk to it through the store.

The commands write the same request files the dashboard writes; the supervisor acts on them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from runner.supervisor import AlreadyRunningError, Supervisor
from runstore.models import RunRecord, TrainStatus
from runstore.paths import UnsafePathError, default_runs_dir
from runstore.store import RunStore

STALE_HEARTBEAT_SECONDS = 30.0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="the runs folder (default: $RETRO_ML_RUNS_DIR, else ./runs)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m runner",
        parents=[common],
        description="Supervise training runs: with no command, run the supervisor.",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="runs training at once (default: settings.yaml in the runs folder, else 1)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=None,
        help="seconds a stop may take before a kill (default: settings.yaml, else 30)",
    )
    parser.add_argument(
        "--poll", type=float, default=0.5, help="seconds between process checks (files wake it)"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("ls", parents=[common], help="list runs")
    for action, text in (
        ("stop", "stop a run (it saves a checkpoint first)"),
        ("pause", "pause a run (its processes are suspended)"),
        (
            "resume",
            "continue a paused run, or restart a stopped/failed/lost one from its "
            "latest checkpoint",
        ),
    ):
        p = sub.add_parser(action, parents=[common], help=text)
        p.add_argument("run", help="run id, a unique prefix of it, or a run name")
    p = sub.add_parser(
        "record", parents=[common], help="record a clip of a checkpoint (the runner makes it)"
    )
    p.add_argument("run", help="run id, a unique prefix of it, or a run name")
    p.add_argument("--checkpoint", help="best, or a checkpoint name (default: best, else latest)")
    p.add_argument("--episodes", type=int, default=1, help="games to play (1-20)")
    p = sub.add_parser("timelapse", parents=[common], help="stitch a run's clips into one mp4")
    p.add_argument("run", help="run id, a unique prefix of it, or a run name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = RunStore(args.runs_dir or default_runs_dir())
    if args.command is None:
        return supervise(store, args.max_concurrent, args.stop_grace, args.poll)
    if args.command == "ls":
        print(format_table(store))
        return 0
    try:
        run_id = find_run(store, args.run)
        if args.command == "timelapse":
            return timelapse(store, run_id)
        params = None
        if args.command == "record":
            params = {"checkpoint": args.checkpoint, "episodes": args.episodes}
        store.write_request(run_id, args.command, source="cli", params=params)
    except (LookupError, UnsafePathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only runs folder, or something in the request's way
        print(f"error: could not write the request into {store.root}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.command} requested for {run_id}")
    if not store.runner_is_alive():
        print(
            f"note: no runner is supervising {store.root}; the request waits until one "
            "starts (python -m runner)",
            file=sys.stderr,
        )
    return 0


def timelapse(store: RunStore, run_id: str) -> int:
    """Stitch the clips here and now (no torch: only the clips are read)."""
    from training.timelapse import make_timelapse

    try:
        print(make_timelapse(store.paths(run_id).dir))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def supervise(
    store: RunStore, max_concurrent: int | None, stop_grace: float | None, poll: float = 0.5
) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if max_concurrent is not None and max_concurrent < 1:
        print("error: --max-concurrent must be at least 1", file=sys.stderr)
        return 2
    try:  # the lock file needs a writable runs folder: one line, not a traceback
        supervisor = Supervisor(
            store, max_concurrent=max_concurrent, stop_grace=stop_grace, poll=poll
        )
    except OSError as exc:
        print(f"error: cannot supervise {store.root}: {exc}", file=sys.stderr)
        return 1

    def _shutdown(signum: int, _frame: object) -> None:
        logging.getLogger("runner").info("%s received; shutting down", signal.strsignal(signum))
        supervisor.shutdown.set()
        supervisor.wake.set()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    try:
        supervisor.run_forever()
    except AlreadyRunningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # start-up: the lock, runner.json (the loop itself never raises)
        print(f"error: cannot supervise {store.root} (is it writable?): {exc}", file=sys.stderr)
        return 1
    return 0


def find_run(store: RunStore, query: str) -> str:
    ids = store.run_ids()
    if query in ids:
        return query
    matches = [i for i in ids if i.startswith(query)]
    if not matches:
        records = [store.read_run(i) for i in ids]
        matches = [r.id for r in records if r is not None and r.name == query]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(f"no run matches {query!r} in {store.root} (see python -m runner ls)")
    raise LookupError(f"{query!r} matches {len(matches)} runs; give more of the id")


def format_table(store: RunStore) -> str:
    rows = [("ID", "NAME", "STATE", "STEPS", "FPS", "RETURN", "NOTE")]
    for run_id in store.run_ids():
        record = store.read_run(run_id)
        if record is None:
            rows.append((run_id, "?", "unreadable", "", "", "", "run.json is missing or corrupt"))
            continue
        status = store.read_status(run_id)
        row = _row(record, status)
        if status is None and store.paths(run_id).status_json.exists():
            row = (*row[:-1], "status.json is corrupt; progress unknown")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if len(rows) == 1:
        lines.append(f"(no runs in {store.root})")
    return "\n".join(lines)


def _row(record: RunRecord, status: TrainStatus | None) -> tuple[str, ...]:
    steps = fps = ret = ""
    note = record.reason
    if status is not None:
        steps = f"{status.timesteps}/{status.total_timesteps}"
        fps = f"{status.fps:.0f}" if status.fps else ""
        ret = f"{status.last_episode_return:.1f}" if status.last_episode_return is not None else ""
        age = status.heartbeat_age(time.time())
        if record.state.value == "running" and age is not None and age > STALE_HEARTBEAT_SECONDS:
            note = f"no heartbeat for {age:.0f} s"
    return (record.id, record.name, record.state.value, steps, fps, ret, note[:60])
