"""The TensorBoard panel of the Compare page: whether this runs folder's TensorBoard runs, an
"Open" link to it (always the loopback address it is bound to), Start and Stop for a user who
may act, and what went wrong, said on the page (``dashboard/tensorboard_launcher.py``).

Call ``tensorboard_panel(root)`` with the runs folder.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth
from dashboard.tensorboard_launcher import TensorBoardLauncher
from runstore.store import RunStore


@st.cache_resource(show_spinner=False)
def _launcher(root: str) -> TensorBoardLauncher:
    """One launcher per runs folder and server process; the record in the runs folder makes
    the instance survive a dashboard restart."""
    return TensorBoardLauncher(RunStore(root))


def tensorboard_panel(root: str) -> None:
    st.subheader("TensorBoard")
    launcher = _launcher(root)
    state = launcher.state()
    running = state.info
    if state.problem:
        st.warning(state.problem)
    if running is not None:
        url = launcher.url(running)
        st.link_button("Open TensorBoard", url, key="tb_open")
        st.caption(
            f"TensorBoard (pid {running.pid}) serves {running.logdir} at {url}, "
            "on this machine only."
        )
    else:
        st.caption("Not running. It reads the same event files: `tensorboard --logdir runs`.")
    if not auth.control_allowed():
        st.caption(
            "Starting and stopping TensorBoard is for the local machine or a password holder."
        )
        return
    if running is None and st.button("Start TensorBoard", key="tb_start"):
        auth.require_control()
        try:
            with st.spinner("Starting TensorBoard..."):
                launcher.start()
        except RuntimeError as exc:  # TensorBoardError: nothing of this start is left running
            st.error(str(exc))
        else:
            st.rerun()
    if running is not None and st.button("Stop TensorBoard", key="tb_stop"):
        auth.require_control()
        stopped = launcher.stop()
        if not stopped:
            st.error(stopped.message)
        else:
            st.rerun()
