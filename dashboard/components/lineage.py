"""A run's lineage on the Run page: the runs whose weights it started from (``init_from``,
followed back), and the runs started from its own (issue 17)."""

from __future__ import annotations

import re

import streamlit as st

from dashboard import data
from runstore.lineage import ancestors


def _parent_of(run_id: str) -> str | None:
    config = data.read_config(run_id) if data.read_run(run_id) is not None else None
    return config.init_from.split("/")[0] if config and config.init_from else None


def _link(run_id: str) -> None:
    """A link to the run's page, labelled by its name (stripped to plain characters: run.json
    of an imported folder may say anything) and id; plain text when the run is not here."""
    record = data.read_run(run_id)
    if record is None:
        st.caption(f"{run_id} (not in this runs folder)")
        return
    name = re.sub(r"[^\w .-]", "", record.name)[:64]
    st.page_link("app_pages/run.py", label=f"{name} ({run_id})", query_params={"run": run_id})


def render_lineage(run_id: str) -> None:
    """Where the run's weights came from (its config, then each parent's: a few reads), and,
    when asked, which runs went on from it: finding those lists every run (the run index), so
    it is not done for every view of the page."""
    config = data.read_config(run_id)
    started_from = config.init_from if config else None
    if started_from:
        st.markdown(f"Started from the weights of `{started_from}`. Its lineage, oldest first:")
        for ancestor in reversed(ancestors(run_id, _parent_of)):
            _link(ancestor)
    else:
        st.caption("Started from fresh weights.")
    if st.checkbox("Find the runs started from this one's weights", key="lineage_children"):
        children = data.children_of(run_id)
        if not children:
            st.caption("None: no run's init_from names this one.")
        for child in children:
            _link(child.id)
