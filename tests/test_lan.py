"""The LAN, for real: the dashboard served as ``make share`` serves it, driven from a second
network namespace in headless Chromium.

The test (root only: it creates a network namespace and a veth pair) puts a browser on the
other end of a virtual cable, 10.77.N.2 in its own namespace, and the dashboard on
``python -m dashboard.share`` in this one (bound to 0.0.0.0, allowedHosts from this machine's
addresses, which now include the host end 10.77.N.1). From the namespace: the runs are
visible; no control is enabled without the password; a wrong password is refused and, after
three, even the right one waits (the process-wide throttle); the right one enables the
controls for that browser context only; a write without the XSRF token is refused; the first
page served already refuses to be framed by another site. From this machine (127.0.0.1) the
same page has every control enabled without any password.

The browser really runs inside the namespace: Playwright starts Chromium through
``ip netns exec`` (a two-line wrapper script), and the test first checks that it cannot reach
this machine's loopback address, only the veth address.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runstore import RunState, RunStore
from tests.conftest import ROOT, wait_for
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, healthy
from tests.test_dashboard import make_run

PASSWORD = "correct horse battery"
CONTROL_LABELS = ("Stop", "Pause", "Resume from checkpoint", "Clone", "Delete")
MAIN = '[data-testid="stMainBlockContainer"]'  # the page body, not the header or sidebar


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


_NO_IPV6 = (
    "for f in all default {peer_if}; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done"
)


@dataclass
class Lan:
    ns: str
    host_ip: str
    peer_ip: str
    chromium: Path  # a wrapper that starts Chromium inside the namespace


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    """A namespace joined to this one by a veth pair; removed again even when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace and a veth pair needs root")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is missing: apt-get install -y iproute2")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    ns, host_if, peer_if = f"rml{tag}", f"rmlh{tag}", f"rmlp{tag}"
    subnet = f"10.77.{random.randrange(1, 250)}"
    made = _ip("netns", "add", ns, check=False)
    if made.returncode != 0:
        pytest.skip(f"`ip netns add` failed here ({made.stderr.strip()}): no namespaces")
    try:
        for args in (
            ("link", "add", host_if, "type", "veth", "peer", "name", peer_if),
            ("link", "set", peer_if, "netns", ns),
            # No IPv6 in the namespace: the link-local address it would gain a second after the
            # link comes up is a "network change" to Chromium, which aborts every request in
            # flight (net::ERR_NETWORK_CHANGED) and leaves a blank page.
            ("netns", "exec", ns, "sh", "-c", _NO_IPV6.format(peer_if=peer_if)),
            ("addr", "add", f"{subnet}.1/24", "dev", host_if),
            ("link", "set", host_if, "up"),
            ("netns", "exec", ns, "ip", "addr", "add", f"{subnet}.2/24", "dev", peer_if),
            ("netns", "exec", ns, "ip", "link", "set", peer_if, "up"),
            ("netns", "exec", ns, "ip", "link", "set", "lo", "up"),
        ):
            _ip(*args)
        wrapper = tmp_path / "chromium-in-ns"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        yield Lan(ns, f"{subnet}.1", f"{subnet}.2", wrapper)
    finally:
        _ip("link", "del", host_if, check=False)  # deletes both ends of the pair
        _ip("netns", "del", ns, check=False)
        assert ns not in _ip("netns", "list", check=False).stdout


class SharedDashboard:
    """``python -m dashboard.share`` on a free port, password set, no runner of its own."""

    def __init__(self, root: Path):
        self.store = RunStore(root)
        self.port = free_port()
        env = {
            **os.environ,
            "RETRO_ML_RUNS_DIR": str(root),
            "RETRO_ML_NO_AUTOSTART": "1",
            "RETRO_ML_PASSWORD": PASSWORD,
            "PORT": str(self.port),
        }
        self.log = open(root.parent / "share.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.share"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        local = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: self.proc.poll() is not None or healthy(local), 90, "streamlit to serve")
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()


