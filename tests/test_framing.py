"""Framing and foreign origins, against a real server: the dashboard started the way ``make
run`` starts it (``python -m dashboard.serve``) on a free loopback port, with one running run.

* Every HTTP response says ``X-Frame-Options: SAMEORIGIN`` and ``Content-Security-Policy:
  frame-ancestors 'self'`` (dashboard/headers.py).
* A page served on another local port that frames the dashboard gets nothing: Chromium refuses
  to show the frame, so there is no "Delete" or "Stop" to trick a click onto.
* A websocket session whose Origin is not the dashboard's own (a page on
  ``http://localhost:9999``, or no Origin at all) is read-only even though it comes from
  127.0.0.1 (dashboard/auth.py); a page of the dashboard itself keeps full control. The session
  is driven the way a foreign page's script would drive it: Streamlit's own websocket protocol
  (a BackMsg asking for a script run), and what the app draws for it is read back.
* Plain ``streamlit run dashboard/app.py`` installs the same headers from the first script
  run on (the gap before it is documented in dashboard/headers.py).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runstore import RunState, RunStore
from tests.conftest import ROOT, wait_for
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, healthy
from tests.test_dashboard import make_run

SERVE = [sys.executable, "-m", "dashboard.serve"]
PLAIN = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"]
FOREIGN = "http://localhost:9999"
CONTROL_LABELS = {"Stop", "Pause", "Resume from checkpoint", "Clone", "Delete"}
WANTED = {"x-frame-options": "SAMEORIGIN", "content-security-policy": "frame-ancestors 'self'"}


class Served:
    """The dashboard on a free loopback port, no runner of its own, no password."""

    def __init__(self, root: Path, command: list[str]):
        self.store = RunStore(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RETRO_ML_RUNS_DIR": str(root), "RETRO_ML_NO_AUTOSTART": "1"}
        env.pop("RETRO_ML_PASSWORD", None)
        self.log = open(root.parent / "streamlit.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*command, "--server.port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: self.proc.poll() is not None or healthy(self.url), 90, "streamlit")
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()


def _serve(tmp_path: Path, command: list[str]) -> Served:
    root = tmp_path / "runs"
    rs = RunStore(root)
    rs.ensure_layout()
    make_run(rs, RunState.RUNNING, "framed-run")
    return Served(root, command)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = _serve(tmp_path_factory.mktemp("framing"), SERVE)
    try:
        yield app
    finally:
        app.close()


def response_headers(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}


def _ask_for_a_run() -> bytes:
    """The BackMsg a browser sends first: run the app's default page."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    ask = BackMsg()
    ask.rerun_script.query_string = ""
    ask.rerun_script.page_script_hash = ""
    return ask.SerializeToString()


