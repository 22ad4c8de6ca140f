"""The dashboard's read-only access to a sweep study kept in PostgreSQL (``storage:``).

Apart from dashboard/sweep_data.py (which decides where a study is and caches what is read)
because a database brings what a journal file does not: a connection kept for the server's
life, a server that may not answer, and a password that must never reach the page.
"""

from __future__ import annotations

import optuna
import streamlit as st
from sqlalchemy.engine import make_url

from runstore.sweep_config import rdb_url, storage_password

#: A study in a database is re-read at least this often (seconds): see ``sweep_data.study_key``.
DATABASE_SECONDS = 5
#: Every connection to a study's database: read-only in the server itself, and a host that
#: does not answer costs the page seconds, not the minutes of a TCP timeout.
_READ_ONLY = {
    "options": "-c default_transaction_read_only=on",
    "connect_timeout": 5,
    "application_name": "retro-ml dashboard",
}


@st.cache_resource(show_spinner=False, max_entries=20)
def database(url: str) -> optuna.storages.RDBStorage:
    """One read-only storage (engine and connection pool) per database for the server's
    life, not one per read. It never creates a table (a write) nor refuses a schema made by
    another Optuna version (the runner's Optuna owns it); a failure to connect raises and is
    not cached, so the next read tries again."""
    return optuna.storages.RDBStorage(
        rdb_url(url),
        engine_kwargs={"connect_args": _READ_ONLY, "pool_pre_ping": True},
        skip_table_creation=True,
        skip_compatibility_check=True,
    )


def database_problem(url: str, exc: BaseException) -> str:
    """Why a study in a database cannot be read, in words, naming its host with the
    password masked (in the URL and in the driver's message alike)."""
    found = make_url(url)
    shown = found.render_as_string(hide_password=True)
    root = _root(exc)
    # KeyError: no study of that name; 42P01 (undefined table): Optuna's tables not made yet.
    if isinstance(root, KeyError) or getattr(root, "pgcode", None) == "42P01":
        return (
            f"The study is not in its database yet (`{shown}`): the runner creates it there "
            "with the first trial."
        )
    reason = " ".join(str(root).split()).rstrip(".")
    if secret := storage_password(url):
        reason = reason.replace(secret, "***")
    return (
        f"The study is in PostgreSQL at {found.host}:{found.port or 5432} (`{shown}`), where "
        f"the runner keeps it, and cannot be read: {reason}\n\nCheck that the server is up and "
        "reachable from this machine, and the user, password and database in the sweep "
        "file's storage."
    )


def _root(exc: BaseException) -> BaseException:
    """The driver's own error (psycopg2's, with the server's words): Optuna wraps it in its
    StorageInternalError and SQLAlchemy in its own, each with words of its own."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return getattr(exc, "orig", None) or exc
