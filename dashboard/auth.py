"""The LAN rule, in one place: who may act (start, stop, delete) and who may only look.

As TensorBoard does it: requests from this machine may act; requests from other hosts may act
only after entering the password set in ``.streamlit/secrets.toml`` (``admin_password``) or
``RETRO_ML_PASSWORD``. With no password set, other hosts are read-only. Every action function
calls ``require_control()`` itself, so hiding a button is never the only check: a forged client
that drives the websocket still hits the server-side check in the code that acts.

"From this machine" needs more than a loopback peer: any page the local browser opens can open
Streamlit's websocket, and Streamlit accepts an Origin whose host name is localhost, 127.0.0.1
or one of our addresses on any port (``is_url_from_allowed_origins`` ignores ports), and a
handshake with no Origin at all. So a session is local only when its websocket was opened by a
page of the dashboard itself: the handshake's Origin is the very scheme, host and port of the
Host header it was sent to, and that host name names this machine (a DNS-rebinding name does
not). Anything else (another port, another site, ``null``, no Origin) is treated as remote.

Without a Streamlit server (AppTest, a script run in bare mode) there is no network client at
all, so there is nothing to check and the session counts as local, as before; with a server
whose handshake headers cannot be read (an older Streamlit), the check fails closed: remote.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import streamlit as st

PASSWORD_ENV = "RETRO_ML_PASSWORD"
SECRET_KEY = "admin_password"
# session_state keys (not widget keys: a client cannot set them).
_AUTHED = "_auth_ok"
_PASSWORD_WIDGET = "auth_password_input"

# Process-wide throttle: after FREE_ATTEMPTS failures, the next attempt waits FIRST_WAIT
# seconds, and each further failure doubles it (capped), whichever session or browser it
# comes from: 50 guesses from fresh sessions take hours, not seconds.
FREE_ATTEMPTS = 3
FIRST_WAIT_SECONDS = 30.0
MAX_WAIT_SECONDS = 900.0
FORGET_AFTER_SECONDS = 3600.0


@dataclass
class Throttle:
    """Failed password attempts across every session of this server process."""

    failures: int = 0
    last_failure: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, now: float | None = None) -> float:
        """Seconds left before another attempt is accepted (0 when one may try now)."""
        now = time.time() if now is None else now
        with self.lock:
            if now - self.last_failure > FORGET_AFTER_SECONDS:
                self.failures = 0
            if self.failures < FREE_ATTEMPTS:
                return 0.0
            doublings = self.failures - FREE_ATTEMPTS
            wait = min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2.0**doublings)
            return max(0.0, self.last_failure + wait - now)

    def record_failure(self, now: float | None = None) -> None:
        with self.lock:
            self.failures += 1
            self.last_failure = time.time() if now is None else now

    def reset(self) -> None:
        with self.lock:
            self.failures = 0


@st.cache_resource
def throttle() -> Throttle:
    return Throttle()


def configured_password() -> str:
    """The password, or "" when none is configured (an empty one counts as none)."""
    try:
        secret = st.secrets.get(SECRET_KEY)
    except Exception:  # no secrets.toml: st.secrets raises FileNotFoundError on any access
        secret = None
    value = secret if isinstance(secret, str) and secret else os.environ.get(PASSWORD_ENV, "")
    return value or ""


def password_is_set() -> bool:
    return bool(configured_password())


def peer_address() -> str | None:
    """The TCP peer of this session's websocket; None when the script runs without a real
    Streamlit server (AppTest, bare mode), where no network client exists at all.

    Not ``st.context.ip_address``, which maps loopback to None as well. A real server whose
    peer is unknown gives "unknown", which is never local.
    """
    try:
        from streamlit import runtime
        from streamlit.runtime import Runtime
        from streamlit.runtime.context import _get_client_context

        if not runtime.exists() or type(Runtime.instance()) is not Runtime:  # AppTest: a mock
            return None
        client = _get_client_context()
    except Exception:
        return "unknown"
    ip = getattr(client, "remote_ip", None) if client is not None else None
    return ip if isinstance(ip, str) and ip else "unknown"


def _handshake_headers() -> Mapping[str, str] | None:
    """The headers of this session's websocket handshake; None when they cannot be read."""
    try:
        return st.context.headers
    except Exception:
        return None


def _forwarded(headers: Mapping[str, str]) -> bool:
    """A proxy in front of us: the TCP peer is the proxy, not the person; never local."""
    names = {name.lower() for name in headers}
    return bool(names & {"x-forwarded-for", "forwarded", "x-real-ip"})


@functools.cache
def _own_addresses() -> frozenset[str]:
    import psutil

    found = set()
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            found.add(addr.address.split("%")[0])
    return frozenset(found)


@functools.cache
def _own_names() -> frozenset[str]:
    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    return frozenset(name.lower().rstrip(".") for name in names if name)


