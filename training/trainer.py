"""Train one run in its folder: fresh, or resumed from its newest complete checkpoint.

A resumed run is the same run: ``reset_num_timesteps=False`` with the *remaining* steps keeps
the step count, the schedules (learning rate, DQN's epsilon) and the TensorBoard folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from machine.failures import Diagnosis, explain
from runstore import checkpoints
from runstore.config import RunConfig, read_run_config
from runstore.config_schema import TORCH_THREADS_ENV
from runstore.paths import RunPaths
from runstore.trust import NOT_TRUSTED, NotTrustedError, SecretError
from training.callbacks import RunCallback, StopReason, check_finite
from training.envs import make_train_env
from training.evaluation import Evaluator
from training.memory_format import use_channels_last, wants_channels_last
from training.sb3_kwargs import ALGORITHMS, model_kwargs, schedule_overrides
from training.status import StatusWriter
from training.system_sampler import SystemSampler
from training.weights import check_compatible, load_weights, resolve_init_from

log = logging.getLogger(__name__)

TB_LOG_NAME = "train"
DISK_RESERVE_BYTES = 256 * 1024


def torch_threads(cores: int | None = None) -> int:
    """Torch intra-op threads: one per core (measured; README, Performance).

    The env and the network take turns (SB3 steps the env, then runs the policy), so our own
    env threads and torch do not compete. Other work on the machine does: on 2 busy cores one
    thread beat two (163 against 97 fps), on 2 quiet ones two won (about 245 against 175).
    We take the quiet case; ``RETRO_ML_TORCH_THREADS=1`` helps on a machine kept busy, and the
    runner sets it to each run's share of the cores when several train at once
    (runner/resources.py)."""
    override = os.environ.get(TORCH_THREADS_ENV, "").strip()
    if override:
        return max(1, int(override))
    return max(1, cores or os.cpu_count() or 1)


class DeviceUnavailableError(RuntimeError):
    pass


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when usable; an explicit CUDA request on a machine without it fails
    loudly instead of silently training on the CPU for days."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            available = torch.cuda.is_available()
        if not available:
            build = torch.version.cuda or "none (CPU-only build)"
            # torch explains *why* (driver too old, no driver) only in a warning; keep it.
            why = " ".join(str(w.message) for w in caught)
            raise DeviceUnavailableError(
                f"CUDA was requested (device: {requested}) but torch.cuda.is_available() is "
                f"False (torch {torch.__version__}, CUDA build {build}). Set device: cpu or "
                "auto, or install a CUDA build of PyTorch that matches the NVIDIA driver."
                + (f" PyTorch said: {why}" if why else "")
            )
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"CUDA was requested (device: {requested}) but only "
                f"{torch.cuda.device_count()} GPU(s) are visible; use cuda:0..."
            )
    return requested


@dataclass
class Outcome:
    outcome: str  # completed | stopped | failed
    reason: str


class Trainer:
    def __init__(self, paths: RunPaths, config: RunConfig, status: StatusWriter):
        self.paths = paths
        self.config = config
        self.status = status
        self.stop = StopReason()
        self.model: BaseAlgorithm | None = None
        self.env: VecEnv | None = None
        self.evaluator: Evaluator | None = None
        self.sampler: SystemSampler | None = None

    def request_stop(self, *_: object) -> None:
        self.stop.request("stop")

    def run(self) -> Outcome:
        start_step = self.prepare()
        remaining = self.config.n_timesteps - start_step
        if remaining <= 0:
            return Outcome("completed", "already trained for n_timesteps")
        if self.stop.reason is None:
            self._learn(remaining, start_step)
        assert self.model is not None
        check_finite(self.model.policy, self.model.num_timesteps)
        self.save_checkpoint()
        if self.stop.reason == "stop":
            return Outcome("stopped", f"stopped on request at step {self.model.num_timesteps}")
        if self.stop.reason == "time_budget":
            return Outcome("completed", f"time budget of {self.config.time_budget:.0f} s spent")
        if self.stop.reason == "score":
            return Outcome("completed", self.stop.detail)
        return Outcome("completed", f"trained for {self.model.num_timesteps} steps")

    def prepare(self, tensorboard: bool = True) -> int:
        """Device, threads, the env and the model (resumed from the newest complete checkpoint,
        or fresh, with SB3's TensorBoard logging unless ``tensorboard`` is False); returns the
        step training starts from. ``run`` calls it; the benchmark too, to time ``learn``
        without tracking (bench/bench_train.py)."""
        config = self.config
        device = resolve_device(config.device)
        torch.set_num_threads(torch_threads(len(os.sched_getaffinity(0))))
        self.status.write(0, total_timesteps=config.n_timesteps, device=device, phase="starting")
        ckpt, skipped = checkpoints.latest_complete(self.paths.checkpoints)
        for bad in skipped:
            log.warning("checkpoint %s is incomplete or corrupt; skipped", bad.dir.name)
        start_step = ckpt.step if ckpt else 0
        seed = (config.seed or 0) + start_step
        set_random_seed(seed)
        self.env = make_train_env(config, seed=seed)
        if ckpt is not None:
            self.model = self._load(ckpt, device)
            start_step = self.model.num_timesteps
            self.status.write(start_step, start_timesteps=start_step, resumed_from=ckpt.dir.name)
            log.info("resumed from %s at step %d", ckpt.dir.name, start_step)
        else:
            algo = ALGORITHMS[config.algo]
            assert config.hyperparams is not None
            self.model = algo(
                config.hyperparams.policy,
                self.env,
                seed=config.seed,
                device=device,
                tensorboard_log=str(self.paths.tb) if tensorboard else None,
                verbose=0,
                **model_kwargs(config),
            )
            if config.init_from:
                self._init_from(config.init_from, device)
        if wants_channels_last(config.channels_last, self.model.policy, self.model.device):
            convs = use_channels_last(self.model.policy)
            log.info("%d convolutions in channels-last layout", convs)
        return start_step

    def _learn(self, remaining: int, start_step: int) -> None:
        """``learn`` with the tracking callback, evaluations and the system sampler."""
        config, model = self.config, self.model
        assert model is not None
        started, cpu = time.perf_counter(), time.process_time()
        if config.eval_every:
            self.evaluator = Evaluator(config, self.paths, self.status, self.env)
            self.evaluator.stop_requested = lambda: self.stop.reason == "stop"
        callback = RunCallback(
            status=self.status,
            stop=self.stop,
            save_checkpoint=self.save_checkpoint,
            checkpoint_every=config.checkpoint_every or config.n_timesteps,
            start_step=start_step,
            time_budget=config.time_budget,
            evaluate=self.evaluator,
            eval_every=config.eval_every or 0,
            stop_at_score=config.stop_at_score,
        )
        # CPU, RSS and GPU of this run into TB system/* and the status
        self.sampler = SystemSampler(
            lambda: model.num_timesteps, lambda: callback.writer, self.status.status
        ).start()
        model.learn(
            total_timesteps=remaining,
            callback=callback,
            reset_num_timesteps=start_step == 0,
            tb_log_name=TB_LOG_NAME,
            progress_bar=False,
        )
        self._log_speed(
            model.num_timesteps - start_step,
            time.perf_counter() - started,
            time.process_time() - cpu,
            callback.tracking_seconds,
        )
        if self.stop.reason != "stop":
            callback.final_evaluation()

    def _log_speed(
        self, steps: int, seconds: float, cpu_seconds: float, tracking: float = 0.0
    ) -> None:
        """One line the benchmark reads (bench/bench_train.py): the speed of ``learn`` alone,
        without interpreter start-up or env construction; CPU seconds are this process's (all
        its threads), the measure that survives a machine shared with other work; tracking
        seconds are those the training loop spent in tracking code."""
        log.info(
            "learned %d steps in %.3f s (%.1f steps/s), %.3f CPU s, tracking %.3f s",
            steps,
            seconds,
            steps / max(seconds, 1e-9),
            cpu_seconds,
            tracking,
        )

    def _load(self, ckpt: checkpoints.Checkpoint, device: str) -> BaseAlgorithm:
        """Every file is a pickle (SB3's ``data``, the VecNormalize statistics, the replay
        buffer): each is opened through ``checkpoints.open_trusted`` (signed here, same
        bytes) and loaded from that file object; ``NotTrustedError`` ends the run first."""
        algo = ALGORITHMS[self.config.algo]
        checkpoints.check_signed(ckpt.model)  # refuse before anything is built or read
        if ckpt.vecnormalize is not None and isinstance(self.env, VecNormalize):
            with checkpoints.open_trusted(ckpt.vecnormalize) as fh:
                vecnormalize = pickle.load(fh)  # what VecNormalize.load does, from the checked fd
            vecnormalize.set_venv(self.env.venv)
            self.env = vecnormalize
        with checkpoints.open_trusted(ckpt.model) as fh:
            model = algo.load(
                fh,
                env=self.env,
                device=device,
                custom_objects=schedule_overrides(self.config),
            )
        model.tensorboard_log = str(self.paths.tb)
        if ckpt.replay_buffer is not None and self.config.save_replay_buffer:
            with checkpoints.open_trusted(ckpt.replay_buffer) as fh:
                model.load_replay_buffer(fh)
            log.info("replay buffer loaded: %d transitions", model.replay_buffer.size())
        return model

    def save_checkpoint(self) -> None:
        model = self.model
        assert model is not None
        step = model.num_timesteps
        self.status.write(step, phase="saving")
        staging = checkpoints.staging_dir(self.paths.checkpoints, step)
        model.save(staging / checkpoints.MODEL)
        if self.config.save_replay_buffer and hasattr(model, "replay_buffer"):
            model.save_replay_buffer(staging / checkpoints.REPLAY_BUFFER)
        if isinstance(self.env, VecNormalize):
            self.env.save(str(staging / checkpoints.VECNORMALIZE))
        ckpt = checkpoints.commit(staging, step, {"algo": self.config.algo})
        checkpoints.prune(self.paths.checkpoints, self.config.keep_checkpoints)
        self.status.write(step, phase="training", last_checkpoint=ckpt.dir.name)
        log.info("checkpoint %s", ckpt.dir.name)

    def _init_from(self, spec: str, device: str) -> None:
        """A new run that starts from another run's weights (its own folder and curve)."""
        assert self.model is not None
        source, step, source_config = resolve_init_from(self.paths.dir.parent, spec)
        check_compatible(self.config, source_config, spec)
        load_weights(self.model, source, device)
        log.info("weights loaded from %s (%s, step %d)", spec, source.parent.name, step)

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.evaluator is not None:
            with contextlib.suppress(Exception):
                self.evaluator.close()
        if self.env is not None:
            try:
                self.env.close()
            except Exception:  # workers may already be gone (killed, broken pipe)
                log.debug("env close failed", exc_info=True)


