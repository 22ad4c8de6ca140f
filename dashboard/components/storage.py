"""Disk use on the pages: a run's size by kind (Run page), and the System page's "Storage"
section: the runs folder's total, a sortable table of every run's size, and a bulk clean-up
that shows what it would free before anything is asked for.

The clean-up writes one ``cleanup`` request per chosen run (``actions.request``, which checks
the LAN rule itself); the runner makes its own plan when it acts, by the same rules as the
preview, and records what it freed in the run's timeline. Live runs are left out: the runner
would refuse them (their trainer may be writing checkpoints).
"""

from __future__ import annotations

import streamlit as st

from dashboard import actions, auth, data, fmt, storage_data
from runstore.cleanup import CleanupPlan
from runstore.disk import CATEGORIES, RunSize

#: The kinds as the pages name them.
LABELS = {
    "checkpoints": "checkpoints",
    "videos": "clips",
    "events": "events",
    "logs": "logs",
    "other": "other",
}
MB = 1024 * 1024


def size_line(size: RunSize) -> str:
    """``On disk: 12 MB (checkpoints 10 MB · clips 1 MB · ...)``."""
    parts = " · ".join(f"{LABELS[k]} {fmt.size(v)}" for k, v in size.by_category().items())
    return f"On disk: {fmt.size(size.total)} ({parts})"


def render_run_size(run_id: str) -> None:
    """One caption: the run's size by kind (measured at most every few seconds)."""
    st.caption(size_line(storage_data.size_of(run_id)))


@st.fragment
def render_storage() -> None:
    """The System page's Storage section; a fragment, so choosing runs or kinds reruns this
    section only, not the page (whose machine report may be due again)."""
    sizes = storage_data.folder_sizes()
    st.metric("Runs folder", fmt.size(sizes.total), help=f"{fmt.size(sizes.rest)} outside runs")
    if not sizes.rows:
        st.caption("No runs yet.")
        return
    st.dataframe(
        [
            {
                "run": r.name,
                "state": r.state.value if r.state else "damaged",
                "archived": r.archived,
                "total": r.size.total / MB,
                **{LABELS[k]: v / MB for k, v in r.size.by_category().items()},
                "id": r.id,
            }
            for r in sizes.rows
        ],
        hide_index=True,
        width="stretch",
        column_config={
            name: st.column_config.NumberColumn(name, format="%.1f MB")
            for name in ["total", *(LABELS[k] for k in CATEGORIES)]
        },
    )
    st.caption(
        f"Measured every {storage_data.SIZE_TTL_SECONDS} s at most; click a column to sort. "
        "Links are counted as links, never followed."
    )
    short = [r.name for r in sizes.rows if r.size.unreadable]
    if short:
        st.warning(
            "Some folders could not be listed (permissions), so these sizes are short: "
            + ", ".join(short[:10])
        )
    render_cleanup(sizes.rows)


def render_cleanup(rows: tuple[storage_data.SizeRow, ...]) -> None:
    """Choose runs and what to delete, see what it frees, then ask the runner."""
    st.markdown("**Clean up**")
    names = {r.id: f"{r.name} ({fmt.size(r.size.total)}, {r.id})" for r in rows}
    archived = [r.id for r in rows if r.archived]
    every_archived = st.checkbox(
        f"All archived runs ({len(archived)})",
        key="storage_archived",
        disabled=not archived,
        help="The runs archived on the Runs or Run page: kept on disk, hidden from the list.",
    )
    chosen = st.multiselect(
        "Runs",
        list(names),
        format_func=names.__getitem__,
        key="storage_runs",
        disabled=every_archived,
    )
    if every_archived:
        chosen = archived
    c1, c2 = st.columns(2)
    old = c1.checkbox(
        "Old checkpoints",
        key="storage_checkpoints",
        help="Keeps best.zip, the latest complete checkpoint (resume continues from it) and "
        "any checkpoint another run's init_from starts from.",
    )
    clips = c2.checkbox(
        "Clips",
        key="storage_clips",
        help="The videos and the time-lapse; each clip's score (its sidecar) stays.",
    )
    if not chosen or not (old or clips):
        st.caption("Choose runs and what to delete to see what it would free.")
        return
    state = {r.id: r.state for r in rows}
    live = [i for i in chosen if (s := state.get(i)) is None or s.is_live]
    if live:
        st.caption(
            "Left out (running, or run.json unreadable; stop them first): "
            + ", ".join(names[i] for i in live)
        )
    plans = storage_data.cleanup_plans(tuple(i for i in chosen if i not in live), old, clips)
    show_plans(plans)
    todo = [p for p in plans if p.deletions]
    if not todo:
        return
    if not auth.control_allowed():
        st.caption("Read-only here: cleaning up needs this machine or the password (sidebar).")
        return
    label = f"Clean up {len(todo)} run{'s' if len(todo) != 1 else ''}"
    if st.button(label, key="storage_cleanup", type="primary"):
        try:
            for plan in todo:
                actions.request(plan.run_id, "cleanup", {"checkpoints": old, "clips": clips})
        except (PermissionError, ValueError) as exc:
            st.error(str(exc))
        else:
            storage_data.clear()
            st.success(
                f"Clean-up asked for {len(todo)} run(s): the runner deletes within a second "
                "and writes what it freed in each run's timeline."
            )
            if not data.runner_alive():
                st.warning("No runner is alive: the requests wait until one starts.")


def show_plans(plans: list[CleanupPlan]) -> None:
    """The preview: what would go, run by run, and what stays on purpose."""
    frees = sum(p.frees for p in plans)
    st.info(f"This would free **{fmt.size(frees)}** from {len(plans)} run(s).")
    st.dataframe(
        [
            {"run": p.run_id, "deletes": d.name, "kind": d.kind, "size": d.size / MB}
            for p in plans
            for d in p.deletions
        ],
        hide_index=True,
        width="stretch",
        column_config={"size": st.column_config.NumberColumn("size", format="%.2f MB")},
    )
    with st.expander("What stays"):
        for plan in plans:
            st.text(f"{plan.run_id}: {'; '.join(plan.kept) or 'nothing of note'}")
