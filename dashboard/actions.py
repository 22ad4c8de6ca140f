"""What the dashboard's buttons do: write one file through ``runstore`` and nothing else.

Each function checks ``require_control()`` first, here where the action happens, so a client
that bypasses the UI still meets the LAN rule. The runner validates every request (run exists,
transition legal) before acting on it; the dashboard never signals a process itself.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dashboard import auth, data
from runstore import sweeps
from runstore.config import (
    ConfigError,
    RunConfig,
    format_validation_errors,
    parse_config,
    to_yaml,
)
from runstore.paths import slugify
from runstore.reports import write_report_request
from runstore.settings import RunnerSettings, SettingsError
from runstore.settings import save_settings as _save
from runstore.sweep_config import check_sweep
from runstore.sweeps import write_sweep_request

#: Who asked, as the runner logs it in run.json (every request the dashboard writes).
SOURCE = "dashboard"


def submit_config(yaml_text: str) -> tuple[RunConfig, Path]:
    """Validate a config exactly as the runner will, then drop it into the queue.

    Raises ConfigError (nothing written) when the runner would reject it.
    """
    auth.require_control()
    config = parse_config(yaml_text.encode("utf-8"))
    # Unique without coordination: two browsers queueing the same name in one second.
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    name = f"{stamp}-{slugify(config.display_name)}.yaml"
    return config, data.store().submit(yaml_text, name)


def validate_config(yaml_text: str) -> tuple[RunConfig | None, list[str]]:
    """The resolved config, or the problems the runner would report (no file written)."""
    try:
        return parse_config(yaml_text.encode("utf-8")), []
    except ConfigError as exc:
        return None, exc.problems


def request(run_id: str, action: str, params: dict[str, Any] | None = None) -> Path:
    """Write one request file for the runner (it checks the action against the run's state)."""
    auth.require_control()
    return data.store().write_request(run_id, action, source=SOURCE, params=params)


def report(
    run_ids: list[str], group_seeds: bool = False, pdf: bool = False, sweep: str | None = None
) -> Path:
    """Ask the runner for a report of these runs, or of a sweep (it runs ``python -m
    reports`` as a job)."""
    auth.require_control()
    return write_report_request(data.store().root, run_ids, group_seeds, pdf, SOURCE, sweep)


def stop(run_id: str) -> Path:
    return request(run_id, "stop")


def pause(run_id: str) -> Path:
    return request(run_id, "pause")


def resume(run_id: str) -> Path:
    """Continue a paused run, or restart an ended one from its latest checkpoint."""
    return request(run_id, "resume")


def delete(run_id: str) -> Path:
    """Ask the runner to delete a run (a live one is stopped first, by the runner)."""
    return request(run_id, "delete")


def clone_yaml(run_id: str) -> str:
    """The run's resolved config as a new-run form starting point (new seed, no name clash)."""
    config = data.read_config(run_id)
    if config is None:
        raise ConfigError([f"run {run_id} has no readable config.yaml to clone"])
    name = config.display_name
    match = re.match(r"^(.*?)-copy(\d*)$", name)
    base = match[1] if match else name
    clone = config.model_copy(update={"name": f"{base[:55]}-copy", "seed": None})
    return to_yaml(clone)


def save_settings(doc: dict) -> Path:
    """Validate runner settings with their schema and write runs/settings.yaml."""
    auth.require_control()
    rs = data.store()
    try:
        settings = RunnerSettings.model_validate(doc)
    except ValidationError as exc:
        raise SettingsError(rs.root / "settings.yaml", format_validation_errors(exc)) from None
    return _save(rs.root, settings)


def submit_sweep(doc: dict[str, Any]) -> tuple[str, Path]:
    """Check a sweep document as the runner will (``check_sweep``), then drop it into the
    queue through the same ``RunStore.submit`` as a run; the runner makes the sweep folder.

    Raises ConfigError (nothing written) when the runner would reject it.
    """
    auth.require_control()
    sweep = check_sweep(doc)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    name = f"{stamp}-sweep-{slugify(sweep.base.display_name)}.yaml"
    return sweep.base.display_name, data.store().submit(text, name)


def sweep_request(sweep_id: str, action: str, params: dict[str, Any] | None = None) -> Path:
    """Ask the runner to stop, pause, resume or promote a whole sweep (it checks again)."""
    auth.require_control()
    return write_sweep_request(
        sweeps.sweep_paths(data.store().root, sweep_id), action, source=SOURCE, params=params
    )
