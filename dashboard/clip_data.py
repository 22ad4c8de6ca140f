"""Clips, time-lapses and best models for the pages: cached reads through ``runstore``, and
the two requests that make new clips. The runner does the work (``runner/media.py`` starts the
processes that record and stitch them); this is only the pages' side.

Loaders are keyed by the stamps of the files they read (a run's ``videos/`` folder, its
status.json), so a new clip shows on the next rerun and an unchanged folder costs a ``stat``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import actions, auth, data
from dashboard.clip_server import ClipServer
from runstore import checkpoints as ckpts
from runstore import safeio, trust
from runstore.paths import slugify
from runstore.store import MAX_RECORD_EPISODES, RunStore
from runstore.videos import list_clips, timelapse_path

#: Largest clip or time-lapse a page plays from memory (only when the clip server could not
#: start) or offers as a download, and model zip it offers: Streamlit holds what it serves in
#: memory whole, whether given a path or bytes. Played clips are streamed by the clip server.
MAX_VIDEO_BYTES = 256 * 2**20
#: The clip server's port; unset or 0: a free one, chosen when the dashboard starts.
CLIP_PORT_ENV = "RETRO_ML_CLIP_PORT"
MAX_MODEL_BYTES = 2 * 2**30


@dataclass(frozen=True)
class ClipRow:
    run_id: str
    run_name: str
    env: str
    algo: str
    step: int
    kind: str  # eval | record
    score: float | None  # evaluation mean return, else the episode's return
    episode_return: float | None
    checkpoint: str
    frames: int
    created_at: float
    path: Path
    problem: str = ""  # the clip or its sidecar was refused (a link...), in words
    size: int = 0  # bytes of the mp4 (lstat: a link is only a link)

    @property
    def game(self) -> str:
        return game_name(self.env)


@dataclass(frozen=True)
class LeaderRow:
    game: str
    env: str
    best_eval_return: float
    run_id: str
    run_name: str
    algo: str
    at_step: int
    timesteps: int
    clip: Path | None


def game_name(env_id: str) -> str:
    """``ALE/Pong-v5`` -> ``Pong``; ``CartPole-v1`` -> ``CartPole``."""
    return env_id.split("/")[-1].split("-v")[0].split("NoFrameskip")[0] or env_id


@st.cache_data(show_spinner=False, max_entries=2000)
def _run_clips(root: str, run_id: str, videos_key: object, cfg_key: object) -> list[ClipRow]:
    rs = RunStore(root)
    paths = rs.paths(run_id)
    config = data.read_config(run_id)
    rows = []
    for clip in list_clips(paths.videos, include_refused=True):
        meta = clip.meta
        rows.append(
            ClipRow(
                run_id=run_id,
                run_name=(meta.run_name if meta and meta.run_name else "")
                or (config.display_name if config else run_id),
                env=(meta.env if meta and meta.env else "") or (config.env if config else "?"),
                algo=(meta.algo if meta and meta.algo else "") or (config.algo if config else "?"),
                step=clip.step,
                kind=clip.kind,
                score=clip.score,
                episode_return=meta.episode_return if meta else None,
                checkpoint=meta.checkpoint if meta else "",
                frames=meta.frames if meta else 0,
                created_at=meta.created_at if meta and meta.created_at else _mtime(clip.path),
                path=clip.path,
                problem=clip.problem,
                size=_size(clip.path),
            )
        )
    return rows


def _size(path: Path) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def run_clips(run_id: str) -> list[ClipRow]:
    """One run's clips in step order."""
    rs = data.store()
    try:
        paths = rs.paths(run_id)
    except ValueError:
        return []
    return _run_clips(str(rs.root), run_id, data.tree_stamp(paths.videos), data.stamp(paths.config))


def gallery() -> list[ClipRow]:
    """Every clip of every run, newest first."""
    rows = [row for run_id in data.store().run_ids() for row in run_clips(run_id)]
    return sorted(rows, key=lambda r: (r.created_at, r.step), reverse=True)


def leaderboard() -> list[LeaderRow]:
    """The best evaluation score per game across all runs, with the clip closest to it."""
    rs = data.store()
    best: dict[str, LeaderRow] = {}
    for run_id in rs.run_ids():
        status = rs.read_status(run_id)
        config = data.read_config(run_id)
        if status is None or status.best_eval_return is None or config is None:
            continue
        clips = [c for c in run_clips(run_id) if c.score is not None and not c.problem]
        at = status.best_eval_step or 0
        clip = min(clips, key=lambda c: (abs(c.step - at), c.kind != "eval"), default=None)
        row = LeaderRow(
            game=game_name(config.env),
            env=config.env,
            best_eval_return=status.best_eval_return,
            run_id=run_id,
            run_name=config.display_name,
            algo=config.algo.upper(),
            at_step=at,
            timesteps=status.timesteps,
            clip=clip.path if clip else None,
        )
        held = best.get(config.env)
        if held is None or row.best_eval_return > held.best_eval_return:
            best[config.env] = row
    return sorted(best.values(), key=lambda r: r.game)


def timelapse(run_id: str) -> Path | None:
    """videos/timelapse.mp4 if there is anything by that name (a link too: reading it through
    ``video_bytes`` refuses it, and the page says so)."""
    path = timelapse_path(data.store().paths(run_id).videos)
    return path if os.path.lexists(path) else None


