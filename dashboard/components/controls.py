"""Per-run buttons shared by the Runs and Run pages: each one calls an action (which checks
the LAN rule itself) and says what it asked for; the runner decides and acts."""

from __future__ import annotations

import streamlit as st

from dashboard import actions, auth, data, fmt
from dashboard.presets import CLONE_CHOICE
from runstore.models import RESUMABLE_STATES, RunState

NEW_RUN_PAGE = "app_pages/new_run.py"
RUN_PAGE = "app_pages/run.py"


def run_controls(row: data.RunRow, page: str) -> None:
    """The buttons for one run, enabled by its state (the runner checks again)."""
    state = row.state
    if page != "run":
        st.markdown(f"**{row.name}** {fmt.state_badge(state, row.pruned_at)}  \n`{row.id}`")
        if row.reason:
            st.caption(row.reason)
    if row.problem:
        st.warning(row.problem)
    c = st.columns([1, 1, 1, 1.6, 1, 1.2])
    if page != "run":
        c[0].page_link(
            RUN_PAGE, label="Open", icon=":material/monitoring:", query_params={"run": row.id}
        )
    if not auth.control_allowed():
        st.caption("Read-only here: controls need this machine or the password (sidebar).")
        return
    # What the runner acts on (runner/supervisor.py ``apply``): stop a live run not already
    # stopping, or a queued one; pause a run that advances.
    stoppable = (state.is_live and state != RunState.STOPPING) or state == RunState.QUEUED
    act = None
    if c[1].button("Stop", key=f"{page}_stop_{row.id}", disabled=not stoppable):
        act = ("stop", actions.stop)
    if state == RunState.PAUSED:
        if c[2].button("Resume", key=f"{page}_resume_{row.id}"):
            act = ("resume", actions.resume)
    elif c[2].button(
        "Pause",
        key=f"{page}_pause_{row.id}",
        disabled=state not in data.ADVANCING_STATES,
    ):
        act = ("pause", actions.pause)
    if c[3].button(
        "Resume from checkpoint",
        key=f"{page}_resume_ckpt_{row.id}",
        disabled=state not in RESUMABLE_STATES,
        help="Queue the run again; it continues from its latest complete checkpoint.",
    ):
        act = ("resume", actions.resume)
    if c[4].button("Clone", key=f"{page}_clone_{row.id}", help="Open New run with this config"):
        try:
            st.session_state["new_run_yaml"] = actions.clone_yaml(row.id)
            st.session_state["new_run_preset"] = CLONE_CHOICE
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.switch_page(NEW_RUN_PAGE)
    confirm = c[5].checkbox("Confirm delete", key=f"{page}_confirm_delete_{row.id}")
    if c[5].button("Delete", key=f"{page}_delete_{row.id}", disabled=not confirm, type="primary"):
        act = ("delete", actions.delete)
    if act is not None:
        name, fn = act
        try:
            fn(row.id)
        except (PermissionError, ValueError) as exc:
            st.error(str(exc))
        else:
            st.toast(f"{name} requested for {row.name}; the runner acts within a second")
    if state.is_live and not data.runner_alive():
        st.warning("No runner is alive: requests wait until one starts.")