def _drawn(next_message: Callable[[float], bytes], timeout: float) -> tuple[set[str], str]:
    """Read ForwardMsgs until the script run finishes: the labels of the buttons it drew and
    the text of everything it drew."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    labels: set[str] = set()
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = ForwardMsg()
        msg.ParseFromString(next_message(max(1.0, deadline - time.monotonic())))
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            if element.WhichOneof("type") == "button":
                labels.add(element.button.label)
            texts.append(str(element))
        elif kind == "script_finished":
            return labels, "\n".join(texts)


def session_view(url: str, origin: str | None, timeout: float = 90) -> tuple[set[str], str]:
    """Open Streamlit's websocket as a page's script would (``origin`` as its Origin header,
    or none), ask for one run of the app, and return what it drew (``_drawn``)."""
    from websockets.sync.client import connect

    ws_url = "ws" + url.removeprefix("http") + "/_stcore/stream"
    with connect(ws_url, origin=origin, subprotocols=["streamlit"], open_timeout=30) as ws:
        ws.send(_ask_for_a_run())
        return _drawn(lambda wait: ws.recv(timeout=wait), timeout)


def test_every_response_refuses_foreign_framing(served: Served) -> None:
    """First in this module: no session has run the app yet, so the headers on ``/`` come from
    dashboard/serve.py installing them before the server started."""
    for path in ("/", "/run", "/_stcore/health", "/_stcore/host-config"):
        got = response_headers(served.url + path)
        for name, value in WANTED.items():
            assert got.get(name) == value, (path, name, got)


class _Evil(http.server.BaseHTTPRequestHandler):
    """Another site on this machine: one page that frames the dashboard."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = "<!doctype html><title>evil</title><h1 id=evil>win a prize</h1>"
        if self.path == "/":
            body += f'<iframe id=victim src="{self.target}/" width=1200 height=800></iframe>'
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def evil_site(served: Served) -> Iterator[str]:
    handler = type("EvilHandler", (_Evil,), {"target": served.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.timeout(300)
def test_a_page_on_another_port_that_frames_the_dashboard_gets_no_control(
    served: Served, evil_site: str
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            # "load" waits for the iframe's own load too: the frame has been decided.
            page.goto(evil_site, wait_until="load")
            expect(page.locator("#evil")).to_be_visible()
            victim = page.frame_locator("#victim")
            frame = next(f for f in page.frames if f is not page.main_frame)
            # Give a dashboard that did load time to draw its controls, then look.
            time.sleep(8)
            assert victim.locator('[data-testid="stApp"]').count() == 0, frame.url
            for label in CONTROL_LABELS:
                assert victim.get_by_role("button", name=label).count() == 0, label
            assert not frame.url.startswith(served.url), frame.url  # Chromium's error page

            # The same browser opening the dashboard itself still has every control.
            own = browser.new_page(viewport={"width": 1400, "height": 1000})
            own.set_default_timeout(60_000)
            own.goto(served.url)
            expect(own.get_by_text("Full control: this browser is on the machine")).to_be_visible(
                timeout=60_000
            )
            body = own.locator('[data-testid="stMainBlockContainer"]')  # not the header's Stop
            expect(body.get_by_role("button", name="Stop", exact=True)).to_be_enabled()
        finally:
            browser.close()


# Run in the foreign page: open the dashboard's websocket as its own app would, ask for a run,
# and keep every message for the test to read.
OPEN_SOCKET = """([url, ask]) => {
    window.got = [];
    window.wsClosed = null;
    const ws = new WebSocket(url, ["streamlit"]);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(new Uint8Array(ask));
    ws.onmessage = (event) => window.got.push(Array.from(new Uint8Array(event.data)));
    ws.onclose = (event) => { window.wsClosed = event.code; };
}"""


@pytest.mark.timeout(300)
def test_a_page_on_another_port_that_drives_the_websocket_gets_no_control(
    served: Served, evil_site: str
) -> None:
    """The attack itself, in Chromium: a page of another local site opens the websocket (its
    real Origin is http://127.0.0.1:<other port>, which Streamlit lets in) and asks for a run."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{evil_site}/socket")
            ws_url = "ws" + served.url.removeprefix("http") + "/_stcore/stream"
            page.evaluate(OPEN_SOCKET, [ws_url, list(_ask_for_a_run())])

            def next_message(wait: float) -> bytes:
                end = time.monotonic() + wait
                while time.monotonic() < end:
                    got = page.evaluate("() => window.got.shift() || null")
                    if got is not None:
                        return bytes(got)
                    closed = page.evaluate("() => window.wsClosed")
                    assert closed is None, f"the websocket closed ({closed})"
                    time.sleep(0.05)
                raise TimeoutError("no script run finished")

            labels, text = _drawn(next_message, 90)
        finally:
            browser.close()
    assert not labels & CONTROL_LABELS, labels
    assert "Read-only here" in text, text[-2000:]
    assert "Full control" not in text


@pytest.mark.timeout(300)
def test_a_foreign_origin_on_this_machine_is_read_only(served: Served) -> None:
    labels, text = session_view(served.url, served.url)
    assert labels >= {"Stop", "Clone"}, (labels, text[-2000:])
    assert "Full control" in text

    # Streamlit's own check lets these two through (it ignores the port of a localhost
    # Origin, and lets a client without Origin in); the app makes them read-only.
    for origin in (FOREIGN, None):
        labels, text = session_view(served.url, origin)
        assert not labels & CONTROL_LABELS, (origin, labels)
        assert "Read-only here" in text, (origin, text[-2000:])
        assert "Read-only: this page was not opened from the dashboard" in text, origin
        assert "Full control" not in text, origin

    # A sandboxed or file:// page (Origin: null) never gets a session at all.
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus, match="403"):
        session_view(served.url, "null")


@pytest.mark.timeout(300)
def test_plain_streamlit_run_sends_the_headers_from_the_first_script_run(
    tmp_path: Path,
) -> None:
    app = _serve(tmp_path, PLAIN)
    try:
        labels, _ = session_view(app.url, app.url)  # the first script run installs them
        assert "Stop" in labels
        got = response_headers(app.url + "/")
        for name, value in WANTED.items():
            assert got.get(name) == value, (name, got)
    finally:
        app.close()


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "same"),
    [
        ("http://127.0.0.1:8501", "127.0.0.1:8501", "http", True),
        ("http://localhost:8501", "localhost:8501", "http", True),
        ("http://[::1]:8501", "[::1]:8501", "http", True),
        ("http://LOCALHOST:8501", "localhost:8501", "http", True),
        ("http://example.lan", "example.lan:80", "http", True),  # default port left out
        ("https://127.0.0.1:8501", "127.0.0.1:8501", "https", True),
        ("http://localhost:9999", "127.0.0.1:8501", "http", False),  # another port
        ("http://localhost:9999", "localhost:8501", "http", False),
        ("http://localhost:8501", "127.0.0.1:8501", "http", False),  # another host name
        ("https://127.0.0.1:8501", "127.0.0.1:8501", "http", False),  # another scheme
        ("http://127.0.0.1:8501", "127.0.0.1:8501", "https", False),
        ("null", "127.0.0.1:8501", "http", False),
        ("", "127.0.0.1:8501", "http", False),
        (None, "127.0.0.1:8501", "http", False),
        ("http://127.0.0.1:8501", None, "http", False),
        ("http://127.0.0.1:8501/x", "127.0.0.1:8501", "http", False),
        ("http://user@127.0.0.1:8501", "127.0.0.1:8501", "http", False),
        ("http://127.0.0.1:99999", "127.0.0.1:99999", "http", False),  # not a port
    ],
)
def test_same_origin_needs_scheme_host_and_port(
    origin: str | None, host: str | None, scheme: str, same: bool
) -> None:
    from dashboard.auth import same_origin

    assert same_origin(origin, host, scheme) is same


def test_only_this_machines_names_count_as_its_own() -> None:
    import socket

    from dashboard.auth import names_this_machine

    for name in (
        "localhost",
        "LOCALHOST.",
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "[::1]",
        "app.localhost",
    ):
        assert names_this_machine(name), name
    assert names_this_machine(socket.gethostname())
    for name in ("evil.example", "192.0.2.10", "localhost.evil.example", ""):
        assert not names_this_machine(name), name
