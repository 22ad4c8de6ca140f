"""New run: a form generated from the config schema, validated as the runner validates, that
drops one YAML file into the queue and nothing else."""

from __future__ import annotations

import hashlib
from typing import Any

import psutil
import streamlit as st
import yaml

from dashboard import actions, auth, data
from dashboard.components import schema_form
from dashboard.durations import estimate
from dashboard.presets import CLONE_CHOICE, PRESETS
from dashboard.recommend import machine_recommendations
from runstore.config import AtariSettings, RunConfig
from runstore.envs import atari_games, is_atari
from runstore.estimate import estimate_memory, preflight_problem
from runstore.hyperparams import HYPERPARAMS_BY_ALGO, ZOO_ATARI
from runstore.sweep_config import MAX_SEEDS
from runstore.yamlsafe import load_yaml_mapping

CLASSIC_ENVS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"]
DEVICES = ["auto", "cpu", "cuda"]
# Drawn above the fold or in their own section, not in "Run settings".
MAIN_FIELDS = ("algo", "env", "n_timesteps", "name", "time_budget", "device")
NESTED = ("hyperparams", "atari")
RUNNER_WRITTEN = ("sweep",)  # which sweep trial a run is: set by the runner, never by hand

st.title("New run")


def base_doc(choice: str) -> tuple[dict[str, Any], str]:
    """The preset's (or the cloned run's) config, and a key prefix unique to it."""
    if choice == CLONE_CHOICE and st.session_state.get("new_run_yaml"):
        text = st.session_state["new_run_yaml"]
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        return load_yaml_mapping(text.encode("utf-8")), f"nr_clone_{digest}"
    if choice in PRESETS:
        return PRESETS[choice].doc(), f"nr_{PRESETS[choice].key}"
    return {"algo": "ppo", "env": "CartPole-v1", "n_timesteps": 100_000}, "nr_blank"


choices = list(PRESETS) + ["Blank"]
if st.session_state.get("new_run_yaml"):
    choices.insert(0, CLONE_CHOICE)
choice = st.selectbox("Start from", choices, key="new_run_preset")
if choice in PRESETS:
    st.caption(PRESETS[choice].blurb)
base, prefix = base_doc(choice)

c1, c2 = st.columns(2)
algos = list(HYPERPARAMS_BY_ALGO)
algo = c1.selectbox(
    "Algorithm",
    algos,
    index=algos.index(base.get("algo", "ppo")) if base.get("algo") in algos else 0,
    key=f"{prefix}_algo",
    format_func=str.upper,
)
envs = CLASSIC_ENVS + atari_games()
if base.get("env") and base["env"] not in envs:
    envs.insert(0, base["env"])
env = c2.selectbox(
    "Game",
    envs,
    index=envs.index(base["env"]) if base.get("env") in envs else 0,
    key=f"{prefix}_env",
    help="Atari games are the ones ale-py ships (ALE/<Game>-v5); the rest are Gymnasium's.",
)
c3, c4, c5, c6 = st.columns(4)
name = c3.text_input("Name", value=str(base.get("name") or ""), key=f"{prefix}_name")
n_timesteps = c4.number_input(
    "Steps (upper bound)",
    min_value=1,
    value=int(base.get("n_timesteps") or 100_000),
    step=10_000,
    key=f"{prefix}_n_timesteps",
)
budget = c5.text_input(
    "Time budget",
    value=str(base.get("time_budget") or ""),
    key=f"{prefix}_time_budget",
    placeholder="e.g. 2h or 90m",
    help="Train for this long, then stop gracefully with a checkpoint; steps become a limit.",
)
rec = machine_recommendations()
devices = DEVICES + ([base["device"]] if base.get("device") not in DEVICES + [None] else [])
device = c6.selectbox(
    "Device",
    devices,
    index=devices.index(base.get("device") or rec["device"]),
    key=f"{prefix}_device",
    help=f"Recommended here: {rec['device']}. {rec['device_reason']}",
)
st.caption(
    f"For this machine: device {rec['device']}, n_envs {rec['n_envs']}, vec_env "
    f"{rec['vec_env']} ({rec['vec_env_reason']}); details on the System page."
)

