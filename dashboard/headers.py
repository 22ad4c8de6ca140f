"""Anti-framing headers on every HTTP response of the dashboard's server.

Why: a page on any other site (or another port on this machine) could frame the dashboard and
trick a click onto "Delete"; the framed page talks to Streamlit from this machine and has full
control. ``X-Frame-Options: SAMEORIGIN`` and ``Content-Security-Policy: frame-ancestors 'self'``
make the browser refuse to show the dashboard inside another origin's page.

Streamlit has no option for extra response headers (streamlit/streamlit#9160, closed by the move
to Starlette, which exposes middleware only to ``st.App`` scripts), so ``install()`` wraps the
web server's request entry point once per process:

* Streamlit >= 1.57 serves through Starlette: ``Starlette.__call__`` is wrapped, so every HTTP
  response of every Starlette app in this process gets the headers, from the next request on,
  even when the server is already running.
* Older Streamlit serves through Tornado: ``RequestHandler.clear`` (run when each handler is
  made, before it writes anything) also sets the headers.

Who calls it: ``python -m dashboard.serve`` (``make run``, ``make share``) before the server
starts, so even the first page load is covered; and ``dashboard/app.py`` on every script run, so
plain ``streamlit run dashboard/app.py`` is covered too, with one gap: until the first browser
session has run the script, the server has not imported this module, and the very first page
it serves after starting carries no headers. Use ``make run`` to close that gap.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Content-Security-Policy", "frame-ancestors 'self'"),
)
_MARK = "_retro_ml_frame_headers"
_lock = threading.Lock()

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def _with_headers(send: Send) -> Send:
    """An ASGI ``send`` that adds HEADERS to the response start (a header the app set itself,
    by the same name, is left as it is)."""
    ours = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in HEADERS]

    async def send_with_headers(message: Message) -> None:
        if message.get("type") == "http.response.start":
            headers = list(message.get("headers") or [])
            present = {bytes(name).lower() for name, _ in headers}
            headers += [(name, value) for name, value in ours if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


def _wrap_once(owner: type, name: str, wrap: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``wrap(original)`` once per process: the mark on the wrapper
    tells a later call that it is already in place."""
    original = getattr(owner, name)
    if getattr(original, _MARK, False):
        return
    wrapped = functools.wraps(original)(wrap(original))
    setattr(wrapped, _MARK, True)
    setattr(owner, name, wrapped)


def _install_starlette() -> bool:
    try:
        from starlette.applications import Starlette
    except ImportError:
        return False

    def wrap(call: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def __call__(self: Starlette, scope: Message, receive: Any, send: Send) -> None:  # noqa: N807
            if scope.get("type") == "http":
                send = _with_headers(send)
            await call(self, scope, receive, send)

        return __call__

    _wrap_once(Starlette, "__call__", wrap)
    return True


def _install_tornado() -> bool:
    try:
        from tornado.web import RequestHandler
    except ImportError:
        return False

    def wrap(clear: Callable[[RequestHandler], None]) -> Callable[[RequestHandler], None]:
        def clear_with_headers(self: RequestHandler) -> None:
            clear(self)
            for name, value in HEADERS:
                self.set_header(name, value)

        return clear_with_headers

    _wrap_once(RequestHandler, "clear", wrap)
    return True


def install() -> list[str]:
    """Make every HTTP response of this process's web server carry HEADERS. Idempotent and
    cheap (app.py calls it on every script run). Returns the servers it covers; empty means
    neither Starlette nor Tornado is importable, and nothing is protected."""
    with _lock:
        covered = []
        if _install_starlette():
            covered.append("starlette")
        if _install_tornado():
            covered.append("tornado")
        return covered
