"""The ``cleanup`` request: the runner deletes a run's old checkpoints and/or its clips.

The runner is the one process that deletes in a run folder, so the dashboard's bulk clean-up
(System page, "Storage") is one request per run, like every other control. The request says
only *what kind* of thing to delete (``{"checkpoints": true, "clips": false}``); the runner
makes the plan itself now (``runstore.cleanup.plan_cleanup``: best.zip, the latest complete
checkpoint and any checkpoint another run's ``init_from`` names always stay) and never reads
a list of paths from a request file. It refuses while a trainer or a clip job may be writing
to the run, and says why, or what it freed, in run.json's events.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from runstore.cleanup import OPTIONS, CleanupPlan, InitFromReferences, carry_out, plan_cleanup
from runstore.models import RunRecord
from runstore.store import Request, RunStore, printable
from runstore.units import format_bytes
from runstore.video_files import drop_missing_titles

log = logging.getLogger("runner")

#: One per runs folder, kept for the runner's life: each config.yaml is parsed once.
_REFERENCES: dict[Path, InitFromReferences] = {}


class CleanupRefused(ValueError):
    """Why a clean-up was not done, in words for run.json."""


def options(params: dict) -> dict[str, bool]:
    """The request's choices, checked: each of ``OPTIONS`` true or false, at least one true."""
    chosen = {name: params.get(name, False) for name in OPTIONS}
    if any(not isinstance(v, bool) for v in chosen.values()) or not any(chosen.values()):
        got = printable(repr({k: params.get(k) for k in OPTIONS})[:200])
        raise CleanupRefused(
            f"say what to delete: {' and/or '.join(OPTIONS)} (each true or false); got {got}"
        )
    return chosen


def _plan(store: RunStore, run_id: str, chosen: dict[str, bool]) -> CleanupPlan:
    """The plan for ``run_id`` now, by the rules the runner applies."""
    references = _REFERENCES.setdefault(store.root, InitFromReferences())
    referenced = references.of(store.root, store.run_ids()).get(run_id, frozenset())
    return plan_cleanup(store.paths(run_id).dir, referenced=referenced, **chosen)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``python -m runner cleanup RUN checkpoints clips [--dry-run]``."""
    p = sub.add_parser(
        "cleanup",
        parents=[common],
        help="delete a run's old checkpoints (best.zip and the latest complete one stay) "
        "and/or its clips (the runner does it; refused while the run trains)",
    )
    p.add_argument("run", help="run id, a unique prefix of it (4 characters or more), or its name")
    p.add_argument("what", nargs="+", choices=OPTIONS, help="what to delete")
    p.add_argument(
        "--dry-run", action="store_true", help="only print what it would delete and free"
    )


def preview(store: RunStore, run_id: str, chosen: dict[str, bool]) -> int:
    """Print what a clean-up would delete now (``--dry-run``); nothing is asked for."""
    plan = _plan(store, run_id, chosen)
    for item in plan.deletions:
        print(f"{format_bytes(item.size):>8}  {item.name}")
    print(f"would free {format_bytes(plan.frees)} ({plan.summary()})")
    for kept in plan.kept:
        print(f"keeps {kept}")
    return 0


def apply(
    store: RunStore,
    record: RunRecord,
    request: Request,
    *,
    trainer: bool = False,
    clip_job: bool = False,
) -> None:
    """Carry out a cleanup request on ``record`` (the caller writes run.json). ``trainer`` and
    ``clip_job``: the runner holds a process of that kind for the run right now."""
    note = f"cleanup requested ({request.source})"
    try:
        chosen = options(request.params)
        if record.state.is_live or trainer:
            raise CleanupRefused(
                f"the run is {record.state.value}: its trainer may be writing checkpoints; "
                "stop it first"
            )
        if clip_job or record.media_job is not None:
            raise CleanupRefused("a clip job is running for it; try again when it has ended")
    except CleanupRefused as exc:
        record.record("cleanup-refused", f"{note}: {exc}")
        log.info("%s: cleanup refused: %s", record.id, exc)
        return
    try:
        plan = _plan(store, record.id, chosen)
        freed, problems = carry_out(plan)
    except (OSError, ValueError) as exc:  # a folder that cannot be listed, a link planted
        record.record("cleanup-failed", f"{note}: {printable(str(exc))[:300]}")
        log.warning("%s: cleanup failed: %s", record.id, exc)
        return
    drop_missing_titles(record, store.paths(record.id).videos)  # deleted clips: no titles
    kept = f"; kept {', '.join(plan.kept)}" if plan.kept else ""
    detail = f"{note}: freed {format_bytes(freed)} ({plan.summary()}){kept}"
    if problems:
        detail += f"; not deleted: {'; '.join(problems)[:600]}"
    record.record("cleaned-up", detail)
    log.info("%s: cleanup freed %s (%s)", record.id, format_bytes(freed), plan.summary())