atari = is_atari(env)
problems: list[str] = []
doc: dict[str, Any] = {"algo": algo, "env": env, "n_timesteps": int(n_timesteps)}
if name.strip():
    doc["name"] = name.strip()
if budget.strip():
    doc["time_budget"] = budget.strip()
if device != "auto" or "device" in base:
    doc["device"] = device

top = {k: v for k, v in base.items() if k not in MAIN_FIELDS + NESTED + RUNNER_WRITTEN}
with st.expander("Run settings (checkpoints, seed, evaluation, ...)"):
    extra, bad = schema_form.model_inputs(
        RunConfig, top, f"{prefix}_top", skip=MAIN_FIELDS + NESTED + RUNNER_WRITTEN
    )
    doc.update(extra)
    problems += bad

hp_base = base.get("hyperparams") if base.get("algo", algo) == algo else None
hp_base = hp_base if isinstance(hp_base, dict) else {}
with st.expander("Hyperparameters (advanced)"):
    if atari:
        st.caption("Atari runs start from the RL Zoo's Atari settings; change what you mean to.")
    hp, bad = schema_form.model_inputs(
        HYPERPARAMS_BY_ALGO[algo],
        hp_base,
        f"{prefix}_{algo}_{int(atari)}_hp",
        skip=("n_timesteps",),
        overrides=ZOO_ATARI.get(algo, {}) if atari else None,
    )
    problems += bad
if hp:
    doc["hyperparams"] = hp
if atari:
    with st.expander("Atari preprocessing (advanced)"):
        atari_base = base.get("atari") if isinstance(base.get("atari"), dict) else {}
        settings, bad = schema_form.model_inputs(AtariSettings, atari_base, f"{prefix}_atari")
        problems += bad
    if settings:
        doc["atari"] = settings

yaml_text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
config, config_problems = actions.validate_config(yaml_text)
problems += config_problems

if problems:
    st.error("This config would be rejected:\n\n" + "\n".join(f"- {p}" for p in problems))
elif config is not None:
    found = estimate(
        data.rows_like(env, algo), env, algo, device, int(n_timesteps), config.time_budget
    )
    st.info(found.text)
    memory = estimate_memory(config)
    warning = preflight_problem(memory, psutil.virtual_memory().available)
    if warning:
        st.warning(f"Memory: {warning}")
    else:
        st.caption(f"Memory: {memory.describe()}, within this machine's free RAM.")

left, right = st.columns(2)
with left:
    st.markdown("**YAML that goes into the queue**")
    st.code(yaml_text, language="yaml")
with right:
    st.markdown("**Resolved config (every default filled in)**")
    if config is not None:
        with st.container(height=360):
            st.code(
                yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False),
                language="yaml",
            )
    else:
        st.caption("Shown once the config is valid.")

if not auth.control_allowed():
    st.warning(
        "Read-only: this browser is not on the machine running Retro ML and no password was "
        "entered, so it cannot queue runs (see the sidebar)."
    )
else:
    # "Run on N seeds": the same config as a sweep with no space (``sweep: {seeds: N}``), so
    # the runner queues N runs differing only in seed, grouped as one sweep (issue 15).
    seeds = st.number_input(
        "Run on N seeds",
        min_value=1,
        max_value=MAX_SEEDS,
        value=1,
        key="new_run_seeds",
        help="More than 1 queues a sweep of this config on that many seeds (see Sweeps).",
    )
    if st.button("Queue run", key="new_run_submit", type="primary"):
        if problems:
            st.error("Not queued: fix the problems above first.")
        else:
            try:
                if seeds > 1:
                    shown, path = actions.submit_sweep({**doc, "sweep": {"seeds": int(seeds)}})
                else:
                    queued, path = actions.submit_config(yaml_text)
                    shown = queued.display_name
            except (PermissionError, ValueError) as exc:
                st.error(f"Not queued: {exc}")
            else:
                st.success(f"Queued {shown} as {path.name}; the runner starts it.")
                st.page_link("app_pages/runs.py", label="Watch it on the Runs page", icon="➡️")
