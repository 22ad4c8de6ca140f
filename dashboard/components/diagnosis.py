"""Why a run stopped, in plain words: the reason, then the diagnosis (what it means, what to
do, the line of the log that says so)."""

from __future__ import annotations

import streamlit as st

from runstore.models import Diagnosis


def render_diagnosis(diagnosis: Diagnosis | None, reason: str) -> None:
    """A failure in plain words: what happened, what it means, what to do."""
    st.error(f"**Why it stopped:** {reason or 'no reason was recorded'}")
    if diagnosis is None:
        return
    st.markdown(f"**{diagnosis.title}**")
    if diagnosis.meaning:
        st.write(diagnosis.meaning)
    for step in diagnosis.steps:
        st.markdown(f"- {step}")
    if diagnosis.evidence:
        st.caption("Evidence from the log:")
        st.code(diagnosis.evidence, language=None)
