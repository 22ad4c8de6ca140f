"""The Run page's trust box: a run whose checkpoints this runs folder did not sign (copied in
from elsewhere, or changed since) is shown as "imported: not trusted", with what can be done
with it, and a Trust button for a user who may act (it writes a ``trust`` request; the
runner signs the run and logs who asked in run.json).

Call ``render_trust(run_id)`` from a page. The check is cheap (signed manifests only) and
cached by the stamps of the files it reads; the key itself is never shown.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import actions, auth, data
from runstore import checkpoints
from runstore.trust import NOT_TRUSTED, secret_path


def _trust_key(run_dir: Path) -> tuple:
    """Stamps of every document the check reads: the manifests, best.json, the key."""
    folder = run_dir / "checkpoints"
    docs = [folder / checkpoints.BEST_META, folder / checkpoints.BEST_MODEL]
    docs += [c.dir / checkpoints.MANIFEST for c in checkpoints.list_checkpoints(folder)]
    docs.append(secret_path(run_dir.parent))
    return tuple((str(p), data.stamp(p)) for p in docs)


@st.cache_data(show_spinner=False, max_entries=500)
def _report(run_dir: str, key: tuple) -> checkpoints.TrustReport:
    return checkpoints.run_trust(Path(run_dir))


def trust_report(run_id: str) -> checkpoints.TrustReport:
    try:
        run_dir = data.store().paths(run_id).dir
    except ValueError:
        return checkpoints.TrustReport(True)
    return _report(str(run_dir), _trust_key(run_dir))


def request_trust(run_id: str) -> Path:
    """The server-side check first; the runner refuses a live run and logs the source."""
    auth.require_control()
    peer = auth.peer_address()
    source = f"{actions.SOURCE} {peer}" if peer else f"{actions.SOURCE} (this machine)"
    return data.store().write_request(run_id, "trust", source=source[:40])


def render_trust(run_id: str) -> None:
    report = trust_report(run_id)
    if report.trusted:
        return
    st.warning(
        f"**{NOT_TRUSTED}.** This run's checkpoints were not written by this runs folder "
        "(copied in from elsewhere, or changed since). Model zips, replay buffers and "
        "VecNormalize files are Python pickles, which can run code when loaded, so none of "
        "it is loaded until you trust it.\n\n"
        "- View its curves, timeline and clips: **yes**\n"
        "- Resume it, record a clip from it, start a run from its weights (`init_from`): "
        "**refused** until it is trusted (the run says so if asked)"
    )
    with st.expander("What failed the check"):
        for problem in report.problems:
            st.text(problem)
    if not auth.control_allowed():
        st.caption(
            "Read-only here: a user on this machine (or with the password) can trust it, "
            f"or run `python -m runner trust {run_id}`."
        )
        return
    row = data.get_row(run_id)
    live = row is not None and row.state.is_live
    sure = st.checkbox(
        "I know where this run came from and trust its files",
        key=f"trust_confirm_{run_id}",
        disabled=live,
    )
    if live:
        st.caption("It is running: stop it before trusting it.")
    if st.button(
        "Trust this run",
        key=f"trust_{run_id}",
        disabled=live or not sure,
        help="Signs its checkpoints with this runs folder's key (logged in run.json).",
    ):
        try:
            request_trust(run_id)
        except (PermissionError, ValueError) as exc:
            st.error(str(exc))
        else:
            st.toast("trust requested; the runner signs the run within a second")
            if not data.runner_alive():
                st.warning("No runner is alive: the request waits until one starts.")
