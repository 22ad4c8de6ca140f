"""Load network weights from a checkpoint our trainer wrote (``init_from``, on-demand clips).

Only the weights are read (``set_parameters``: ``torch.load(weights_only=True)``, SB3's
pickled ``data`` entry is skipped), into a model built from *this* run's config, and only
from a run folder in the same runs folder, named by id and checkpoint name, never by a path,
and only after the checkpoint's signed manifest and the zip's hash were checked
(``checkpoints.open_trusted``): a run folder copied in from elsewhere is refused with
``NotTrustedError`` until a user trusts it. A zip from elsewhere goes through
``load_foreign_weights``, which a caller must ask for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO

from stable_baselines3.common.base_class import BaseAlgorithm

from runstore import checkpoints
from runstore.config import RunConfig
from runstore.store import RunStore
from runstore.trust import NotTrustedError

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    pass


def resolve_init_from(runs_root: Path, spec: str) -> tuple[Path, int, RunConfig]:
    """``RUN_ID`` (its newest complete checkpoint) or ``RUN_ID/best|step-N``: the model zip,
    its step and the source run's config."""
    run_id, _, name = spec.partition("/")
    store = RunStore(runs_root)
    try:
        paths = store.paths(run_id)
    except ValueError as exc:
        raise WeightsError(f"init_from: {exc}") from None
    if not paths.config.is_file():
        raise WeightsError(f"init_from: there is no run {run_id} in {store.root}")
    try:
        model, step = checkpoints.resolve_model(paths.checkpoints, name or None)
    except checkpoints.CheckpointNotFoundError as exc:
        raise WeightsError(f"init_from {spec}: {exc}") from None
    except NotTrustedError as exc:
        raise NotTrustedError(f"init_from {spec}: {exc}") from None
    return model, step, store.read_config(run_id)


def check_compatible(config: RunConfig, source: RunConfig, spec: str) -> None:
    if (source.algo, source.env) != (config.algo, config.env):
        raise WeightsError(
            f"init_from {spec}: that run trained {source.algo.upper()} on {source.env}, this one "
            f"is {config.algo.upper()} on {config.env}; weights only carry over between runs of "
            "the same algorithm and game"
        )


def load_weights(model: BaseAlgorithm, zip_path: Path, device: str | None = None) -> None:
    """Copy the policy (and optimizer) weights of a checkpoint of this runs folder into
    ``model``: checked against its signed manifest, read from the checked file object."""
    with checkpoints.open_trusted(zip_path) as fh:
        _set_parameters(model, fh, zip_path, device)


def _set_parameters(
    model: BaseAlgorithm, source: str | BinaryIO, zip_path: Path, device: str | None
) -> None:
    try:
        model.set_parameters(source, exact_match=True, device=device or model.device)  # type: ignore[arg-type]
    except (RuntimeError, ValueError, KeyError) as exc:
        raise WeightsError(
            f"the weights in {zip_path} do not fit this run's network ({exc}); the policy, "
            "policy_kwargs, frame stack and game must match the run they came from"
        ) from exc


def load_foreign_weights(model: BaseAlgorithm, zip_path: Path, confirmed: bool) -> None:
    """A model zip from outside the runs folder: only when the user explicitly accepted it.

    SB3 zips are pickle-based archives; only the weights are read here (no unpickling of
    SB3's ``data``), yet a zip from an unknown source deserves a deliberate yes.
    """
    if not confirmed:
        raise WeightsError(
            f"{zip_path} was not written by this trainer. SB3 model zips can carry pickled "
            "objects; load it only if you trust where it came from, and say so explicitly "
            "(--trust-foreign-zip)."
        )
    log.warning("loading weights from a foreign zip %s (explicitly allowed)", zip_path)
    _set_parameters(model, str(zip_path), zip_path, None)
