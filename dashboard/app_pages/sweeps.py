"""Sweeps: each sweep's state and trials, its study drawn live (history, params against the
objective, importances), the best trial with Promote, and the New sweep form.

The page only reads (dashboard/sweep_data.py, cached by file stamps) and writes requests or
queue files through dashboard/actions.py; the runner owns the study and acts on both.
"""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl
import streamlit as st
import yaml

from analysis import sweep_charts as charts
from analysis.sweep_study import StudyView, best_so_far
from dashboard import actions, auth, fmt, sweep_data
from dashboard.components import controls
from dashboard.components.report_button import report_button
from dashboard.presets import CLONE_CHOICE, PRESETS
from runstore import sweeps
from runstore.config import ConfigError
from runstore.sweep_config import SWEEP_KEY, SweepBlock, check_sweep, searchable_keys
from runstore.yamlsafe import ConfigSyntaxError, load_yaml_mapping

REFRESH_SECONDS = 3.0
SPACE_KEY = "sweep_form_space"  # session state: the space being edited, key -> entry

st.title("Sweeps")


def progress_line(state: sweep_data.SweepState) -> str:
    total = state.n_trials if state.n_trials is not None else "?"
    return (
        f"**{state.state}** · {state.asked}/{total} trials asked · {state.running} running · "
        f"{state.complete} complete · {state.pruned} pruned · {state.failed} failed · "
        f"metric `{state.metric}` ({state.direction})"
    )


def trials_table(view: StudyView, state: sweep_data.SweepState) -> pl.DataFrame:
    """The study's trials with the runs of each (from sweep.json) and their seed spread."""
    spread = sweep_data.seed_spread(state, state.metric)
    runs = {int(n): ids for n, ids in state.trial_runs.items()}
    frame = view.trials.with_columns(
        pl.col("number")
        .map_elements(lambda n: _spread_text(spread.get(n)), return_dtype=pl.Utf8)
        .alias("seed spread"),
        pl.col("number")
        .map_elements(
            lambda n: f"run?run={runs[n][0]}" if runs.get(n) else None, return_dtype=pl.Utf8
        )
        .alias("run"),
    )
    return frame


def _spread_text(found: tuple[float, float] | None) -> str:
    return "" if found is None else f"{found[0]:.3g} … {found[1]:.3g}"


def sweep_controls(summary: sweep_data.SweepSummary) -> None:
    """Stop/Pause/Resume the whole sweep, and Promote its best trial: only for a user who
    may act (this machine, or the password); the runner checks each request again."""
    state = summary.state
    if not auth.control_allowed():
        st.caption("Read-only here: controls need this machine or the password (sidebar).")
        return
    live = state is not None and state.state in ("running", "paused")
    c = st.columns([1, 1, 1, 1.4, 1.2])
    act: tuple[str, dict[str, Any] | None] | None = None
    if c[0].button("Stop sweep", key=f"sweep_stop_{summary.id}", disabled=not live):
        act = ("stop", None)
    if state is not None and state.state == "paused":
        if c[1].button("Resume sweep", key=f"sweep_resume_{summary.id}"):
            act = ("resume", None)
    elif c[1].button(
        "Pause sweep", key=f"sweep_pause_{summary.id}", disabled=not live or state is None
    ):
        act = ("pause", None)
    has_best = state is not None and state.best_trial is not None
    steps = c[3].number_input(
        "Promote: steps",
        min_value=1,
        value=int(_base_steps(summary.id) * 10),
        step=10_000,
        key=f"sweep_promote_steps_{summary.id}",
        help="Queue the best trial's config as an ordinary run this long.",
        disabled=not has_best,
    )
    if c[4].button(
        "Promote best", key=f"sweep_promote_{summary.id}", disabled=not has_best, type="primary"
    ):
        act = ("promote", {"n_timesteps": int(steps)})
    if act is not None:
        try:
            actions.sweep_request(summary.id, act[0], act[1])
        except (PermissionError, ValueError, LookupError, OSError) as exc:
            st.error(str(exc))
        else:
            st.toast(f"{act[0]} requested for the sweep; the runner acts within a second")


def _base_steps(sweep_id: str) -> int:
    try:
        doc = load_yaml_mapping(sweeps.read_resolved(sweep_data.paths(sweep_id)))
        return int(doc.get("n_timesteps") or 10_000)
    except (OSError, ConfigSyntaxError, TypeError, ValueError):
        return 10_000