def _in_ns(lan: Lan, code: str) -> str:
    """Run a small Python snippet inside the namespace; its stdout."""
    result = subprocess.run(
        ["ip", "netns", "exec", lan.ns, sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _controls(page) -> dict[str, bool]:  # noqa: ANN001
    """Label -> enabled, for every run control on the page (in the page body: the header's
    status widget has a "Stop" of its own while a script runs)."""
    found = {}
    body = page.locator(MAIN)
    for label in CONTROL_LABELS:
        button = body.get_by_role("button", name=label, exact=True)
        if button.count():
            found[label] = button.first.is_enabled()
    return found


def _sees_both_runs(page) -> None:  # noqa: ANN001
    """Both runs are in the run picker (the table itself is drawn on a canvas)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # a loaded CI machine renders slowly

    page.get_by_role("combobox", name="Run").click()
    for name in ("lan-running", "lan-stopped"):
        expect(page.get_by_role("option", name=re.compile(name))).to_be_visible()
    page.keyboard.press("Escape")


def _unlock(page, password: str) -> None:  # noqa: ANN001
    """Submit the sidebar password form and wait until the app has run with it (two quick
    submits could otherwise be folded into one rerun)."""
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Unlock controls").click()
    page.wait_for_timeout(1500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


@pytest.mark.timeout(400)
def test_lan_browser_views_but_acts_only_with_the_password(lan: Lan, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a loaded CI machine renders slowly

    root = tmp_path / "runs"
    rs = RunStore(root)
    rs.ensure_layout()
    running = make_run(rs, RunState.RUNNING, "lan-running")
    make_run(rs, RunState.STOPPED, "lan-stopped")
    app = SharedDashboard(root)
    remote = f"http://{lan.host_ip}:{app.port}"
    local = f"http://127.0.0.1:{app.port}"
    try:
        assert lan.host_ip in app.output()  # make share put the veth address in allowedHosts
        # The namespace reaches the host only over the veth: its loopback is its own.
        reach = f"""
            import urllib.request
            for url in ("{remote}/_stcore/health", "{local}/_stcore/health"):
                try:
                    print(urllib.request.urlopen(url, timeout=5).status, end=" ")
                except OSError:
                    print("unreachable", end=" ")
        """
        assert _in_ns(lan, reach) == "200 unreachable"
        # The first page a LAN browser gets (no session has run yet) refuses to be framed by
        # another site: make share installs the headers before serving (dashboard/serve.py).
        framing = f"""
            import urllib.request
            with urllib.request.urlopen("{remote}/", timeout=10) as resp:
                print(resp.headers["X-Frame-Options"], resp.headers["Content-Security-Policy"])
        """
        assert _in_ns(lan, framing) == "SAMEORIGIN frame-ancestors 'self'"
        # XSRF stays on: a write to the upload endpoint without the token is refused.
        forged = f"""
            import urllib.request, urllib.error
            req = urllib.request.Request(
                "{remote}/_stcore/upload_file/abc/def", data=b"x", method="PUT",
                headers={{"Origin": "{remote}"}},
            )
            try:
                print(urllib.request.urlopen(req, timeout=5).status)
            except urllib.error.HTTPError as exc:
                print(exc.code)
        """
        assert _in_ns(lan, forged) == "403"

        with sync_playwright() as pw:
            remote_browser = pw.chromium.launch(
                executable_path=str(lan.chromium), args=CHROMIUM_ARGS
            )
            local_browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                first = remote_browser.new_context(viewport={"width": 1400, "height": 1000})
                page = first.new_page()
                page.set_default_timeout(60_000)
                page.goto(remote)
                _sees_both_runs(page)
                expect(
                    page.get_by_text("Read-only: this browser is on another machine")
                ).to_be_visible()
                expect(page.get_by_text("Read-only here").first).to_be_visible()
                assert _controls(page) == {}, "a control is offered without the password"
                assert any(c["name"] == "_streamlit_xsrf" for c in first.cookies())

                _unlock(page, "not the password")
                expect(page.get_by_text("wrong password")).to_be_visible()
                assert _controls(page) == {}
                _unlock(page, PASSWORD)
                expect(page.get_by_text("Full control: password entered")).to_be_visible()
                expect(page.get_by_role("button", name="Clone", exact=True)).to_be_enabled()
                assert _controls(page)["Clone"] is True

                # Another browser context in the namespace: its own session, still read-only.
                second = remote_browser.new_context()
                other = second.new_page()
                other.set_default_timeout(60_000)
                other.goto(remote)
                _sees_both_runs(other)
                expect(other.get_by_text("Read-only here").first).to_be_visible()
                assert _controls(other) == {}

                # Repeated failures slow every session down: after three, even the right
                # password waits.
                for _ in range(3):
                    _unlock(other, "guess")
                    expect(other.get_by_text("wrong password")).to_be_visible()
                _unlock(other, PASSWORD)
                expect(other.get_by_text("too many wrong passwords")).to_be_visible()
                assert _controls(other) == {}

                # This machine: every control is there without a password.
                mine = local_browser.new_page()
                mine.set_default_timeout(60_000)
                mine.goto(local)
                _sees_both_runs(mine)
                expect(
                    mine.get_by_text("Full control: this browser is on the machine")
                ).to_be_visible()
                expect(mine.get_by_role("button", name="Clone", exact=True)).to_be_enabled()
                # Delete is drawn last: wait for it, or a slow render reads a partial row.
                expect(
                    mine.locator(MAIN).get_by_role("button", name="Delete", exact=True)
                ).to_be_visible()
                enabled = _controls(mine)
                assert set(enabled) == set(CONTROL_LABELS) and enabled["Clone"]
            finally:
                remote_browser.close()
                local_browser.close()
        assert rs.pending_requests(running)[0] == []  # nothing was clicked into a request
    except BaseException:
        print(app.output())
        raise
    finally:
        app.close()


def test_lan_viewer_streams_clips_from_the_clip_server_by_signed_url(
    lan: Lan, tmp_path: Path
) -> None:
    """A read-only viewer on another machine sees the Videos page as anyone who may view it
    does: each clip plays, streamed by the clip server bound where ``make share`` serves
    (0.0.0.0) at the address the viewer used; the same clip without the signature is 403."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_videos_pages import make_run as make_clip_run

    root = tmp_path / "runs"
    rs = RunStore(root)
    rs.ensure_layout()
    make_clip_run(rs, "ALE/Pong-v5", "lan-clips", 3.0, {250_000: 1.0, 500_000: 3.0})
    app = SharedDashboard(root)
    remote = f"http://{lan.host_ip}:{app.port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(lan.chromium), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{remote}/videos")
                expect(
                    page.get_by_text("Read-only: this browser is on another machine")
                ).to_be_visible()
                page.wait_for_function(
                    "() => { const vs = [...document.querySelectorAll('video')];"
                    " return vs.length == 2 && vs.every(v => v.readyState >= 1"
                    " && v.duration > 0); }"
                )
                sources = page.eval_on_selector_all("video", "vs => vs.map(v => v.currentSrc)")
            finally:
                browser.close()
        assert all(
            s.startswith(f"http://{lan.host_ip}:")
            and f":{app.port}/" not in s
            and "/clip/" in s
            and "&sig=" in s
            for s in sources
        ), sources
        unsigned = sources[0].split("?")[0]
        probe = f"""
            import urllib.request, urllib.error
            for url in ({sources[0]!r}, {unsigned!r}):
                try:
                    print(urllib.request.urlopen(url, timeout=10).status, end=" ")
                except urllib.error.HTTPError as exc:
                    print(exc.code, end=" ")
        """
        assert _in_ns(lan, probe) == "200 403"
    except BaseException:
        print(app.output())
        raise
    finally:
        app.close()
