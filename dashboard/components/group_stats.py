"""The Compare page's final scores by seed group: a table per group and two groups side by
side (analysis/group_stats.py computes; this draws)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from analysis.group_stats import EPISODE_WINDOW, Group, group_table, versus


def final_scores_section(groups: Sequence[Group], metric: str) -> None:
    """The table of every group, then A against B (the first two unless picked)."""
    st.dataframe(group_table(groups), hide_index=True, width="stretch", key="cmp_group_stats")
    st.caption(
        f"A run's final score: its last {metric!r} value (for every episode's return, the mean "
        f"of its last {EPISODE_WINDOW} episodes). Intervals: 95% stratified bootstrap over the "
        "group's runs, 2,000 resamples; IQM: the mean of the middle half of the runs."
    )
    labels = [g.label for g in groups]
    left, right = st.columns(2)
    a = left.selectbox("Group A", labels, index=0, key="cmp_vs_a")
    b = right.selectbox("Group B", labels, index=1, key="cmp_vs_b")
    if a == b:
        st.caption("Pick two different groups to compare them.")
        return
    found = versus(groups[labels.index(a)], groups[labels.index(b)])
    p, t = found.improvement, found.tests
    st.markdown(
        f"**P(A > B) = {p.point:.2f}** (95% CI {p.low:.2f} to {p.high:.2f}): the chance that a "
        "run of A ends above a run of B; 0.5 is no difference.  \n"
        f"Welch's t-test p = {t.welch_p:.3g}; Mann-Whitney U p = {t.mann_whitney_p:.3g}."
    )
    if t.warning:
        st.warning(t.warning)