def show_sweep(summary: sweep_data.SweepSummary) -> None:
    state = summary.state
    if state is None:
        st.info("The runner has not written this sweep's sweep.json yet (or it is damaged).")
        return
    st.markdown(progress_line(state))
    if state.reason:
        st.caption(state.reason)
    total = state.n_trials or max(state.asked, 1)
    done = state.complete + state.pruned + state.failed
    st.progress(min(1.0, done / total), text=f"{done} of {total} trials ended")
    view = sweep_data.study_view(summary.id)
    if view.problem:
        st.warning(view.problem)
    if state.best_trial is not None:
        st.subheader(f"Best trial: {state.best_trial} — {fmt.number(state.best_value, 3)}")
        st.code(yaml.safe_dump(state.best_params, sort_keys=True), language="yaml")
        best_runs = state.trial_runs.get(str(state.best_trial), [])
        for run_id in best_runs:
            st.page_link(
                controls.RUN_PAGE,
                label=f"Run {run_id}",
                icon=":material/monitoring:",
                query_params={"run": run_id},
            )
    sweep_controls(summary)
    report_button([], key=f"sweep_report_{summary.id}", sweep=summary.id)
    if view.trials.is_empty():
        st.caption("No trials yet: the runner asks the sampler for the first ones.")
        return
    st.subheader("Trials")
    table = trials_table(view, state)
    st.dataframe(
        table.to_pandas(),
        hide_index=True,
        width="stretch",
        column_config={
            "number": st.column_config.NumberColumn("trial", format="%d"),
            "value": st.column_config.NumberColumn(state.metric, format="%.3f"),
            "run": st.column_config.LinkColumn("run", display_text=r"run\?run=(.*)"),
        },
        key=f"sweep_trials_{summary.id}",
    )
    history = best_so_far(view)
    left, right = st.columns(2)
    with left.container(key="sweep_history"):
        if history.is_empty():
            st.caption("The history appears with the first complete trial.")
        else:
            st.altair_chart(charts.history_chart(history, state.metric), width="stretch")
    with right.container(key="sweep_importances"):
        found, why = sweep_data.importances(summary.id)
        if found:
            # The height given here: Streamlit sizes a chart with a discrete axis its own way.
            chart = charts.importance_chart(found)
            st.altair_chart(chart, width="stretch", height=charts.importance_height(found))
        else:
            st.caption(f"Parameter importances: {why}")
    # Full width: each param is an axis, and they need the room.
    with st.container(key="sweep_parallel"):
        parallel = charts.parallel_frame(view.trials, view.params)
        if parallel.is_empty() or not view.params:
            st.caption("Params against the objective appear with the first complete trial.")
        else:
            st.altair_chart(
                charts.parallel_chart(parallel, view.params, state.metric), width="stretch"
            )


@st.fragment(run_every=REFRESH_SECONDS)
def live_sweeps() -> None:
    found = sweep_data.sweep_list()
    if not found:
        st.info(
            "No sweeps yet. Write one below, or drop a YAML file with a `sweep:` block into "
            "runs/queue/ (see docs/dashboard.md, Sweeps)."
        )
        return
    ids = [s.id for s in found]
    labels = {s.id: s.label for s in found}
    if st.session_state.get("sweeps_selected") not in ids:
        st.session_state["sweeps_selected"] = ids[0]
    chosen = st.selectbox("Sweep", ids, format_func=labels.__getitem__, key="sweeps_selected")
    show_sweep(next(s for s in found if s.id == chosen))


# -- New sweep ---------------------------------------------------------------------------------


def space_editor(algo: str) -> dict[str, Any]:
    """Add a key from the config's searchable keys with its distribution; remove one."""
    space: dict[str, Any] = st.session_state.setdefault(SPACE_KEY, {})
    keys = searchable_keys(algo)
    c = st.columns([2.2, 1, 1, 1, 0.8, 1])
    key = c[0].selectbox(
        "Key", keys, index=_index(keys, "hyperparams.learning_rate"), key="sweep_form_key"
    )
    kind = c[1].selectbox("Kind", ["float", "int", "choice"], key="sweep_form_kind")
    if kind == "choice":
        values = c[2].text_input("Values", placeholder="64, 128, 256", key="sweep_form_values")
        entry: dict[str, Any] | None = {"choice": _yaml_list(values)}
    else:
        low = c[2].text_input("Low", value="0.0001", key="sweep_form_low")
        high = c[3].text_input("High", value="0.01", key="sweep_form_high")
        log = c[4].checkbox("log", key="sweep_form_log")
        step = c[5].text_input("Step", placeholder="none", key="sweep_form_step")
        entry = {kind: [_yaml_value(low), _yaml_value(high)]}
        if log:
            entry["log"] = True
        if step.strip():
            entry["step"] = _yaml_value(step)
    if st.button("Add to the space", key="sweep_form_add"):
        space[key] = entry
    for name in list(space):
        a, b = st.columns([5, 1])
        a.code(yaml.safe_dump({name: space[name]}, default_flow_style=None).strip(), None)
        if b.button("Remove", key=f"sweep_form_remove_{name}"):
            del space[name]
            st.rerun()
    return dict(space)


