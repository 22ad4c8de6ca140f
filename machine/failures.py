"""Turn the text of a failed training run into a diagnosis a hobbyist can act on.

A crash in deep RL rarely explains itself: "CUDA error: no kernel image is available for execution
on the device" means "your PyTorch is too old for your GPU", and a process that vanished with
SIGKILL usually means "the replay buffer did not fit in RAM". This module maps the real messages
that PyTorch, the CUDA runtime, cuDNN, NCCL, NumPy, Gymnasium and ale-py print (the rules are in
:mod:`machine.failure_rules`; the test corpus in ``tests/data/error_corpus/`` holds the messages,
each with its source) to a :class:`~runstore.models.Diagnosis`: a stable code, a plain title,
what it means, and steps to fix it.

It never imports torch: the runner and the trainer both explain failures with it, and the runner
must stay light and never hold a CUDA context.
"""

from __future__ import annotations

import signal
from typing import TypedDict, Unpack

from machine.failure_rules import DIAG_CMD, RULES, Rule
from machine.util import gib
from runstore.models import Diagnosis

__all__ = ["CODES", "Diagnosis", "diagnose", "explain"]

# A process killed by SIGKILL whose peak RSS reached this share of the machine's memory was most
# likely chosen by the kernel's out-of-memory killer (it picks the biggest process).
OOM_KILL_RSS_FRACTION = 0.5

_SCAN_LIMIT = 200_000  # characters from the end of the text; a traceback ends there

CODES: tuple[str, ...] = (
    *(rule.code for rule in RULES),
    "killed",
    "native_crash",
    "unexpected_error",
)

_CUDA_CODES = frozenset(
    {
        "cuda_driver_too_old",
        "nvidia_driver_missing",
        "cuda_no_kernel_image",
        "cuda_oom",
        "cuda_device_assert",
        "cuda_illegal_memory_access",
        "cudnn_error",
        "cuda_init_failed",
        "nccl_error",
    }
)
# Codes whose text match is more precise than the match by exception type of the key's rule.
_REFINES: dict[str, frozenset[str]] = {
    "cuda_error": _CUDA_CODES,
    "env_not_found": frozenset({"ale_not_registered"}),
    "nccl_error": _CUDA_CODES - {"nccl_error"},
}

_CRASH_SIGNALS = {
    int(getattr(signal, name)): name
    for name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE")
    if hasattr(signal, name)
}
_SIGKILL = 9


def _short_type(exc_type: str | None) -> str | None:
    if not exc_type:
        return None
    return exc_type.strip().rsplit(".", 1)[-1] or None


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end != -1 else len(text)].strip()
    return line[:300]


def _last_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""


def _match_text(text: str) -> tuple[Rule, str] | None:
    """The first rule (in specificity order) with a pattern in the text, and the line it hit."""
    for rule in RULES:
        for pattern in rule.patterns:
            match = pattern.search(text)
            if match:
                return rule, _line_at(text, match.start())
    return None


def _evidence(rule: Rule, text: str, exc_type: str) -> str:
    """The most telling line for a match made by exception type: the rule's own pattern if the
    text has it, else the line that names the exception, else the last line."""
    for pattern in rule.patterns:
        match = pattern.search(text)
        if match:
            return _line_at(text, match.start())
    named = [line.strip() for line in text.splitlines() if f"{exc_type}:" in line]
    if named:
        return named[-1][:300]
    line = _last_line(text)
    return f"{exc_type}: {line}" if line else exc_type


def _host_oom_rule() -> Rule:
    return next(rule for rule in RULES if rule.code == "host_oom")


