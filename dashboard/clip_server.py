"""Clips streamed from disk by URL: a small HTTP server in the dashboard process.

``st.video(bytes)`` keeps every clip a page shows in Streamlit's in-memory media storage
(12 clips a page; a 1 GB time-lapse was 1.27 GB of RSS). Instead the page gives the browser a
URL of this server, which reads the file from disk in bounded chunks as the browser asks
for it (HTTP Range), so the dashboard's memory does not depend on the size of a clip.

What it serves, and to whom (docs/dashboard.md, "Clips"; docs/reliability.md):

- only GET and HEAD of ``/clip/<run id>/<name>``, where the name is a clip of a run's
  ``videos/`` folder (``step-NNNNNNNNN.mp4``, ``step-NNNNNNNNN-record.mp4``,
  ``timelapse.mp4``) and the run id matches the run id pattern (so no ``..``, no separator);
- only with a capability: ``?exp=<unix time>&sig=<hex>``, an HMAC-SHA256 over (run id, clip
  name, expiry) with a key derived from the runs folder's own secret (``runs/.secret``, the
  key that signs checkpoints; ``runstore.trust.folder_key``). The page signs a URL only for a
  clip it shows (after the same ``runstore.safeio`` check), so whoever may see the page may
  fetch its clips, for a while (``TTL_SECONDS``), and nobody else;
- a request that is not such a URL (unsigned, tampered, expired, another file) is answered
  403 or 404 before anything is opened; a signed one is opened through
  ``runstore.safeio.open_file`` (no link followed, in the file or a folder on the way; no
  FIFO or device: checked before the open, opened non-blocking, ``fstat`` a regular file)
  and a refusal there is a 404 too;
- ``&dl=1`` (not signed: it only changes how the browser saves it) adds
  ``Content-Disposition: attachment``, for a download button, named ``<run id>-<name>`` or,
  with ``&as=<slug>`` (a video's title slugified: lower-case letters, digits and ``-`` only,
  also unsigned), ``<slug>.mp4``;
- ``Range: bytes=a-b`` (one range) gets 206 with ``Content-Range``; a range that cannot be
  satisfied or parsed gets 416; the body is sent in ``CHUNK_BYTES`` pieces.

No Streamlit here: ``dashboard.clip_data`` starts one server per Streamlit process
(``st.cache_resource``) and signs the URLs a page shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import ipaddress
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from runstore import safeio
from runstore.paths import is_run_id
from runstore.videos import TIMELAPSE, parse_clip_name, parse_journey_name

#: How long a signed URL is valid at least; URLs are stable for ``TTL_STEP_SECONDS`` (a page
#: that reruns keeps the same src, so a playing video is not reloaded), then a new one is made.
TTL_SECONDS = 3600
TTL_STEP_SECONDS = 1800
#: Bytes read from disk and written to the socket at a time (memory per request).
CHUNK_BYTES = 256 * 1024
#: A client that neither sends nor reads for this long is dropped (a thread each).
SOCKET_TIMEOUT_SECONDS = 60
#: Connections served at once: Chromium opens at most 6 per host, so about 20 viewers.
MAX_CONNECTIONS = 128
PREFIX = "/clip/"
_KEY_CONTEXT = b"retro-ml clip url v1"
_RANGE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$")
_EXPIRY = re.compile(r"^[0-9]{1,12}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
#: A download's name (``&as=``): a slug (``runstore.paths.slugify``), never a path or quotes.
_SAVE_AS = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")


def is_clip_name(name: str) -> bool:
    """A file of a run's ``videos/`` folder that the server may serve."""
    named = parse_clip_name(name) is not None or parse_journey_name(name) is not None
    return name == TIMELAPSE or named


def attachment_name(query: str, path: Path) -> str:
    """The name a download is saved as: ``as=<slug>`` with the video's extension when it is
    one slug, else ``<run id>-<name>``."""
    values = parse_qs(query).get("as", [])
    if len(values) == 1 and _SAVE_AS.match(values[0]):
        return f"{values[0]}{path.suffix}"
    return f"{path.parent.parent.name}-{path.name}"


def url_key(folder_key: bytes) -> bytes:
    """The key clip URLs are signed with: derived from the runs folder's key, so a URL's
    signature can never stand for a manifest's, or the other way round."""
    return hmac.new(folder_key, _KEY_CONTEXT, hashlib.sha256).digest()