def _index(options: list[str], wanted: str) -> int:
    return options.index(wanted) if wanted in options else 0


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def _yaml_list(text: str) -> list[Any]:
    try:
        found = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError:
        return [text]
    return found if isinstance(found, list) else [found]


def budget_inputs() -> dict[str, Any]:
    """The ``sweep:`` block's settings other than the space, defaults from ``SweepBlock``."""
    fields = SweepBlock.model_fields
    c = st.columns(4)
    n_trials = c[0].number_input("Trials", min_value=0, value=10, key="sweep_form_n_trials")
    timeout = c[1].text_input("Timeout", placeholder="e.g. 2h", key="sweep_form_timeout")
    concurrent = c[2].number_input(
        "Trials at once", min_value=1, value=2, key="sweep_form_max_concurrent"
    )
    seeds = c[3].number_input("Seeds per trial", min_value=1, value=1, key="sweep_form_seeds")
    d = st.columns(4)
    metric = d[0].text_input(
        "Metric",
        placeholder="eval/mean_return",
        key="sweep_form_metric",
        help=fields["metric"].description,
    )
    direction = d[1].selectbox("Direction", ["maximize", "minimize"], key="sweep_form_direction")
    sampler = d[2].selectbox(
        "Sampler", ["tpe", "random", "grid", "cmaes"], key="sweep_form_sampler"
    )
    pruner = d[3].selectbox(
        "Pruner", ["median", "successive_halving", "hyperband", "none"], key="sweep_form_pruner"
    )
    block: dict[str, Any] = {"max_concurrent": int(concurrent)}
    if n_trials:
        block["n_trials"] = int(n_trials)
    if timeout.strip():
        block["timeout"] = timeout.strip()
    if metric.strip():
        block["metric"] = metric.strip()
    block |= {"direction": direction, "sampler": sampler, "pruner": pruner, "seeds": int(seeds)}
    return block


def new_sweep_form() -> None:
    st.subheader("New sweep")
    if not auth.control_allowed():
        st.caption("Read-only here: queueing a sweep needs this machine or the password.")
        return
    # The New run presets, and the run last cloned (Runs page, "Clone"): the same starting
    # points as New run, so a good run can become a sweep's base.
    cloned = st.session_state.get("new_run_yaml")
    choices = ([CLONE_CHOICE] if cloned else []) + list(PRESETS)
    choice = st.selectbox("Base config from", choices, key="sweep_form_preset")
    if choice == CLONE_CHOICE:
        start, slot = str(cloned), "clone_" + hashlib.sha1(str(cloned).encode()).hexdigest()[:8]
    else:
        start, slot = PRESETS[choice].text, PRESETS[choice].key
    text = st.text_area(
        "Base config (YAML; every trial starts from it)",
        value=start,
        height=220,
        key=f"sweep_form_base_{slot}",
    )
    problems: list[str] = []
    try:
        base = load_yaml_mapping(text.encode("utf-8"))
    except ConfigSyntaxError as exc:
        base, problems = {}, [str(exc)]
    base.pop(SWEEP_KEY, None)
    algo = str(base.get("algo") or "ppo")
    st.markdown("**Search space**")
    space = space_editor(algo)
    st.markdown("**Budget and judging**")
    block = budget_inputs()
    if space:
        block["space"] = space
    else:
        block.pop("n_trials", None)  # a seeds-only launch: one trial on N seeds
    doc = {**base, SWEEP_KEY: block}
    if not problems:
        try:
            check_sweep(doc)
        except ConfigError as exc:
            problems = exc.problems
    # The form starts with an empty space: that is the next step, not an error.
    others = [p for p in problems if "nothing to sweep" not in p]
    if others:
        st.error("This sweep would be rejected:\n\n" + "\n".join(f"- {p}" for p in others))
    elif problems:
        st.info("Add a key to the search space above, or set seeds per trial above 1.")
    else:
        st.success("Valid: the runner will accept this sweep.")
    st.code(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), language="yaml")
    if st.button("Queue sweep", key="sweep_form_submit", type="primary"):
        if problems:
            st.error("Not queued: fix the problems above first.")
            return
        try:
            name, path = actions.submit_sweep(doc)
        except (PermissionError, ValueError) as exc:
            st.error(f"Not queued: {exc}")
        else:
            st.success(f"Queued sweep {name} as {path.name}; the runner starts its trials.")


live_sweeps()
new_sweep_form()