def _signal_diagnosis(
    sig: int, rss_bytes: int | None, mem_total_bytes: int | None
) -> Diagnosis | None:
    if sig == _SIGKILL:
        if rss_bytes and mem_total_bytes and rss_bytes >= OOM_KILL_RSS_FRACTION * mem_total_bytes:
            evidence = (
                f"killed by SIGKILL at {gib(rss_bytes)} resident memory, out of "
                f"{gib(mem_total_bytes)} on this machine"
            )
            return _host_oom_rule().diagnosis("", evidence)
        return Diagnosis(
            code="killed",
            title="The training process was killed (SIGKILL)",
            meaning=(
                "Something stopped the process at once, leaving it no chance to report an error. "
                "Most often this is the system's out-of-memory killer; it can also be a forced "
                "stop or a container limit."
            ),
            steps=(
                "On Linux, look in the kernel log: dmesg -T | grep -i -E 'killed process|out of "
                "memory' (or journalctl -k).",
                "Compare the run's memory use (Run page) with the machine's RAM; if memory ran "
                "out, lower hyperparams.buffer_size (DQN) or hyperparams.n_envs.",
                "Resume the run from its last checkpoint.",
            ),
            severity="warning",
            evidence="process ended by SIGKILL",
        )
    name = _CRASH_SIGNALS.get(sig)
    if name is None:
        return None
    return Diagnosis(
        code="native_crash",
        title=f"The training process crashed inside native code ({name})",
        meaning=(
            "A library written in C, C++ or CUDA (PyTorch, ale-py, OpenCV or the GPU driver) "
            "crashed, so Python could not report an error."
        ),
        steps=(
            "Resume or rerun: if it does not repeat, it was a one-off.",
            "Set the environment variable PYTHONFAULTHANDLER=1 so the next crash writes a Python "
            "stack trace into the run's logs/.",
            "Upgrade or reinstall torch, ale-py and opencv-python-headless, and update the "
            "NVIDIA driver.",
            "Try device: cpu and vec_env: dummy to narrow down which part crashes.",
        ),
        evidence=f"process ended by {name}",
    )


def diagnose(
    text: str,
    exc_type: str | None = None,
    *,
    exit_signal: int | None = None,
    rss_bytes: int | None = None,
    mem_total_bytes: int | None = None,
) -> Diagnosis | None:
    """Classify a failure, or return None when nothing we know matched.

    ``text`` is the exception message or a traceback or the tail of a log; ``exc_type`` is the
    exception's class name ("OutOfMemoryError" or "torch.OutOfMemoryError"). ``exit_signal`` is
    the signal that ended the process (a negative ``Popen.returncode`` is accepted as is), and
    ``rss_bytes`` / ``mem_total_bytes`` its peak resident memory and the memory it could use (the
    machine's RAM, or the container's limit): a SIGKILL near that limit is the OOM killer.

    The exception type decides first, since it is the actual failure; then the text is matched
    against the rules in order of specificity; then the exit signal.
    """
    text = (text or "")[-_SCAN_LIMIT:]
    short = _short_type(exc_type)
    sig = abs(exit_signal) if exit_signal else None

    if sig == _SIGKILL and rss_bytes and mem_total_bytes:
        found = _signal_diagnosis(sig, rss_bytes, mem_total_bytes)
        if found is not None and found.code == "host_oom":
            return found

    text_match = _match_text(text)
    exc_rule = next((rule for rule in RULES if short and short in rule.exc_types), None)
    if exc_rule is not None:
        # A generic exception type (AcceleratorError, NamespaceNotFound) defers to the text when
        # the text names a more specific case of the same family.
        if text_match is not None and text_match[0].code in _REFINES.get(exc_rule.code, ()):
            return text_match[0].diagnosis(text, text_match[1])
        return exc_rule.diagnosis(text, _evidence(exc_rule, text, str(short)))
    if text_match is not None:
        return text_match[0].diagnosis(text, text_match[1])

    if sig:
        return _signal_diagnosis(sig, rss_bytes, mem_total_bytes)
    return None


class ProcessEnd(TypedDict, total=False):
    """How the process ended, where known: the keyword arguments of :func:`diagnose`."""

    exit_signal: int | None
    rss_bytes: int | None
    mem_total_bytes: int | None


def explain(text: str, exc_type: str | None = None, **end: Unpack[ProcessEnd]) -> Diagnosis:
    """Like :func:`diagnose` but always answers: an unknown failure still gets a title naming the
    exception and steps that lead to the full traceback in the run's logs/."""
    found = diagnose(text, exc_type, **end)
    if found is not None:
        return found
    short = _short_type(exc_type)
    last = _last_line(text or "")
    exit_signal = end.get("exit_signal")
    sig = abs(exit_signal) if exit_signal else None
    if short:
        title = f"Training raised {short}"
    elif sig:
        try:
            title = f"Training process ended by signal {signal.Signals(sig).name}"
        except ValueError:
            title = f"Training process ended by signal {sig}"
    else:
        title = "Training stopped with an error"
    return Diagnosis(
        code="unexpected_error",
        title=title,
        meaning=(
            f"This is not one of the failures we recognise. The error says: {last}"
            if last
            else "This is not one of the failures we recognise, and no error message was captured."
        ),
        steps=(
            "Read the full traceback in the run's logs/ folder (the Run page shows the log "
            "tail); its last lines name the failing call.",
            "Check the config values the message mentions.",
            "Try the same config with a small n_timesteps to see whether it repeats.",
            DIAG_CMD,
        ),
        evidence=f"{short}: {last}" if short and last else (short or last),
    )
