"""Runner settings kept in the runs folder (``settings.yaml``): written by the dashboard's
Settings page (or by hand), read by the runner at start-up and whenever the file changes.

The defaults here apply to queue files that leave a key out; a key in a queue file always
wins, and a flag given on the runner's command line wins over the file. The fields use the
config schema's own types and bounds, so the file is validated by the same code as a run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from runstore import safeio
from runstore.atomic import atomic_write_text
from runstore.config import RunConfig, format_validation_errors
from runstore.hyperparams import MAX_STEPS, Float, Int, StrictModel
from runstore.yamlsafe import MAX_CONFIG_BYTES, ConfigSyntaxError, load_yaml_mapping

SETTINGS_FILE = "settings.yaml"


class RunnerSettings(StrictModel):
    max_concurrent: Int = Field(1, ge=1, le=64, description="runs training at the same time")
    default_device: str = Field(
        "auto", description="device for runs whose config does not name one (auto, cpu, cuda)"
    )
    checkpoint_every: Int | None = Field(
        None, ge=1, le=MAX_STEPS, description="steps between checkpoints when a config does not say"
    )
    keep_checkpoints: Int | None = Field(
        None, ge=1, le=1000, description="checkpoints kept per run when a config does not say"
    )
    stop_grace: Float = Field(
        30.0,
        ge=1,
        le=3600,
        description="seconds a stop may take before the process is killed; under a second "
        "leaves no time to save a checkpoint",
    )

    ray_address: str = Field(
        "",
        max_length=256,
        description="a Ray cluster to place runs on (HOST:PORT, or auto for one started on "
        "this machine); empty: train on this machine",
    )

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str) -> str:
        return check_ray_address(value)

    @field_validator("default_device")
    @classmethod
    def _device(cls, value: str) -> str:
        return RunConfig._device(value)  # the run config's own rule

    def config_defaults(self) -> dict[str, Any]:
        """Keys merged under every queue file (the file's own keys win)."""
        out: dict[str, Any] = {}
        if self.default_device != "auto":
            out["device"] = self.default_device
        if self.checkpoint_every is not None:
            out["checkpoint_every"] = self.checkpoint_every
        if self.keep_checkpoints is not None:
            out["keep_checkpoints"] = self.keep_checkpoints
        return out


#: A Ray cluster's address: ``auto`` (the cluster started on this machine) or the head's
#: ``HOST:PORT``, as ``ray start --address`` takes it.
_RAY_ADDRESS = re.compile(r"(?:auto|[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5})")


def check_ray_address(value: str) -> str:
    """A Ray address, or "" for none; anything else is refused with the forms it may take."""
    value = value.strip()
    if value and not _RAY_ADDRESS.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Ray address: write HOST:PORT (the head's, e.g. "
            "192.168.1.10:6379), or auto for a cluster started on this machine"
        )
    return value


class SettingsError(ValueError):
    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def settings_path(root: Path) -> Path:
    return Path(root) / SETTINGS_FILE


def parse_settings(data: bytes, path: Path = Path(SETTINGS_FILE)) -> RunnerSettings:
    try:
        doc = load_yaml_mapping(data)
    except ConfigSyntaxError as exc:
        raise SettingsError(path, [str(exc)]) from None
    try:
        return RunnerSettings.model_validate(doc)
    except ValidationError as exc:
        raise SettingsError(path, format_validation_errors(exc, RunnerSettings)) from None


def _unusable(path: Path, exc: OSError) -> SettingsError:
    """A SettingsError that says what is wrong with the path itself and how to fix it, instead
    of an OSError traceback on the Settings page (a folder here is an easy slip: ``mkdir -p
    runs/settings.yaml``, or a bind mount of a file that did not exist)."""
    if path.is_dir():
        problem = (
            "is a folder, not a file: remove or rename that folder (the settings are one YAML "
            "file), then save the settings again"
        )
    else:
        problem = f"cannot be used ({exc.strerror or exc}): fix its permissions or remove it"
    return SettingsError(path, [problem])


def load_settings(root: Path) -> RunnerSettings:
    """The settings in ``root``; the defaults when there is no file. Raises SettingsError,
    also when the path cannot be read (a folder, no permission)."""
    path = settings_path(root)
    try:  # never through a link, never blocked by a FIFO, never unbounded (runstore.safeio)
        data = safeio.read_bytes(path, limit=MAX_CONFIG_BYTES, base=path.parent)
    except FileNotFoundError:
        return RunnerSettings()
    except safeio.UnsafeFileError as exc:
        if os.path.isdir(path) and not os.path.islink(path):
            raise _unusable(path, exc) from None
        problem = f"{exc.reason}: replace it with a plain YAML file, or remove it"
        raise SettingsError(path, [problem]) from None
    except OSError as exc:
        raise _unusable(path, exc) from None
    return parse_settings(data, path)


def save_settings(root: Path, settings: RunnerSettings) -> Path:
    """Write the settings atomically. Raises SettingsError when the path cannot take a file
    (a folder is never replaced: it may hold something the user wants)."""
    path = settings_path(root)
    text = (
        "# Retro ML runner settings (the dashboard's Settings page writes this file).\n"
        + yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    )
    if path.is_dir():
        raise _unusable(path, IsADirectoryError(21, "Is a directory"))
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise _unusable(path, exc) from None
    return path
