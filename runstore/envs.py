"""Which environment ids exist, and which of them are Atari games.

The runner rejects an unknown env at intake, before a process is spawned. Gymnasium and
ale-py are imported lazily and once: both are light (no torch), and the registry is all we need.
"""

from __future__ import annotations

import difflib
import functools


@functools.cache
def registered_env_ids() -> frozenset[str]:
    import gymnasium

    try:
        import ale_py

        gymnasium.register_envs(ale_py)
    except ImportError:  # Atari is optional for plain Gymnasium envs.
        pass
    return frozenset(gymnasium.registry.keys())


@functools.cache
def atari_env_ids() -> frozenset[str]:
    import gymnasium

    ids = registered_env_ids()
    return frozenset(
        env_id
        for env_id in ids
        if "ale_py" in str(getattr(gymnasium.registry[env_id], "entry_point", ""))
    )


def is_atari(env_id: str) -> bool:
    return env_id in atari_env_ids()


def atari_games() -> list[str]:
    """The ``ALE/<Game>-v5`` ids, one per game ale-py ships, sorted for pickers."""
    return sorted(e for e in atari_env_ids() if e.startswith("ALE/") and e.endswith("-v5"))


def unknown_env_message(env_id: str) -> str:
    ids = registered_env_ids()
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown environment {env_id!r}{hint} "
        "(Atari games are named like 'ALE/Pong-v5'; other ids come from Gymnasium's registry)"
    )
