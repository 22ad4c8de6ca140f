"""The dashboard's read-only connection to a sweep study kept in PostgreSQL (``storage:``):
one engine and connection pool per database for the server's life, not one per read.

The connection itself (read-only in the server, a 5 s connect timeout, no table created) and
the masked error messages are ``analysis.sweep_study``'s, shared with the reports.
"""

from __future__ import annotations

import optuna
import streamlit as st

from analysis.sweep_study import read_only_database

#: A study in a database is re-read at least this often (seconds): see ``sweep_data.study_key``.
DATABASE_SECONDS = 5


@st.cache_resource(show_spinner=False, max_entries=20)
def database(url: str) -> optuna.storages.RDBStorage:
    """``read_only_database``, kept; a failure to connect raises and is not cached, so the
    next read tries again."""
    return read_only_database(url)