def names_this_machine(hostname: str) -> bool:
    """Is this host name (from a Host header) one of this machine's own names or addresses?"""
    name = hostname.lower().rstrip(".").strip("[]")
    if name in _own_names() or name.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    return _is_loopback(addr) or str(addr) in _own_addresses()


def _is_loopback(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return addr.is_loopback or (
        isinstance(addr, ipaddress.IPv6Address)
        and addr.ipv4_mapped is not None
        and addr.ipv4_mapped.is_loopback
    )


def _served_scheme() -> str:
    """https when Streamlit itself serves TLS (server.sslCertFile), else http."""
    try:
        from streamlit import config

        return "https" if config.get_option("server.sslCertFile") else "http"
    except Exception:
        return "http"


def same_origin(origin: str | None, host: str | None, scheme: str = "http") -> bool:
    """Was the websocket opened by a page of the dashboard itself? ``origin`` (the page that
    opened it) must be ``scheme://host`` exactly: same scheme, host name and port (a browser
    leaves the default port out of both headers)."""
    if not origin or not host:
        return False
    default = 443 if scheme == "https" else 80
    try:
        page = urlsplit(origin)
        served = urlsplit(f"{scheme}://{host}")
        page_port, served_port = page.port or default, served.port or default
    except ValueError:
        return False
    if page.scheme != scheme or page.path or page.query or page.username or served.path:
        return False
    return bool(page.hostname) and (page.hostname, page_port) == (served.hostname, served_port)


def _single(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value when it was sent exactly once (a browser never repeats these)."""
    get_all = getattr(headers, "get_all", None)
    values = get_all(name) if get_all is not None else [v for v in [headers.get(name)] if v]
    return values[0] if len(values) == 1 else None


def not_local_because() -> str | None:
    """None when this session may act without the password; else why not, for the sidebar."""
    ip = peer_address()
    if ip is None:
        return None  # no server, no network client: AppTest or a script on this machine
    headers = _handshake_headers()
    if headers is None:
        return "this dashboard cannot see where this page was opened from"
    if _forwarded(headers):
        return "this browser reaches the dashboard through a proxy"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "this browser's address is unknown"
    if not (_is_loopback(addr) or ip in _own_addresses()):
        return "this browser is on another machine"
    origin, host = _single(headers, "Origin"), _single(headers, "Host")
    if not same_origin(origin, host, _served_scheme()) or not names_this_machine(
        urlsplit(f"//{host}").hostname or ""
    ):
        return (
            "this page was not opened from the dashboard's own address (another site or port "
            "on this machine may be driving it)"
        )
    return None


def is_local_request() -> bool:
    """True when the browser runs on this machine and the page is the dashboard's own."""
    return not_local_because() is None


def control_allowed() -> bool:
    """May this session start, stop, pause, resume or delete runs?"""
    if is_local_request():
        return True
    return bool(st.session_state.get(_AUTHED)) and password_is_set()


def require_control() -> None:
    """The server-side check every action calls first."""
    if not control_allowed():
        raise PermissionError(
            "this browser is not on the machine running Retro ML and has not entered the "
            "password; actions are refused (viewing stays open)"
        )


def check_password(attempt: str) -> tuple[bool, str]:
    """Compare in constant time, throttled process-wide. Returns (ok, message)."""
    expected = configured_password()
    if not expected:
        return False, "no password is configured on the server, so other hosts are read-only"
    gate = throttle()
    wait = gate.wait_seconds()
    if wait > 0:
        return False, f"too many wrong passwords; try again in {wait:.0f} s"
    if hmac.compare_digest(attempt.encode("utf-8"), expected.encode("utf-8")):
        gate.reset()
        st.session_state[_AUTHED] = True
        return True, "password accepted: controls are on for this browser tab"
    gate.record_failure()
    return False, "wrong password"


def render_access_box() -> None:
    """Sidebar: say whether this browser may act, why, and how to change it."""
    with st.sidebar:
        why_not = not_local_because()
        if why_not is None:
            st.caption("Full control: this browser is on the machine running Retro ML.")
            return
        if control_allowed():
            st.caption("Full control: password entered for this browser tab.")
            if st.button("Lock controls", key="auth_lock"):
                st.session_state[_AUTHED] = False
                st.rerun()
            return
        st.info(
            f"Read-only: {why_not}. Viewing is open; starting, stopping and deleting runs "
            "need the password."
        )
        if not password_is_set():
            st.caption(
                "No password is configured, so controls stay off for other machines. The "
                f"owner can set `{SECRET_KEY}` in .streamlit/secrets.toml or {PASSWORD_ENV}."
            )
            return
        with st.form("auth_form", clear_on_submit=True):
            attempt = st.text_input("Password", type="password", key=_PASSWORD_WIDGET)
            submitted = st.form_submit_button("Unlock controls")
        if submitted:
            ok, message = check_password(attempt or "")
            (st.success if ok else st.error)(message)
            if ok:
                st.rerun()
