"""The Report button of the Run, Compare and Sweeps pages: a request the runner carries out
(``runner/reports.py``), so the dashboard stays read-only for viewers and never builds a
report in its own process."""

from __future__ import annotations

import streamlit as st

from dashboard import actions, auth


def report_button(
    run_ids: list[str], key: str, group_seeds: bool = False, sweep: str | None = None
) -> None:
    """The "Make a report" button (with a PDF on request) of these runs or of a sweep, for
    a user who may act. No link to the Reports page: it is in the navigation, and a link
    would tie every page showing the button to the app's page list (a page run alone has
    none)."""
    left, mid, right = st.columns([1.2, 1, 2])
    right.caption("Reports are listed on the Reports page.")
    if not auth.control_allowed():
        mid.caption("Reports are asked for from this machine or with the password.")
        return
    pdf = mid.checkbox("with PDF", key=f"{key}_pdf")
    if sweep is not None:
        what = "a report of this sweep"
    else:
        what = "a report" if len(run_ids) == 1 else f"a report of these {len(run_ids)} runs"
    if left.button(f"Make {what}", key=key, disabled=not (run_ids or sweep)):
        try:
            actions.report(run_ids, group_seeds=group_seeds, pdf=pdf, sweep=sweep)
        except (ValueError, OSError) as exc:
            st.error(f"Could not ask for the report: {exc}")
        else:
            st.toast("Asked the runner for the report: it appears on the Reports page.")