def best_model(run_id: str) -> Path | None:
    """checkpoints/best.zip if there is anything by that name; offered only after
    ``check_file`` (a link, or a ``checkpoints/`` that is a link, is refused)."""
    path = data.store().paths(run_id).checkpoints / ckpts.BEST_MODEL
    return path if os.path.lexists(path) else None


def video_bytes(path: Path) -> bytes:
    """A clip or time-lapse for ``st.video``, read through ``runstore.safeio``: given a path,
    Streamlit would open it itself and follow a planted link. Raises OSError
    (``safeio.UnsafeFileError`` for a link, a FIFO, a folder on the way that is a link)."""
    return safeio.read_bytes(path, limit=MAX_VIDEO_BYTES)


@st.cache_resource(show_spinner=False)
def _clip_server(root: str, host: str, port: int) -> ClipServer | str:
    """Once per Streamlit process and runs folder: the clip server, or why it did not start."""
    try:
        key = trust.folder_key(Path(root))  # made when missing
        if key is None:
            return f"the key of {root} could not be read"
    except (OSError, trust.NotTrustedError) as exc:  # SecretError: a FIFO, a foreign owner...
        return str(exc)
    try:
        return ClipServer(Path(root), key, host, port)
    except OSError as exc:
        return f"port {port} on {host or 'every interface'}: {exc.strerror or exc}"


def bind_address() -> str:
    """Where Streamlit serves (``server.address``; unset: every interface), so a browser that
    reaches the dashboard reaches its clips at the same address."""
    try:
        from streamlit import config

        address = config.get_option("server.address")
    except Exception:
        address = None
    return str(address).strip("[]") if address else ""


def clip_server() -> ClipServer | str:
    """The clip server of this dashboard, or why clips play from memory instead."""
    raw = os.environ.get(CLIP_PORT_ENV, "").strip() or "0"
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        return f"{CLIP_PORT_ENV}={raw!r} is not a port number"
    return _clip_server(str(data.store().root), bind_address(), int(raw))


def browser_host() -> str:
    """The host name this browser reached the dashboard by (its Host header), so the clip URL
    goes to the same machine by the same name; "localhost" without a server (AppTest)."""
    try:
        host = st.context.headers.get("Host") or ""
    except Exception:
        host = ""
    from urllib.parse import urlsplit

    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        name = ""
    return name or "localhost"


def clip_url(server: ClipServer, path: Path) -> str:
    """A signed URL of a clip for this session's browser, after the same ``runstore.safeio``
    check as every read (a link or a FIFO raises OSError, and no URL is made). Only the page
    that shows the clip calls this: whoever sees the page may fetch the clip, for an hour."""
    safeio.check_file(path, base=server.root)
    run_id, name = path.parent.parent.name, path.name
    if server.path_of(run_id, name) != path:
        raise safeio.UnsafeFileError(path, "is not a clip of a run of this runs folder")
    try:
        return server.url(run_id, name, browser_host())
    except ValueError as exc:
        raise safeio.UnsafeFileError(path, "is not named like a clip") from exc


def download_url(url: str, save_as: str = "") -> str:
    """A clip URL of ``clip_url`` as a download (an attachment; any size, streamed), saved
    as ``save_as`` (a video's title, slugified by the server's rule) when given."""
    slug = slugify(save_as) if save_as else ""
    return f"{url}&dl=1&as={slug}" if slug else f"{url}&dl=1"


def file_bytes(path: Path, limit: int) -> bytes:
    """A file for a download button, read when the button is clicked, through the same checks."""
    return safeio.read_bytes(path, limit=limit)


def check_file(path: Path) -> None:
    """Raise OSError unless ``path`` is a plain file we would serve (before offering it)."""
    safeio.check_file(path)


def checkpoint_names(run_id: str) -> list[str]:
    """What a clip can be recorded from: ``best`` first, then checkpoints newest first."""
    folder = data.store().paths(run_id).checkpoints
    names = ["best"] if ckpts.best_model(folder) else []
    return names + [c.dir.name for c in ckpts.list_checkpoints(folder) if ckpts.is_complete(c.dir)]


def media_job(run_id: str) -> str | None:
    """The clip or time-lapse the runner is making for this run, if any."""
    record = data.store().read_run(run_id)
    return record.media_job.action if record and record.media_job else None


# -- requests (the runner starts the process) ----------------------------------------------


def request_record(run_id: str, checkpoint: str | None, episodes: int = 1) -> Path:
    auth.require_control()  # before the episodes are checked: a refused browser learns nothing
    if not 1 <= episodes <= MAX_RECORD_EPISODES:
        raise ValueError(f"episodes must be between 1 and {MAX_RECORD_EPISODES}")
    params = {"checkpoint": checkpoint or None, "episodes": int(episodes)}
    return actions.request(run_id, "record", params)


def request_timelapse(run_id: str) -> Path:
    return actions.request(run_id, "timelapse")


def continue_from(run_id: str, checkpoint: str | None) -> Path:
    """Queue a new run that starts from this run's weights (its own folder and curve)."""
    text = actions.clone_yaml(run_id)
    spec = f"{run_id}/{checkpoint}" if checkpoint else run_id
    text = "\n".join(line for line in text.splitlines() if not line.startswith("init_from:"))
    _config, path = actions.submit_config(f"{text}\ninit_from: {spec}\n")
    return path
