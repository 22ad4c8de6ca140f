"""Retro ML dashboard: ``python -m dashboard.serve`` (``make run``), or ``streamlit run
dashboard/app.py``.

The entry file builds the navigation and the shared sidebar, and starts a local runner when
none supervises the runs folder; the pages live in ``app_pages/`` (one line each in PAGES).

It also installs the anti-framing headers (dashboard/headers.py) on every run: under plain
``streamlit run`` that is the first chance our code gets, so the first page the server sends
after it starts, before any session has run this script, is not covered; ``make run`` starts
the server through dashboard/serve.py, which installs them before it serves anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `streamlit run` puts this folder first on sys.path. Our modules are imported as
# ``dashboard.*``; a module here named like a library would otherwise shadow it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import streamlit as st  # noqa: E402

from dashboard import auth, data, headers  # noqa: E402
from dashboard.runner_launch import RunnerLaunch, ensure_runner  # noqa: E402
from runstore.store import RunStore  # noqa: E402

PAGE_DIR = Path(__file__).resolve().parent / "app_pages"
# Set it when a runner lives elsewhere (another terminal, a service) or in tests of the pages.
NO_AUTOSTART_ENV = "RETRO_ML_NO_AUTOSTART"

PAGES = [
    st.Page(PAGE_DIR / "runs.py", title="Runs", icon=":material/list:", default=True),
    st.Page(PAGE_DIR / "new_run.py", title="New run", icon=":material/add_circle:"),
    st.Page(PAGE_DIR / "run.py", title="Run", icon=":material/monitoring:", url_path="run"),
    st.Page(PAGE_DIR / "compare.py", title="Compare", icon=":material/stacked_line_chart:"),
    st.Page(PAGE_DIR / "sweeps.py", title="Sweeps", icon=":material/tune:"),
    st.Page(PAGE_DIR / "videos.py", title="Videos", icon=":material/movie:"),
    st.Page(PAGE_DIR / "reports.py", title="Reports", icon=":material/description:"),
    st.Page(PAGE_DIR / "leaderboard.py", title="Leaderboard", icon=":material/trophy:"),
    st.Page(PAGE_DIR / "system.py", title="System", icon=":material/memory:"),
    st.Page(PAGE_DIR / "settings.py", title="Settings", icon=":material/settings:"),
]


@st.cache_resource(show_spinner=False)
def _runner_once(root: str) -> RunnerLaunch:
    """Once per server process and runs folder: a runner is found or started."""
    return ensure_runner(RunStore(root))


def main() -> None:
    headers.install()  # idempotent; see the module docstring for why it is here too
    st.set_page_config(page_title="Retro ML", page_icon=":joystick:", layout="wide")
    rs = data.store()
    if os.environ.get(NO_AUTOSTART_ENV):
        launch = RunnerLaunch(False, None, f"{NO_AUTOSTART_ENV} is set: no runner was started.")
    else:
        launch = _runner_once(str(rs.root))
    with st.sidebar:
        st.caption(f"Runs folder: `{rs.root}`")
        if launch.started:
            st.info(launch.message)
        elif launch.failed:
            st.error(launch.message)
        if not rs.runner_is_alive():
            st.warning(
                "No runner is supervising this runs folder: queued runs wait. Start one with "
                "`python -m runner` (see runner.log in the runs folder for why it stopped)."
            )
    auth.render_access_box()
    st.navigation(PAGES).run()


main()
