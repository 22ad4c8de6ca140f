"""``hyperparams.env_kwargs``: the keywords a config may pass to its env, checked per env
family (ale-py's allow-list for Atari, the constructor's signature for the rest)."""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Any

from pydantic import Field, ValidationError, field_validator

from runstore.config_messages import format_validation_errors
from runstore.envs import atari_env_ids, is_atari, registered_env_ids
from runstore.hyperparams import (
    Float,
    Int,
    StrictModel,
    check_env_kwarg_value,
    env_kwargs_problems,
    short_repr,
)


class AtariEnvKwargs(StrictModel):
    """``hyperparams.env_kwargs`` for an Atari env: the allow-list of ale-py's AtariEnv keywords
    (plus gymnasium.make's ``max_episode_steps``) that make sense beside the ``atari`` block.

    Left out: ``obs_type`` (the preprocessing needs pixels), ``render_mode`` (the trainer sets
    it), ``continuous`` and ``sound_obs`` (the policies take neither). ``game`` may only repeat
    the env's own game: the env id chooses the ROM, and run names and the dashboard follow it.
    """

    game: str | None = Field(None, description="the env's own ROM name (ALE/Pong-v5: pong)")
    mode: Int | None = Field(None, ge=0, le=255, description="game mode (ALE lists them per game)")
    difficulty: Int | None = Field(None, ge=0, le=255)
    frameskip: Int | None = Field(None, ge=1, le=16)
    repeat_action_probability: Float | None = Field(None, ge=0, le=1)
    full_action_space: bool | None = None
    max_num_frames_per_episode: Int | None = Field(None, ge=1, le=10_000_000)
    max_episode_steps: Int | None = Field(None, ge=1, le=10_000_000)

    @field_validator("game", mode="before")
    @classmethod
    def _known_rom(cls, value: Any) -> Any:
        """A ROM name reaches ale-py's file lookup: only names ale-py ships get there."""
        if value is None or (isinstance(value, str) and value in _atari_games()):
            return value
        close = difflib.get_close_matches(str(value), list(_atari_games()), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"{short_repr(value)} is not an ALE ROM name{hint}; the env chooses the ROM, so "
            "leave env_kwargs.game out"
        )


NON_ATARI_EXTRA_KWARGS = frozenset({"max_episode_steps"})  # gymnasium.make's own keyword
RESERVED_ENV_KWARGS = frozenset({"render_mode", "disable_env_checker", "id", "self"})


def env_kwargs_for(env: str, value: Any) -> tuple[list[str], Any]:
    """Problems (each starting ``.key: `` or ``: ``) and the checked env_kwargs for ``env``.

    Atari envs: the AtariEnvKwargs allow-list with its ranges. Other envs: the keywords their
    constructor takes (read from its signature; any name when it takes ``**kwargs`` or cannot
    be imported here), each value scalar, finite and within +-1e9.
    """
    if env not in registered_env_ids():
        return [], value  # the env itself is reported
    generic = [] if is_atari(env) and isinstance(value, dict) else env_kwargs_problems(value)
    if generic:
        return [f".{k}: {p}" if k else f": {p}" for k, p in generic], {}
    if is_atari(env):
        try:
            checked = AtariEnvKwargs.model_validate(value)
        except ValidationError as exc:
            return [_unknown_or(p, AtariEnvKwargs.model_fields) for p in _loc_errors(exc)], {}
        game = _atari_game(env)
        if checked.game is not None and checked.game != game:
            return [f".game: {_game_problem(checked.game, env, game)}"], {}
        return [], checked.model_dump(exclude_none=True)
    accepted = _env_keywords(env)
    problems = []
    for key, item in value.items():
        if key in RESERVED_ENV_KWARGS or (accepted is not None and key not in accepted):
            allowed = sorted(accepted or ()) or ["(none)"]
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(f".{key}: not a setting of {env}; {hint}it takes {', '.join(allowed)}")
        elif (problem := check_env_kwarg_value(item)) is not None:
            problems.append(f".{key}: {problem}")
    return problems, value if not problems else {}


def _loc_errors(exc: ValidationError) -> list[tuple[str, str, str]]:
    """(dotted loc, pydantic error type, formatted message) for each error."""
    return [
        (".".join(str(p) for p in err["loc"]), err["type"], text.split(": ", 1)[-1])
        for err, text in zip(exc.errors(), format_validation_errors(exc), strict=True)
    ]


def _unknown_or(error: tuple[str, str, str], known: Any) -> str:
    loc, kind, message = error
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc, list(known), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f".{loc}: unknown key; {hint}use one of {', '.join(known)}"
    return f".{loc}: {message}"


@functools.cache
def _atari_games() -> dict[str, str]:
    """ROM name -> its ALE/<Game>-v5 env id, for every game ale-py ships."""
    import gymnasium

    games = {}
    for env_id in sorted(atari_env_ids()):
        game = gymnasium.registry[env_id].kwargs.get("game")
        if isinstance(game, str) and (env_id.startswith("ALE/") and env_id.endswith("-v5")):
            games[game] = env_id
    return games


def _atari_game(env: str) -> str | None:
    import gymnasium

    game = gymnasium.registry[env].kwargs.get("game")
    return game if isinstance(game, str) else None


def _game_problem(given: str, env: str, own: str | None) -> str:
    games = _atari_games()
    if given in games:
        return (
            f"{given!r} is another game than {env}'s {own!r}; the env chooses the ROM: "
            f"write env: {games[given]} and leave env_kwargs.game out"
        )
    close = difflib.get_close_matches(given, list(games), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{short_repr(given)} is not an ALE ROM name{hint}; the env chooses the ROM, "
        f"so leave env_kwargs.game out (or write {own!r})"
    )


@functools.cache
def _env_keywords(env: str) -> frozenset[str] | None:
    """The keywords ``gymnasium.make(env, ...)`` passes on to the env's constructor, or None
    when any name may do (``**kwargs``) or the entry point cannot be imported here."""
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    entry = gymnasium.registry[env].entry_point
    try:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        params = inspect.signature(creator).parameters.values()
    except Exception:  # an optional dependency (box2d, mujoco) missing: the trainer reports it
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    names = {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    return frozenset(names - RESERVED_ENV_KWARGS) | NON_ATARI_EXTRA_KWARGS