def signature(key: bytes, run_id: str, name: str, expires: int) -> str:
    message = f"{run_id}\n{name}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def expiry(now: float | None = None) -> int:
    """An expiry between ``TTL_SECONDS`` and ``TTL_SECONDS + TTL_STEP_SECONDS`` away, the same
    for every call within one step (so a rerun of a page keeps its clips' URLs)."""
    now = time.time() if now is None else now
    return (int(now) // TTL_STEP_SECONDS) * TTL_STEP_SECONDS + TTL_STEP_SECONDS + TTL_SECONDS


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of ``Range: bytes=...`` (one range), or None when it cannot be
    satisfied or parsed (416)."""
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # bytes=-N: the last N bytes
        length = int(match[2])
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


class ClipServer:
    """One ``ThreadingHTTPServer`` on a daemon thread, serving the clips of ``root``."""

    def __init__(self, root: Path, folder_key: bytes, host: str = "", port: int = 0) -> None:
        self.root = Path(root)
        self._key = url_key(folder_key)
        handler = type("Handler", (_Handler,), {"clips": self})
        server_class = _Server6 if ":" in host else _Server
        self.httpd = server_class((host, port), handler)
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"clip-server-{self.port}", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def path_of(self, run_id: str, name: str) -> Path:
        return self.root / run_id / "videos" / name

    def url(self, run_id: str, name: str, host: str, *, now: float | None = None) -> str:
        """A signed URL of this clip, for a browser that reaches this machine as ``host``."""
        if not is_run_id(run_id) or not is_clip_name(name):
            raise ValueError(f"not a clip of a run: {run_id}/{name}")
        shown = _url_host(host)
        exp = expiry(now)
        sig = signature(self._key, run_id, name, exp)
        return f"http://{shown}:{self.port}{PREFIX}{run_id}/{name}?exp={exp}&sig={sig}"

    def authorize(self, target: str, now: float | None = None) -> tuple[int, Path | None]:
        """(HTTP status, the clip's path) for a request target; the path only with 200. Opens
        nothing: this decides from the URL alone."""
        try:
            parts = urlsplit(target)
        except ValueError:
            return 404, None
        if not parts.path.startswith(PREFIX):
            return 404, None
        names = parts.path[len(PREFIX) :].split("/")
        if len(names) != 2 or not is_run_id(names[0]) or not is_clip_name(names[1]):
            return 404, None
        run_id, name = names
        query = parse_qs(parts.query, keep_blank_values=True)
        exp_values, sig_values = query.get("exp", []), query.get("sig", [])
        if len(exp_values) != 1 or len(sig_values) != 1 or not _EXPIRY.match(exp_values[0]):
            return 403, None
        exp = int(exp_values[0])
        expected = signature(self._key, run_id, name, exp)
        if not hmac.compare_digest(sig_values[0].encode("ascii", "replace"), expected.encode()):
            return 403, None
        now = time.time() if now is None else now
        if exp < now or exp > now + TTL_SECONDS + TTL_STEP_SECONDS + 60:
            return 403, None
        return 200, self.path_of(run_id, name)


def _url_host(host: str) -> str:
    """``host`` as the host part of a URL: a name or an IPv4 address as is, an IPv6 address
    in brackets, anything else (it came from a Host header) as ``localhost``."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host.strip('[]'))}]"
        except ValueError:
            return "localhost"
    return host if _HOSTNAME.match(host) else "localhost"


class _Server(http.server.ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once: one more is closed at
    once (a browser retries), so idle sockets from the LAN cannot pile up threads."""

    daemon_threads = True
    allow_reuse_address = True
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        super().server_activate()
        self.slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a browser that went away mid-clip: nothing to report
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    clips: ClipServer
    timeout = SOCKET_TIMEOUT_SECONDS
    protocol_version = "HTTP/1.1"
    server_version = "RetroMLClips"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the URLs carry capabilities: not written to the dashboard's log

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _refuse(self, status: int, extra: dict[str, str] | None = None) -> None:
        text = {403: b"forbidden\n", 404: b"not found\n", 416: b"range not satisfiable\n"}
        body = text.get(status, b"refused\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, body: bool) -> None:
        status, path = self.clips.authorize(self.path)
        if path is None:
            self._refuse(status)
            return
        try:
            fh = safeio.open_file(path, base=self.clips.root)
        except OSError:  # a link, a FIFO, a device, a folder, gone: as if it were not there
            self._refuse(404)
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            first, last, status = 0, size - 1, 200
            wanted = self.headers.get("Range")
            if wanted is not None:
                span = parse_range(wanted, size)
                if span is None:
                    self._refuse(416, {"Content-Range": f"bytes */{size}"})
                    return
                (first, last), status = span, 206
            length = max(0, last - first + 1)
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            query = urlsplit(self.path).query
            if "dl=1" in query.split("&"):
                self.send_header(
                    "Content-Disposition", f'attachment; filename="{attachment_name(query, path)}"'
                )
            self.send_header("Cache-Control", "private, max-age=600")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if not body:
                return
            fh.seek(first)
            left = length
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                while left > 0:
                    chunk = fh.read(min(CHUNK_BYTES, left))
                    if not chunk:  # the file shrank: stop; the browser sees a short body
                        self.close_connection = True
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
