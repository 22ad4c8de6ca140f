"""The journey's companions in words: YouTube chapter lines and a description of the run."""

from __future__ import annotations

from collections.abc import Sequence

from journey.plan import Mark
from reports.facts import RunFacts
from runstore.units import format_duration, format_score, format_steps


def timestamp(seconds: float) -> str:
    """YouTube's chapter time: m:ss, or h:mm:ss from an hour on (whole seconds, down)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def chapter_lines(marks: Sequence[Mark], fps: float) -> str:
    """One ``0:00 Title`` line per chapter, at the frame its card starts."""
    return "".join(f"{timestamp(m.frame / fps)} {m.title}\n" for m in marks)


def game_title(env: str) -> str:
    """``ALE/Pong-v5`` -> ``Pong``."""
    return env.split("/")[-1].split("-v")[0].split("NoFrameskip")[0] or env


def _score(value: float | None) -> str:
    return "-" if value is None else f"{format_score(value)}"


def _settings(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    """The hyperparameters that are set, nested ones as ``policy_kwargs.net_arch``."""
    out: list[tuple[str, object]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _settings(value, f"{prefix}{key}.")
        elif value is not None:
            out.append((f"{prefix}{key}", value))
    return out


def final_and_best(facts: RunFacts) -> tuple[float | None, float | None]:
    """The final and best evaluation scores as status.json says (the trainer's own record),
    else from the logged evaluation curve."""
    status = facts.status
    final = status.last_eval_return if status else None
    best = status.best_eval_return if status else None
    if final is None and facts.final is not None:
        final = facts.final.mean
    if best is None and facts.best is not None:
        best = facts.best.mean
    return final, best


def description(facts: RunFacts, marks: Sequence[Mark], fps: float) -> str:
    """What a video page says under the video: the run's facts, its chapters, how it was
    trained. Every number comes from the run store (``reports.facts``)."""
    game, algo = game_title(facts.env), facts.algo.upper()
    status = facts.status
    steps = status.timesteps if status else (facts.final.step if facts.final else 0)
    hours = facts.usage.wall_hours if facts.usage else None
    final, best = final_and_best(facts)
    lines = [
        f"AI learns to play {game}: {facts.name}",
        "",
        f"A {algo} agent (Stable-Baselines3) learning {game} from scratch, from random play "
        f"to its best game, filmed from its own evaluations during training.",
        "",
        f"Final evaluation score: {_score(final)}",
        f"Best evaluation score: {_score(best)}",
    ]
    normalised = facts.normalized(best)
    if normalised is not None:
        lines.append(f"Human-normalised score (best): {normalised:.0%} of a human tester")
    lines += ["", "Chapters", *chapter_lines(marks, fps).splitlines(), "", "Training"]
    lines += [
        f"- game: {facts.env}",
        f"- algorithm: {algo}",
        f"- steps: {format_steps(steps)}",
    ]
    if hours is not None:
        lines.append(f"- training time: {format_duration(hours * 3600)}")
    hardware = status.device if status and status.device else ""
    host = facts.record.host
    if hardware or host:
        lines.append(f"- hardware: {hardware or '?'}{f' on {host}' if host else ''}")
    versions = status.versions if status else {}
    if versions:
        lines.append("- software: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    if facts.seed is not None:
        lines.append(f"- seed: {facts.seed}")
    hyper = facts.config.get("hyperparams") or {}
    if hyper:
        lines += ["", "Hyperparameters"]
        lines += [f"- {k}: {v}" for k, v in _settings(hyper)]
    lines += ["", "Made with Retro ML from the run's own record."]
    return "\n".join(lines) + "\n"
