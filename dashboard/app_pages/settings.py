"""Settings: the runner's settings (runs/settings.yaml, read by the runner on every change)
and the state of the LAN rule (password set or not, never its value)."""

from __future__ import annotations

import streamlit as st

from dashboard import actions, auth, data, fmt
from runstore.settings import SettingsError, settings_path

st.title("Settings")
rs = data.store()

st.subheader("Runner")
st.markdown(f"Runs folder: `{rs.root}` (set `RETRO_ML_RUNS_DIR` before starting to change it)")
info = rs.read_runner_info()
if rs.runner_is_alive() and info is not None:
    st.success(
        f"A runner is supervising this folder: pid {info.pid} on {info.host}, up since "
        f"{fmt.clock(info.started)}, max {info.max_concurrent} run(s) at once."
    )
else:
    st.warning("No runner is supervising this folder; queued runs wait until one starts.")

current, problem = data.runner_settings()
if problem:
    st.error(f"{settings_path(rs.root)} has problems; the runner keeps its last good settings:")
    st.code(problem, language=None)
st.caption(
    f"Stored in `{settings_path(rs.root)}`. The runner applies a change within a second; a "
    "flag given on its command line (--max-concurrent, --stop-grace, --ray-address) wins over "
    "the file, and "
    "a key in a run's config wins over the defaults below."
)

can_edit = auth.control_allowed()
with st.form("settings_form"):
    max_concurrent = st.number_input(
        "Max concurrent runs", 1, 64, current.max_concurrent, key="settings_max_concurrent"
    )
    devices = ["auto", "cpu", "cuda"]
    if current.default_device not in devices:
        devices.append(current.default_device)
    device = st.selectbox(
        "Default device",
        devices,
        index=devices.index(current.default_device),
        key="settings_device",
        help="For configs that do not name one.",
    )
    ckpt_every = st.number_input(
        "Checkpoint every (steps; 0 = the run's own default, a tenth of its steps)",
        min_value=0,
        value=current.checkpoint_every or 0,
        step=10_000,
        key="settings_checkpoint_every",
    )
    keep = st.number_input(
        "Checkpoints kept per run (0 = the config's default, 3)",
        min_value=0,
        max_value=1000,
        value=current.keep_checkpoints or 0,
        key="settings_keep_checkpoints",
    )
    grace = st.number_input(
        "Stop grace (seconds before a stopping run is killed)",
        min_value=1.0,
        max_value=3600.0,
        value=float(current.stop_grace),
        key="settings_stop_grace",
    )
    ray_address = st.text_input(
        "Ray cluster address (empty: train on this machine)",
        value=current.ray_address,
        key="settings_ray_address",
        help="HOST:PORT of the cluster's head, or auto; read when the runner starts "
        "(docs/cluster.md).",
    )
    saved = st.form_submit_button("Save settings", disabled=not can_edit)
if not can_edit:
    st.caption("Read-only here: changing settings needs this machine or the password.")
if saved:
    doc = {
        "max_concurrent": int(max_concurrent),
        "default_device": device,
        "checkpoint_every": int(ckpt_every) or None,
        "keep_checkpoints": int(keep) or None,
        "stop_grace": float(grace),
        "ray_address": ray_address.strip(),
    }
    try:
        path = actions.save_settings(doc)
    except (PermissionError, SettingsError) as exc:
        st.error(str(exc))
    else:
        st.success(f"Saved to {path}; the runner picks it up within a second.")

st.subheader("Access from other machines")
if auth.password_is_set():
    st.markdown(
        "A password **is set**: browsers on other machines can act after entering it "
        "(sidebar). Wrong attempts are slowed down for the whole server."
    )
else:
    st.markdown(
        "**No password is set**: browsers on other machines can look but not act. Set "
        f"`{auth.SECRET_KEY}` in `.streamlit/secrets.toml` or the `{auth.PASSWORD_ENV}` "
        "environment variable, then restart the dashboard."
    )
st.markdown(
    "The dashboard serves on 127.0.0.1 only (`make run`). `make share` serves it on the LAN "
    "and prints the address to share; see the README."
)
st.caption(f"This browser: {'full control' if can_edit else 'read-only'}.")
