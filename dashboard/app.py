"""Retro ML dashboard: ``streamlit run dashboard/app.py``.

The entry file builds the navigation and the shared sidebar, and starts a local runner when
none supervises the runs folder; the pages live in ``app_pages/`` (one line each in PAGES).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import auth, data
from dashboard.runner_launch import RunnerLaunch, ensure_runner
from runstore.store import RunStore

PAGE_DIR = Path(__file__).resolve().parent / "app_pages"

PAGES = [
    st.Page(PAGE_DIR / "runs.py", title="Runs", icon=":material/list:", default=True),
    st.Page(PAGE_DIR / "new_run.py", title="New run", icon=":material/add_circle:"),
    st.Page(PAGE_DIR / "run.py", title="Run", icon=":material/monitoring:", url_path="run"),
    st.Page(PAGE_DIR / "settings.py", title="Settings", icon=":material/settings:"),
]


@st.cache_resource(show_spinner=False)
def _runner_once(root: str) -> RunnerLaunch:
    """Once per server process and runs folder: a runner is found or started."""
    return ensure_runner(RunStore(root))


def main() -> None:
    st.set_page_config(page_title="Retro ML", page_icon=":joystick:", layout="wide")
    rs = data.store()
    launch = _runner_once(str(rs.root))
    with st.sidebar:
        st.caption(f"Runs folder: `{rs.root}`")
        if launch.started:
            st.info(launch.message)
        if not rs.runner_is_alive():
            st.warning(
                "No runner is supervising this runs folder: queued runs wait. Start one with "
                "`python -m runner` (see runner.log in the runs folder for why it stopped)."
            )
    auth.render_access_box()
    st.navigation(PAGES).run()


main()