def train(run_dir: Path) -> int:
    """Entry point of ``python -m training RUN_DIR``; returns the exit code."""
    paths = RunPaths(Path(run_dir).absolute())
    linked = [p.name for p in (paths.logs, paths.checkpoints, paths.tb, paths.videos)]
    linked = [name for name in linked if (paths.dir / name).is_symlink()]
    if linked:  # planted links would make us write (and prune) outside the run folder
        StatusWriter(paths).write(
            phase="finished",
            outcome="failed",
            reason=f"{', '.join(linked)} in the run folder is a symlink; refusing to write "
            "through it (replace it with a real folder)",
        )
        return 1
    paths.logs.mkdir(parents=True, exist_ok=True)
    _setup_logging(paths)
    with contextlib.suppress(OSError):
        paths.disk_reserve.write_bytes(bytes(DISK_RESERVE_BYTES))
    status = StatusWriter(paths)
    trainer: Trainer | None = None
    try:
        stored = read_run_config(paths.config)  # tolerant: an older/newer folder still runs
        for warning in stored.warnings:
            log.warning("%s", warning)
        trainer = Trainer(paths, stored.config, status)
        signal.signal(signal.SIGTERM, trainer.request_stop)
        signal.signal(signal.SIGINT, trainer.request_stop)
        result = trainer.run()
    except BaseException as exc:  # noqa: BLE001 - every failure must end in status.json
        return _fail(paths, status, exc, trainer)
    finally:
        if trainer is not None:
            trainer.close()
        paths.disk_reserve.unlink(missing_ok=True)
    status.write(phase="finished", outcome=result.outcome, reason=result.reason)
    log.info("%s: %s", result.outcome, result.reason)
    return 0


