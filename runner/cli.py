"""``python -m runner``: the supervisor, and commands that talk to it through the store.

The commands write the same request files the dashboard writes; the supervisor acts on them.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import socket
import sys
import time
from pathlib import Path

from runner import annotations, cleanup, media, process, video_files
from runner.supervisor import AlreadyRunningError, Supervisor
from runstore import sweeps
from runstore.annotations import AnnotationError
from runstore.models import RunRecord, TrainStatus
from runstore.paths import UnsafePathError, default_runs_dir
from runstore.settings import check_ray_address
from runstore.store import MAX_RECORD_EPISODES, RunStore, printable
from runstore.videos import JOURNEY_FPS, JOURNEY_SIZES, parse_journey_length

STALE_HEARTBEAT_SECONDS = 30.0


#: Flags that mean something only to the supervisor (no command); given with a command they
#: are refused rather than silently ignored.
SUPERVISOR_FLAGS = {"max_concurrent": "--max-concurrent", "stop_grace": "--stop-grace",
                    "poll": "--poll", "ray_address": "--ray-address"}  # fmt: skip
DEFAULT_POLL = 0.5


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The global flags, on the main parser and again on every subcommand, so each works
    before or after the command. The subcommands' copies default to SUPPRESS: a default there
    would overwrite the value given before the command (``--runs-dir X ls`` listed ./runs)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=default(None),
        help="the runs folder (default: $RETRO_ML_RUNS_DIR, else ./runs)",
    )
    for flag, kind, text in (
        (
            "--max-concurrent",
            int,
            "supervisor: runs training at once (default: settings.yaml in the runs folder, else 1)",
        ),
        (
            "--stop-grace",
            float,
            "supervisor: seconds a stop may take before a kill (default: settings.yaml, else 30)",
        ),
        (
            "--poll",
            float,
            f"supervisor: seconds between process checks (default {DEFAULT_POLL}; files wake it)",
        ),
        (
            "--ray-address",
            str,
            "supervisor: place runs on this Ray cluster (HOST:PORT of its head, or auto; "
            "default: ray_address in settings.yaml, else train on this machine)",
        ),
    ):
        parser.add_argument(flag, type=kind, default=default(None), help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runner",
        description="Supervise training runs: with no command, run the supervisor.",
    )
    _global_flags(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, suppress=True)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("ls", parents=[common], help="list runs")
    sub.add_parser("sweeps", parents=[common], help="list sweeps (runs/sweeps/)")
    p = sub.add_parser(
        "promote",
        parents=[common],
        help="queue a sweep's best trial as an ordinary run (the runner does it)",
    )
    p.add_argument("sweep", help="sweep id, a unique prefix of it, or its name")
    p.add_argument("--steps", type=int, help="n_timesteps of the new run (default: the trial's)")
    for action, text in (
        ("stop", "stop a run (it saves a checkpoint first)"),
        ("pause", "pause a run (its processes are suspended)"),
        (
            "resume",
            "continue a paused run, or restart a stopped/failed/lost one from its "
            "latest checkpoint",
        ),
    ):
        p = sub.add_parser(
            action, parents=[common], help=f"{text}; or the same for every run of a sweep"
        )
        p.add_argument(
            "run",
            help="run (or sweep) id, a unique prefix of it (4 characters or more), or its name",
        )
    p = sub.add_parser(
        "record", parents=[common], help="record a clip of a checkpoint (the runner makes it)"
    )
    p.add_argument("run", help="run id, a unique prefix of it (4 characters or more), or its name")
    p.add_argument("--checkpoint", help="best, or a checkpoint name (default: best, else latest)")
    p.add_argument(
        "--episodes", type=int, default=1, help=f"games to play (1-{MAX_RECORD_EPISODES})"
    )
    p = sub.add_parser(
        "journey",
        parents=[common],
        help="make an 'AI learns to play' video of a run with chapters (the runner makes it)",
    )
    p.add_argument("run", help="run id, a unique prefix of it (4 characters or more), or its name")
    p.add_argument("--length", default="10m", help="60s, 10m, 1h30m (10 s to 6 h; default 10m)")
    p.add_argument("--size", type=int, default=1080, choices=sorted(JOURNEY_SIZES))
    p.add_argument("--fps", type=int, default=30, choices=JOURNEY_FPS)
    p.add_argument(
        "--no-record",
        action="store_true",
        help="use only the clips on disk (never record more from checkpoints)",
    )
    p = sub.add_parser("timelapse", parents=[common], help="stitch a run's clips into one mp4")
    p.add_argument("run", help="run id, a unique prefix of it (4 characters or more), or its name")
    p = sub.add_parser(
        "trust",
        parents=[common],
        help="trust a run copied in from elsewhere: sign its checkpoints with this runs "
        "folder's key so it can be resumed and recorded (they are pickles: only if you know "
        "where it came from)",
    )
    p.add_argument("run", help="run id, a unique prefix of it (4 characters or more), or its name")
    p = sub.add_parser(
        "report",
        parents=[common],
        help="write a self-contained HTML report (and --pdf) of a run, a comparison of runs, "
        "or a sweep",
    )
    p.add_argument(
        "runs",
        nargs="+",
        help="run ids, unique prefixes (4 characters or more) or names; or one sweep's",
    )
    p.add_argument(
        "--group-seeds",
        action="store_true",
        help="compare seed groups (runs whose configs differ only by seed), not single runs",
    )
    p.add_argument("--pdf", action="store_true", help="also print it to PDF (needs Chromium)")
    p.add_argument("--out", type=Path, help="the .html file to write (default: runs/reports/)")
    p.add_argument(
        "--threshold",
        type=float,
        action="append",
        help="a return to time (steps and wall time to reach it); repeat for more "
        "(default: 50%%, 90%% and 100%% of the best evaluation)",
    )
    annotations.add_commands(sub, common)
    cleanup.add_parser(sub, common)
    video_files.add_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is not None:
        given = [flag for name, flag in SUPERVISOR_FLAGS.items() if getattr(args, name) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            parser.error(f"{', '.join(given)} {verb} only to the supervisor (no command)")
    store = RunStore(args.runs_dir or default_runs_dir())
    if args.command is None:
        poll = DEFAULT_POLL if args.poll is None else args.poll
        return supervise(store, args.max_concurrent, args.stop_grace, poll, args.ray_address)
    if args.command == "ls":
        print(format_table(store))
        return 0
    if args.command == "sweeps":
        print(sweeps_table(store))
        return 0
    if args.command in ("stop", "pause", "resume", "promote"):
        sweep_id = _sweep_named(store, args.sweep if args.command == "promote" else args.run)
        if sweep_id is not None or args.command == "promote":
            return _sweep_request(store, args, sweep_id)
    if args.command == "report":
        return report(store, args)
    try:
        run_id = find_run(store, args.run)
        if args.command in annotations.COMMANDS:  # tag, untag, note, archive, unarchive
            print(f"{annotations.request_from_args(store, run_id, args)} requested for {run_id}")
            return _note_if_no_runner(store)
        if args.command in video_files.COMMANDS:  # video-delete, video-rename
            print(f"{video_files.request_from_args(store, run_id, args)} requested for {run_id}")
            return _note_if_no_runner(store)
        if args.command == "timelapse":
            return timelapse(store, run_id)
        params, source = None, "cli"
        if args.command == "cleanup":
            params = {name: name in args.what for name in cleanup.OPTIONS}
            if args.dry_run:
                return cleanup.preview(store, run_id, params)
        if args.command == "record":
            params = {"checkpoint": args.checkpoint, "episodes": args.episodes}
        if args.command == "journey":
            params = {"seconds": parse_journey_length(args.length), "size": args.size}
            params |= {"fps": args.fps, "record": not args.no_record}
        if args.command == "trust":  # run.json logs who trusted the run, and from where
            source = f"cli {getpass.getuser()}@{socket.gethostname()}"[:40]
        store.write_request(run_id, args.command, source=source, params=params)
    except (LookupError, UnsafePathError, AnnotationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only runs folder, or something in the request's way
        print(f"error: could not write the request into {store.root}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.command} requested for {run_id}")
    if args.command == "trust":
        print(
            "the runner signs its checkpoints with this runs folder's key (refused while it "
            "runs), and notes it in run.json"
        )
    return _note_if_no_runner(store)


def _note_if_no_runner(store: RunStore) -> int:
    """Say on stderr that a request waits when no runner holds the folder; exit status 0."""
    if not store.runner_is_alive():
        print(
            f"note: no runner is supervising {store.root}; the request waits until one "
            "starts (python -m runner)",
            file=sys.stderr,
        )
    return 0


def report(store: RunStore, args: argparse.Namespace) -> int:
    """Make a report in the foreground and print where it is (``reports.build``)."""
    # here: the supervisor never needs Altair, Jinja or Optuna
    from reports.build import make_report, make_sweep_report
    from reports.facts import ReportError
    from reports.pdf import PdfError

    try:
        sweep_id = _sweep_named(store, args.runs[0]) if len(args.runs) == 1 else None
        if sweep_id is not None:
            made = make_sweep_report(store, sweep_id, pdf=args.pdf, out=args.out)
        else:
            made = make_report(
                store,
                [find_run(store, query) for query in args.runs],
                group_seeds=args.group_seeds,
                pdf=args.pdf,
                out=args.out,
                thresholds=args.threshold,
            )
    except (LookupError, UnsafePathError, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PdfError as exc:
        print(f"error: no PDF: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: could not write the report: {exc}", file=sys.stderr)
        return 1
    print(made.html)
    if made.pdf is not None:
        print(made.pdf)
    return 0


def _sweep_named(store: RunStore, query: str) -> str | None:
    """The sweep ``query`` names when it names no run (a run wins: run commands came first)."""
    try:
        find_run(store, query)
        return None
    except LookupError:
        pass
    try:
        return find_sweep(store.root, query)
    except LookupError:
        return None


def _sweep_request(store: RunStore, args: argparse.Namespace, sweep_id: str | None) -> int:
    if sweep_id is None:
        print(
            f"error: no sweep matches {args.sweep!r} (see python -m runner sweeps)", file=sys.stderr
        )
        return 2
    params = {"n_timesteps": args.steps} if args.command == "promote" and args.steps else None
    try:
        paths = sweeps.sweep_paths(store.root, sweep_id)
        sweeps.write_sweep_request(paths, args.command, source="cli", params=params)
    except OSError as exc:
        print(f"error: could not write the request into {store.root}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.command} requested for sweep {sweep_id}")
    return 0


def find_sweep(root: Path, query: str) -> str:
    """The one sweep ``query`` names: its id, a prefix of it (4+ characters) or its name."""
    ids = sweeps.sweep_ids(root)
    if query in ids:
        return query
    states = {i: sweeps.read_sweep_state(sweeps.sweep_paths(root, i)) for i in ids}
    matches = sorted(
        i
        for i in ids
        if (len(query) >= MIN_PREFIX and i.startswith(query))
        or (states[i] is not None and states[i].name == query)  # type: ignore[union-attr]
    )
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} sweeps match {query!r}")
    return matches[0]


def sweeps_table(store: RunStore) -> str:
    """The ``sweeps`` table: one row per sweep, from its sweep.json."""
    head = ("ID", "NAME", "STATE", "TRIALS", "DONE", "PRUNED", "FAILED", "BEST", "METRIC", "NOTE")
    rows = [head]
    for sweep_id in sweeps.sweep_ids(store.root):
        state = sweeps.read_sweep_state(sweeps.sweep_paths(store.root, sweep_id))
        if state is None:
            rows.append((sweep_id, "?", "unreadable", *[""] * 6, "sweep.json is damaged"))
            continue
        planned = "" if state.n_trials is None else f"/{state.n_trials}"
        best = "" if state.best_value is None else f"{state.best_value:.4g} (t{state.best_trial})"
        rows.append(
            (
                state.id,
                state.name,
                state.state,
                f"{state.asked}{planned}",
                str(state.complete),
                str(state.pruned),
                str(state.failed),
                best,
                state.metric,
                state.reason[:80],
            )
        )
    return _aligned(rows, f"(no sweeps in {store.root / sweeps.SWEEPS_DIR})")


def timelapse(store: RunStore, run_id: str) -> int:
    """Stitch the clips here and now, in a process of its own (``python -m
    training.timelapse RUN_DIR``, as a time-lapse request runs it: ``runner.media``), so the
    runner never imports it (cv2, imageio). It prints the file, or ``error: ...`` and exits 2
    when the run has no clips yet."""
    action = "timelapse"
    run_dir = store.paths(run_id).dir
    return process.run_module(media.ACTIONS[action], [str(run_dir), *media.job_args(action, {})])


def supervise(
    store: RunStore,
    max_concurrent: int | None,
    stop_grace: float | None,
    poll: float = 0.5,
    ray_address: str | None = None,
) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if max_concurrent is not None and max_concurrent < 1:
        print("error: --max-concurrent must be at least 1", file=sys.stderr)
        return 2
    if ray_address is not None:
        try:
            ray_address = check_ray_address(ray_address)
        except ValueError as exc:
            print(f"error: --ray-address: {exc}", file=sys.stderr)
            return 2
    try:  # the lock file needs a writable runs folder: one line, not a traceback
        supervisor = Supervisor(
            store,
            max_concurrent=max_concurrent,
            stop_grace=stop_grace,
            poll=poll,
            ray_address=ray_address,
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


#: The shortest id prefix a command accepts. Ids begin with the date, so a few characters
#: match a day's runs; an empty argument (an unset shell variable) or "2" must never pick
#: the only run there is.
MIN_PREFIX = 4


def find_run(store: RunStore, query: str) -> str:
    """The one run ``query`` names: its exact id, a prefix of the id of at least
    ``MIN_PREFIX`` characters, or its exact name. Anything shorter, or matching several runs,
    is refused with the candidates listed, because a command acts on what it matched."""
    ids = store.run_ids()
    if query in ids:
        return query
    query = query.strip()
    by_prefix = [i for i in ids if i.startswith(query)] if len(query) >= MIN_PREFIX else []
    by_name = []
    if query:
        records = [store.read_run(i) for i in ids]
        by_name = [r.id for r in records if r is not None and r.name == query]
    matches = sorted(set(by_prefix) | set(by_name))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise LookupError(
            f"{query!r} matches {len(matches)} runs; give the whole id:\n{_listing(matches)}"
        )
    if len(query) < MIN_PREFIX:
        close = [i for i in ids if query and i.startswith(query)] or ids
        raise LookupError(
            f"{query!r} is too short to name a run: give its id, at least {MIN_PREFIX} "
            f"characters of it, or its name"
            + (f"; runs in {store.root}:\n{_listing(close)}" if close else "")
        )
    raise LookupError(f"no run matches {query!r} in {store.root} (see python -m runner ls)")


def _listing(ids: list[str], most: int = 20) -> str:
    lines = [f"  {i}" for i in ids[:most]]
    if len(ids) > most:
        lines.append(f"  ... and {len(ids) - most} more (python -m runner ls)")
    return "\n".join(lines)


def format_table(store: RunStore) -> str:
    """The ``ls`` table. A run whose run.json or status.json is damaged (not JSON, nested too
    deep, a number out of range: ``runstore.safeio.parse_json``) is a row that says so; even
    an error nobody foresaw is that run's row, never the end of the listing. Every cell is
    escaped (``printable``): names and reasons come from files a terminal must not obey."""
    rows = [("ID", "NAME", "STATE", "STEPS", "FPS", "RETURN", "NOTE")]
    for run_id in store.run_ids():
        try:
            rows.append(_run_row(store, run_id))
        except Exception as exc:  # one run's problem, not the listing's
            note = f"cannot be read: {type(exc).__name__}: {exc}"[:60]
            rows.append((run_id, "?", "unreadable", "", "", "", note))
    return _aligned(rows, f"(no runs in {store.root})")


def _aligned(rows: list[tuple[str, ...]], empty: str) -> str:
    """Rows as aligned columns, every cell escaped (``printable``): names and reasons come
    from files a terminal must not obey; ``empty`` under the header when there are no rows."""
    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if len(rows) == 1:
        lines.append(empty)
    return "\n".join(lines)


def _run_row(store: RunStore, run_id: str) -> tuple[str, ...]:
    record = store.read_run(run_id)
    if record is None:
        return (run_id, "?", "unreadable", "", "", "", "run.json is missing or corrupt")
    status = store.read_status(run_id)
    row = _row(record, status)
    if status is None and store.paths(run_id).status_json.exists():
        row = (*row[:-1], "status.json is corrupt; progress unknown")
    return row


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
