"""The one SB3 callback that tracks a run: status, episodes, checkpoints, eval, stop, NaN guard.

One callback instead of a CallbackList keeps the per-step cost to a single Python call; the
work itself runs only when a step crosses a threshold (a second passed, an episode ended, a
checkpoint is due), never on every step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from tensorboard.compat.proto.event_pb2 import Event, SessionLog

from runstore import tags
from training.status import StatusWriter

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from training.evaluation import EvalResult

log = logging.getLogger(__name__)

NAN_CHECK_SECONDS = 5.0


class StopReason:
    """Why training ends early: the first reason given wins, with its words for the outcome."""

    def __init__(self) -> None:
        self.reason: str | None = None  # "stop" (request/signal), "time_budget" or "score"
        self.detail = ""

    def request(self, reason: str, detail: str = "") -> None:
        if self.reason is None:
            self.reason, self.detail = reason, detail


class RunCallback(BaseCallback):
    def __init__(
        self,
        status: StatusWriter,
        stop: StopReason,
        save_checkpoint: Callable[[], None],
        checkpoint_every: int,
        start_step: int,
        time_budget: float | None,
        evaluate: Callable[[BaseAlgorithm, int, Any, bool], EvalResult | None] | None = None,
        eval_every: int = 0,
        stop_at_score: float | None = None,
    ):
        super().__init__()
        self.status = status
        self.stop = stop
        self.save_checkpoint = save_checkpoint
        self.checkpoint_every = checkpoint_every
        self.start_step = start_step
        self.time_budget = time_budget
        self.next_checkpoint = (start_step // checkpoint_every + 1) * checkpoint_every
        self.evaluate = evaluate if eval_every > 0 else None
        self.eval_every = eval_every
        self.next_eval = (start_step // eval_every + 1) * eval_every if eval_every > 0 else 0
        self.last_eval_step: int | None = None
        self.stop_at_score = stop_at_score
        #: SB3's TensorBoard writer, found when training starts (None without TensorBoard):
        #: what the trainer's system sampler and the evaluations write their scalars to.
        self.writer: SummaryWriter | None = None
        self._next_nan_check = 0.0
        #: Main-thread seconds spent tracking inside learn (this callback, checkpoints, SB3's
        #: TensorBoard writes): the benchmark's direct measure of tracking overhead, free of
        #: the machine noise that an on/off comparison of whole runs carries.
        self.tracking_seconds = 0.0

    def _on_training_start(self) -> None:
        for fmt in self.model.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                self.writer = fmt.writer
                fmt.write = self._timed(fmt.write)  # type: ignore[method-assign]
        if self.start_step > 0 and self.writer is not None:
            # Tell TensorBoard the run restarted here: steps past the checkpoint written by
            # the crashed session are purged instead of drawn twice.
            event = Event(
                step=self.start_step,
                wall_time=time.time(),
                session_log=SessionLog(status=SessionLog.START),
            )
            self.writer._get_file_writer().add_event(event)
        self.status.write(self.num_timesteps, phase="training")

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.tracking_seconds += time.perf_counter() - started

        return timed

    def _on_step(self) -> bool:
        started = time.perf_counter()
        try:
            return self._track_step()
        finally:
            self.tracking_seconds += time.perf_counter() - started

    def _track_step(self) -> bool:
        n = self.num_timesteps
        dones = self.locals.get("dones")
        if dones is not None and dones.any():
            self._episodes(n, dones)
        self.status.tick(n)
        if n >= self.next_checkpoint:
            self.next_checkpoint = (n // self.checkpoint_every + 1) * self.checkpoint_every
            if n < self.model._total_timesteps:  # the last step: the trainer saves after learn
                self.save_checkpoint()
        if self.evaluate is not None and n >= self.next_eval:
            self.next_eval = (n // self.eval_every + 1) * self.eval_every
            self.last_eval_step = n
            result = self.evaluate(self.model, n, self.writer, n >= self.model._total_timesteps)
            self._judge(result)
        if self.time_budget is not None and self.status.train_seconds >= self.time_budget:
            self.stop.request("time_budget")
        return self.stop.reason is None

    def _judge(self, result: EvalResult | None) -> None:
        """Stop once an evaluation's mean return reaches ``stop_at_score``: the agent wins,
        and the run's outcome says how soon (the time-to-threshold users compare)."""
        target = self.stop_at_score
        if result is None or target is None or result.mean < target:
            return
        minutes = self.status.train_seconds / 60
        self.stop.request(
            "score",
            f"evaluation score {result.mean:g} reached stop_at_score {target:g} at step "
            f"{result.step} after {minutes:.1f} min of training",
        )

    def final_evaluation(self) -> None:
        """Evaluate the final model too, unless an evaluation just ran at this step (the
        last rollout's, which filmed as final: see ``_track_step``)."""
        n = self.model.num_timesteps
        if self.evaluate is not None and self.last_eval_step != n:
            self.last_eval_step = n
            self.evaluate(self.model, n, self.writer, True)

    def _episodes(self, n: int, dones: np.ndarray) -> None:
        infos = self.locals.get("infos") or ()
        n_envs = len(dones)
        for i in np.flatnonzero(dones):
            episode = infos[i].get("episode") if i < len(infos) else None
            if episode is None:  # episodic life: a life ended, not the game
                continue
            ret, length = float(episode["r"]), int(episode["l"])
            self.status.episode(ret)
            if self.writer is not None:
                # Each env's own step inside this vector step, so no two points share a step.
                step = n - n_envs + int(i) + 1
                self.writer.add_scalar(tags.EPISODE_RETURN, ret, step)
                self.writer.add_scalar(tags.EPISODE_LENGTH, length, step)

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        if now >= self._next_nan_check:
            self._next_nan_check = now + NAN_CHECK_SECONDS
            check_finite(self.model.policy, self.num_timesteps)
            self.tracking_seconds += time.monotonic() - now


def check_finite(policy: torch.nn.Module, step: int) -> None:
    """Raise when training has diverged; SB3 would otherwise go on with NaN weights."""
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if not torch.isfinite(param).all():
                raise FloatingPointError(
                    f"NaN or inf in the model parameters ({name}) at step {step}: the loss "
                    "diverged. Lower learning_rate, check reward scale, or use max_grad_norm."
                )