def _not_trusted(exc: NotTrustedError) -> Diagnosis:
    """A refusal to load an imported checkpoint, in the run's own words (no classifier)."""
    return Diagnosis(
        code="not_trusted",
        title=f"Refused: {NOT_TRUSTED}",
        meaning=(
            "The checkpoint it would load (its own, or the init_from run's) was not written "
            "by this runs folder (copied in from elsewhere, or changed since). Model zips, "
            "replay buffers and VecNormalize files are Python pickles that can run code "
            "when loaded, so nothing of it was loaded: no training step was taken and no "
            "file was changed."
        ),
        steps=(
            "Viewing its curves and clips is safe.",
            "If you know where it came from and trust it: python -m runner trust "
            "RUN_ID, with the run named in the reason (or the Trust button on its Run page), "
            "then resume or queue again.",
            "Otherwise delete the run, or start a fresh run with its config (Clone).",
        ),
        evidence=_last_line(exc),
    )


def _fail(
    paths: RunPaths, status: StatusWriter, exc: BaseException, trainer: Trainer | None
) -> int:
    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, NotTrustedError) and not isinstance(exc, SecretError):
        diagnosis = _not_trusted(exc)  # a refusal to load; an unsafe key is no import
    else:
        diagnosis = explain(text, type(exc).__name__)
    if diagnosis.code == "disk_full":
        # Free the ballast and what the failed save took, so the reason below still fits.
        paths.disk_reserve.unlink(missing_ok=True)
        checkpoints.prune(paths.checkpoints, trainer.config.keep_checkpoints if trainer else 1000)
    model = trainer.model if trainer is not None else None
    try:  # the reason first: on a full disk it is the one thing that must get written
        status.write(
            model.num_timesteps if model is not None else None,
            phase="finished",
            outcome="failed",
            reason=_last_line(exc)
            if diagnosis.code == "not_trusted"
            else f"{diagnosis.title}: {_last_line(exc)}",
            diagnosis=diagnosis,
        )
    except OSError:
        log.exception("could not write status.json")
    log.error("training failed:\n%s", text)
    with contextlib.suppress(OSError):
        paths.traceback.write_text(text, encoding="utf-8")
    return 1


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _setup_logging(paths: RunPaths) -> None:
    from logging.handlers import RotatingFileHandler

    handler = RotatingFileHandler(paths.train_log, maxBytes=5 * 2**20, backupCount=2)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler, logging.StreamHandler()],
    )
