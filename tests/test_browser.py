"""End to end in a real browser: `streamlit run dashboard/app.py` on a free port with its own
runs folder, driven through Debian's Chromium by Playwright.

The dashboard starts its own runner (nothing else is started for it), the New run form
queues the CartPole preset, the runner trains it for real, the Runs page shows it reach
`completed`, and its Run page draws the return chart. A missing browser fails this test: CI
installs it (`apt-get install -y chromium`, see .ci/run), and Playwright never downloads one.

Set RETRO_ML_SCREENSHOT_DIR to also save the README's screenshots from this run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from runstore import RunStore
from tests.conftest import ROOT, kill_run_groups, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A short run: few steps, and a small rollout (n_steps) so the loaded CI box finishes it fast.
STEPS = 1_000
N_STEPS = 128


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


class Dashboard:
    def __init__(self, root: Path):
        self.store = RunStore(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RETRO_ML_RUNS_DIR": str(root)}
        env.pop("RETRO_ML_NO_AUTOSTART", None)
        env.pop("RETRO_ML_PASSWORD", None)
        root.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(root.parent / "streamlit.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"]
            + ["--server.port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: self.proc.poll() is not None or healthy(self.url), 90, "streamlit to serve"
        )
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def close(self) -> None:
        """Kill streamlit, the runner it started and every trainer, by process group."""
        pgids = {self.proc.pid}
        info = self.store.read_runner_info()
        if info is not None:
            pgids.add(info.pid)  # the dashboard starts it in its own session
        kill_run_groups(self.store, pgids)
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    app = Dashboard(tmp_path / "runs")
    try:
        yield app
    finally:
        app.close()


@pytest.mark.timeout(600)
def test_new_run_to_completed_with_a_drawn_chart(dashboard: Dashboard) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a loaded CI machine renders slowly

    shots = os.environ.get("RETRO_ML_SCREENSHOT_DIR")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(90_000)
            page.goto(f"{dashboard.url}/new_run")
            expect(page.get_by_text("Start from")).to_be_visible()
            steps = page.get_by_label("Steps (upper bound)")
            steps.fill(str(STEPS))
            steps.press("Enter")
            expect(page.get_by_text(f"n_timesteps: {STEPS}").first).to_be_visible()
            page.get_by_text("Hyperparameters (advanced)").click()
            n_steps = page.get_by_label("n_steps", exact=True)
            n_steps.fill(str(N_STEPS))
            n_steps.press("Enter")
            expect(page.get_by_text(f"n_steps: {N_STEPS}").first).to_be_visible()
            page.get_by_role("button", name="Queue run").click()
            expect(page.get_by_text("Queued cartpole-smoke")).to_be_visible()

            page.get_by_role("link", name="Runs").first.click()
            # The table is a canvas grid whose accessible cells are hidden: look for a
            # visible mention of the run (its heading), however long a loaded machine takes.
            visible_name = page.locator("text=cartpole-smoke >> visible=true").first
            expect(visible_name).to_be_visible(timeout=120_000)
            run_id = wait_for(dashboard.store.run_ids, 60, "the runner to accept the run")[0]
            # The selected run's heading: its name and a state badge the live fragment updates.
            heading = page.locator('[data-testid="stMarkdownContainer"]', has_text=run_id)
            expect(heading.get_by_text("completed", exact=True)).to_be_visible(timeout=400_000)
            if shots:
                time.sleep(3)
                page.screenshot(path=str(Path(shots) / "runs-page.png"), full_page=True)

            page.get_by_role("link", name="Open").click()
            page.wait_for_url(f"**/run?run={run_id}")
            chart = page.locator(".vega-embed canvas, .vega-embed svg").first
            expect(chart).to_be_visible()
            box = chart.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100
            if shots:
                time.sleep(3)
                page.screenshot(path=str(Path(shots) / "run-page.png"), full_page=True)

            # Compare draws the finished run's episode returns (it is preselected).
            page.goto(f"{dashboard.url}/compare")
            expect(page.get_by_text("Metric (TensorBoard tag)")).to_be_visible()
            compare_chart = page.locator(".vega-embed canvas, .vega-embed svg").first
            expect(compare_chart).to_be_visible()
            box = compare_chart.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100
            expect(page.get_by_role("button", name="Data (CSV)")).to_be_visible()
        except BaseException:
            page.screenshot(path=str(dashboard.store.root.parent / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    record = dashboard.store.read_run(run_id)
    assert record is not None and record.state.value == "completed", record


def handshake(url: str, origin: str, host: str | None = None) -> int:
    """Status of a websocket upgrade to Streamlit's stream (101 accepted, 403 refused)."""
    import http.client

    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", "/_stcore/stream", skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    conn.putheader("Origin", origin)
    conn.putheader("Upgrade", "websocket")
    conn.putheader("Connection", "Upgrade")
    conn.putheader("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    conn.putheader("Sec-WebSocket-Version", "13")
    conn.endheaders()
    try:
        return conn.getresponse().status
    finally:
        conn.close()


def test_shipped_config_refuses_foreign_origins_and_host_names(dashboard: Dashboard) -> None:
    """CORS/XSRF on and allowedHosts set (.streamlit/config.toml): a page on another site,
    or one reached through a rebinding DNS name, cannot open the websocket (SEC-06, SEC-07)."""
    local = f"http://127.0.0.1:{dashboard.port}"
    assert handshake(dashboard.url, local) == 101
    assert handshake(dashboard.url, "http://evil.example") == 403
    assert handshake(dashboard.url, "http://evil.example", host="evil.example") == 403
