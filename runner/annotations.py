"""The runner's side of ``annotate`` requests: tags, a note and the archived flag of a run,
checked again (the request file may come from anyone) and stored in run.json, in any state;
and the CLI commands that write them (``tag``, ``untag``, ``note``, ``archive``,
``unarchive``).

The rules live in ``runstore.annotations``; this module only turns a request into run.json's
change and its events, and a command line into a request.
"""

from __future__ import annotations

import argparse
import logging

from runstore.annotations import (
    MAX_NOTE_LENGTH,
    AnnotationError,
    Change,
    apply_change,
    check_note,
    parse_change,
    parse_tags,
    write_annotate_request,
)
from runstore.models import RunRecord
from runstore.store import Request, RunStore, printable

log = logging.getLogger("runner")


def annotate(record: RunRecord, request: Request) -> bool:
    """Apply the request to the runner's copy of run.json; whether the copy changed (so it
    must be written). A bad request changes nothing but an ``annotate-refused`` event saying
    why; one that asks for what the run already is (applied twice) changes nothing at all."""
    source = printable(request.source)
    try:
        done = apply_change(record, parse_change(request.params), source)
    except AnnotationError as exc:
        detail = f"annotate requested ({source}): {exc}"
        last = record.events[-1] if record.events else None
        if last is not None and (last.kind, last.detail) == ("annotate-refused", detail):
            last.count += 1  # a flood of the same bad request is one event, counted
        else:
            record.record("annotate-refused", detail)
            log.warning("%s: annotate refused: %s", record.id, printable(str(exc)))
        return True
    for kind, detail in done:
        log.info("%s: %s %s", record.id, kind, detail)
    return bool(done)


# -- python -m runner tag | untag | note | archive | unarchive --------------------------------

#: The CLI's commands that write an ``annotate`` request, with their help.
COMMANDS = {
    "tag": "add tags to a run (separate them by spaces or commas)",
    "untag": "remove tags from a run",
    "note": 'set a run\'s free-text note ("" clears it)',
    "archive": "hide a run from the Runs page's default view (it stays on disk)",
    "unarchive": "show an archived run in the Runs page's default view again",
}
RUN_HELP = "run id, a unique prefix of it (4 characters or more), or its name"


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The subcommands of COMMANDS, on the CLI's parser (``runner.cli.build_parser``)."""
    for command, text in COMMANDS.items():
        p = sub.add_parser(command, parents=[common], help=text)
        p.add_argument("run", help=RUN_HELP)
        if command in ("tag", "untag"):
            p.add_argument("tags", nargs="+", metavar="TAG", help="a tag (or several, by commas)")
        elif command == "note":
            p.add_argument(
                "text", help=f"the note (quote it); at most {MAX_NOTE_LENGTH:,} characters"
            )


def change_from_args(args: argparse.Namespace) -> Change:
    """The change a command asks for, checked (AnnotationError says what is wrong)."""
    if args.command in ("tag", "untag"):
        tags = parse_tags(",".join(args.tags))
        if not tags:
            raise AnnotationError("no tag given: name at least one, e.g. `tag RUN baseline`")
        return Change(add_tags=tags) if args.command == "tag" else Change(remove_tags=tags)
    if args.command == "note":
        return Change(note=check_note(args.text))
    return Change(archived=args.command == "archive")


def describe(change: Change) -> str:
    """What a change asks for, as the CLI prints it ("tags +a +b", "note (12 characters)")."""
    parts = [f"+{t}" for t in change.add_tags] + [f"-{t}" for t in change.remove_tags]
    words = [f"tags {' '.join(parts)}"] if parts else []
    if change.tags is not None:
        words.append(f"tags {', '.join(change.tags) or '(none)'}")
    if change.note is not None:
        words.append(f"note ({len(change.note):,} characters)" if change.note else "no note")
    if change.archived is not None:
        words.append("archive" if change.archived else "unarchive")
    return printable("; ".join(words))


def request_from_args(store: RunStore, run_id: str, args: argparse.Namespace) -> str:
    """Write the request a command asks for; what was requested, in words."""
    change = change_from_args(args)
    write_annotate_request(store, run_id, change, source="cli")
    return describe(change)
