"""Small helpers the probes share: optional readings, error text, sizes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GIB = 2**30


def safe(fn: Callable[[], Any], default: Any = None) -> Any:
    """One optional reading (power, temperature...) that a GPU or OS may not support."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - an unsupported reading is simply absent
        return default


def error_text(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def text(value: Any) -> str:
    """NVML returns bytes in old nvidia-ml-py releases and str in new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def gib(n: float | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f} GiB"
