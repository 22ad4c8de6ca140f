"""The runner's side of ``video`` requests: delete a run's video or set its title, checked
again (the request file may come from anyone), with what was done in run.json's events; and
the CLI commands that write them (``video-delete``, ``video-rename``).

The rules live in ``runstore.video_files``; this module only turns a request into files
removed or a title stored, and a command line into a request.
"""

from __future__ import annotations

import argparse
import logging

from runstore.models import RunRecord
from runstore.store import Request, RunStore, printable
from runstore.units import format_bytes
from runstore.video_files import (
    MAX_TITLE_LENGTH,
    VideoChange,
    VideoRequestError,
    check_title,
    check_video_name,
    delete_video,
    is_video_file,
    parse_video_change,
    set_title,
    write_video_request,
)

log = logging.getLogger("runner")


def apply(store: RunStore, record: RunRecord, request: Request, *, media_job: bool = False) -> bool:
    """Carry out a ``video`` request on the run (the caller writes run.json); whether the
    runner's copy of run.json changed. ``media_job``: the runner holds a media job for the
    run right now (a deletion is refused then, as it is while run.json records one: the job
    may be reading the clips or writing the video)."""
    source = printable(request.source)
    try:
        change = parse_video_change(request.params)
        if change.op == "rename":
            return _rename(store, record, change, source)
        if media_job or record.media_job is not None:
            what = record.media_job.action if record.media_job else "media"
            raise VideoRequestError(
                f"a {what} job is running for the run and may be using videos/{change.name}; "
                "try again when it has ended"
            )
        deleted = delete_video(store.paths(record.id).videos, change.name)
    except (VideoRequestError, OSError) as exc:
        _refused(record, request, str(exc))
        return True
    set_title(record, change.name, "")
    detail = f"{change.name}: freed {format_bytes(deleted.freed)}"
    if len(deleted.removed) > 1:
        detail += f", with {', '.join(deleted.removed[1:])}"
    if deleted.problems:
        detail += f"; {'; '.join(deleted.problems)[:400]}"
    record.record("video-deleted", f"{printable(detail)} (by {source})")
    log.info("%s: deleted videos/%s (%s)", record.id, change.name, format_bytes(deleted.freed))
    return True


def _rename(store: RunStore, record: RunRecord, change: VideoChange, source: str) -> bool:
    """Store (or remove) the title; a title for a video that is not there is refused."""
    if change.title and not is_video_file(store.paths(record.id).videos, change.name):
        raise VideoRequestError(f"there is no videos/{change.name} to give a title to")
    if not set_title(record, change.name, change.title):
        return False  # already so: a request applied twice
    what = f"titled {change.title!r}" if change.title else "title removed"
    record.record("video-renamed", f"{change.name}: {printable(what)} (by {source})")
    log.info("%s: %s %s", record.id, change.name, printable(what))
    return True


def _refused(record: RunRecord, request: Request, why: str) -> None:
    """A ``video-refused`` event; a flood of the same bad request is one event, counted."""
    detail = f"video requested ({printable(request.source)}): {printable(why)[:400]}"
    last = record.events[-1] if record.events else None
    if last is not None and (last.kind, last.detail) == ("video-refused", detail):
        last.count += 1
        return
    record.record("video-refused", detail)
    log.warning("%s: video request refused: %s", record.id, printable(why))


# -- python -m runner video-delete | video-rename ---------------------------------------------

COMMANDS = {
    "video-delete": "delete a run's clip, time-lapse or journey video (the runner does it; "
    "refused while a media job runs for the run)",
    "video-rename": 'give a run\'s video a title for pages and downloads ("" removes it); '
    "the file keeps its name",
}
RUN_HELP = "run id, a unique prefix of it (4 characters or more), or its name"


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The subcommands of COMMANDS, on the CLI's parser (``runner.cli.build_parser``)."""
    for command, text in COMMANDS.items():
        p = sub.add_parser(command, parents=[common], help=text)
        p.add_argument("run", help=RUN_HELP)
        p.add_argument(
            "file", help="the video's file name, e.g. step-000500000.mp4 or journey-60s.mp4"
        )
        if command == "video-rename":
            p.add_argument("title", help=f"the title (quote it); at most {MAX_TITLE_LENGTH}")


def change_from_args(args: argparse.Namespace) -> VideoChange:
    """The change a command asks for, checked (VideoRequestError says what is wrong)."""
    name = check_video_name(args.file)
    if args.command == "video-delete":
        return VideoChange("delete", name)
    return VideoChange("rename", name, check_title(args.title))


def request_from_args(store: RunStore, run_id: str, args: argparse.Namespace) -> str:
    """Write the request a command asks for; what was requested, in words."""
    change = change_from_args(args)
    write_video_request(store, run_id, change, source="cli")
    if change.op == "delete":
        return f"delete of {change.name}"
    title = f"title {change.title!r}" if change.title else "no title"
    return printable(f"{title} for {change.name}")
