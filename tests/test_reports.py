"""Reports of real short runs (issue 17): a run report and a two-group comparison, opened in
Chromium with every request outside the file refused. Every chart has drawn marks, the
numbers in the tables equal the ones computed again here from the run store (with SciPy for
the tests), no external URL is requested, nothing a run's files say becomes markup, and the
PDF renders (pdftoppm) to non-blank pages. ``python -m runner report`` as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats as scipy_stats

from analysis import learning, stats
from reports.build import make_report
from runstore.metrics import load_episodes, load_scalars
from runstore.models import RunState
from runstore.reports import report_paths
from runstore.store import RunStore
from tests.conftest import ROOT, train

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Two learning rates, two seeds each: two seed groups.
GROUPS = {"lr-small": "0.0003", "lr-large": "0.001"}
SEEDS = (1, 2)
#: A name as an imported run.json might carry it: markup, a script, an external image.
HOSTILE = 'evil <script>window.pwned=1</script><img src="http://example.invalid/x.png">'

RUN_YAML = """\
algo: ppo
env: CartPole-v1
name: {name}
n_timesteps: 768
seed: {seed}
eval_every: 256
eval_episodes: 2
video_every: 512
video_length: 200
checkpoint_every: 100000
hyperparams:
  n_envs: 1
  n_steps: 64
  batch_size: 64
  n_epochs: 2
  learning_rate: {lr}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunStore]:
    """Four runs trained for real by ``python -m training``, marked completed as the runner
    would mark them."""
    rs = RunStore(tmp_path_factory.mktemp("reports") / "runs")
    rs.ensure_layout()
    ids = []
    for name, lr in GROUPS.items():
        for seed in SEEDS:
            path = rs.submit(RUN_YAML.format(name=name, seed=seed, lr=lr), f"{name}-{seed}.yaml")
            record = rs.accept(path, rs.read_queue_file(path))
            assert record is not None
            ids.append(record.id)
    train(rs, ids)
    for run_id in ids:
        record = rs.read_run(run_id)
        assert record is not None
        record.state = RunState.COMPLETED
        rs.write_run(record)
    yield rs


def _ids(rs: RunStore, name: str | None = None) -> list[str]:
    return [i for i in rs.run_ids() if name is None or f"-{name}-" in i]


def _open_offline(html: Path) -> dict:
    """Open a report in Chromium, refusing every request but the file itself; return what
    the page holds: requests made, charts and their marks, the tables' cell values."""
    from playwright.sync_api import sync_playwright

    url = html.resolve().as_uri()
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.route(
                "**/*",
                lambda route: route.continue_() if route.request.url == url else route.abort(),
            )
            page.goto(url)
            page.wait_for_load_state("load")
            found = page.evaluate(
                """() => ({
                charts: [...document.querySelectorAll('figure.chart')].map(f => ({
                    name: f.dataset.chart,
                    marks: [...f.querySelectorAll('g[class*="role-mark"] path, '
                        + 'g[class*="role-mark"] line, g[class*="role-mark"] rect')]
                        .filter(e => (e.getAttribute('d') || e.tagName !== 'path')).length,
                })),
                cells: Object.fromEntries([...document.querySelectorAll('table[id]')].map(t =>
                    [t.id, [...t.querySelectorAll('tr')].map(r =>
                        [...r.querySelectorAll('td')].map(c =>
                            c.dataset.value ?? c.textContent))])),
                posters: [...document.querySelectorAll('#clips img')].map(i => i.naturalWidth),
                scripts: document.querySelectorAll('script').length,
                pwned: window.pwned === 1,
                text: document.body.innerText,
            })"""
            )
        finally:
            browser.close()
    found["requested"] = [u for u in requested if not u.startswith("data:")]
    found["url"] = url
    return found


def _assert_offline_and_drawn(page: dict, at_least: int) -> None:
    assert page["requested"] == [page["url"]], page["requested"]
    assert page["scripts"] == 0 and not page["pwned"]
    assert len(page["charts"]) >= at_least, page["charts"]
    empty = [c["name"] for c in page["charts"] if c["marks"] == 0]
    assert not empty, f"charts with no marks: {empty}"


def test_a_run_report_opens_offline_with_drawn_charts_and_the_stores_numbers(
    store: RunStore, tmp_path: Path
):
    run_id = _ids(store, "lr-small")[0]
    record = store.read_run(run_id)
    assert record is not None
    record.name = HOSTILE  # as an imported run folder's run.json may say
    record.tags, record.note = ["baseline", "small-lr"], "first try\n<b>not bold</b>"
    store.write_run(record)
    try:
        made = make_report(store, [run_id], out=tmp_path / "run.html")
    finally:
        record.name, record.tags, record.note = "lr-small", [], ""
        store.write_run(record)
    page = _open_offline(made.html)
    # the eval curve, the episodes, SB3's training scalars, the system samples
    _assert_offline_and_drawn(page, at_least=4)
    assert HOSTILE in page["text"]  # shown as text, not run
    assert "baseline, small-lr" in page["text"] and "<b>not bold</b>" in page["text"]

    run_dir = store.paths(run_id).dir
    scalars = load_scalars(run_dir)
    curve = learning.eval_curve(scalars)
    final, best = learning.final_and_best(curve)
    assert final is not None and best is not None
    assert curve.height == 3  # evaluations at 256, 512 and the final one
    rows = [r for r in page["cells"]["scores"] if r]  # final, then best
    assert [float(v) for v in rows[0]] == [final.step, final.mean, final.std, final.low, final.high]
    assert [float(v) for v in rows[1]] == [best.step, best.mean, best.std, best.low, best.high]

    summary = [r[0] for r in page["cells"]["summary"] if r]
    returns = load_episodes(run_dir)["episode_return"].to_numpy()
    assert float(summary[0]) == pytest.approx(float(returns[-100:].mean()), rel=1e-12)
    assert float(summary[1]) == learning.mean_over_training(curve)

    reached = learning.time_to_threshold(
        curve, learning.default_thresholds(best.mean), float(scalars["wall_time"].min())
    )
    table = [r for r in page["cells"]["thresholds"] if r]
    assert [float(r[0]) for r in table] == [t.threshold for t in reached]
    assert [float(r[1]) for r in table] == [t.step for t in reached]  # all reached: the best is
    usage = learning.usage(scalars)
    assert usage is not None
    cpu = [r for r in page["cells"]["usage"] if r][1][0]
    assert float(cpu) == usage.cpu_hours

    assert page["posters"] and all(w > 0 for w in page["posters"])  # clips at 512 and the end
    assert "stable-baselines3" in page["text"] and "torch" in page["text"]  # versions


def test_a_comparison_of_two_seed_groups_matches_scipy_and_prints_to_pdf(
    store: RunStore, tmp_path: Path
):
    ids = _ids(store)
    made = make_report(store, ids, group_seeds=True, pdf=True, out=tmp_path / "cmp.html")
    page = _open_offline(made.html)
    _assert_offline_and_drawn(page, at_least=1)

    # each run's final score: its final evaluation's mean, read again from its event files
    finals = {
        i: learning.final_and_best(learning.eval_curve(load_scalars(store.paths(i).dir)))[0].mean
        for i in ids
    }
    by_group = {name: [finals[i] for i in _ids(store, name)] for name in GROUPS}
    # each row: the run's label with its id under it, ..., its final score
    runs = {next(i for i in ids if i in r[0]): float(r[-1]) for r in page["cells"]["runs"] if r}
    assert runs == {i: finals[i] for i in ids}

    groups = [r for r in page["cells"]["groups"] if r]
    assert len(groups) == 2
    for row in groups:  # labelled by the group's first run's name
        scores = by_group[row[0].split(" (")[0]]
        mean = stats.estimate(scores, "mean")
        assert int(row[1]) == len(SEEDS)
        assert [float(v) for v in row[2:5]] == [mean.point, mean.low, mean.high]
        assert float(row[2]) == pytest.approx(float(np.mean(scores)))
        assert float(row[5]) == stats.estimate(scores, "iqm").point
        assert float(row[6]) == pytest.approx(float(np.median(scores)))

    pair = [r for r in page["cells"]["pairs"] if r]
    a, b = (by_group[label.split(" (")[0]] for label in pair[0][:2])
    p = stats.probability_of_improvement(a, b)
    assert [float(v) for v in pair[0][2:5]] == [p.point, p.low, p.high]
    welch = scipy_stats.ttest_ind(a, b, equal_var=False).pvalue
    mwu = scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    for shown, expected in zip(pair[0][5:7], (welch, mwu), strict=True):
        if np.isnan(expected):
            assert shown == ""
        else:
            assert float(shown) == pytest.approx(float(expected), rel=1e-12)
    assert "fewer than 5 runs" in page["text"]  # two seeds a group: say it proves little

    diff_keys = {r[0] for r in page["cells"]["diff"] if r}
    assert diff_keys == {"hyperparams.learning_rate", "name", "seed"}

    assert made.pdf is not None and made.pdf.stat().st_size > 0
    subprocess.run(
        ["pdftoppm", "-r", "30", "-png", str(made.pdf), str(tmp_path / "page")], check=True
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages
    for png in pages:
        gray = Image.open(png).convert("L")
        assert gray.getextrema()[0] < 128, f"{png.name} is blank"


def test_runner_report_command_writes_into_runs_reports_and_says_what_is_wrong(
    store: RunStore, tmp_path: Path
):
    run_id = _ids(store, "lr-large")[0]

    def report(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "runner", "--runs-dir", str(store.root), "report"]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
        )

    done = report(run_id)
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.strip())
    assert written.parent == report_paths(store.root).dir and written.suffix == ".html"
    assert written.read_text(encoding="utf-8").startswith("<!doctype html>")

    missing = report("no-such-run")
    assert missing.returncode == 2 and "no-such-run" in missing.stderr
    twice = report(run_id, run_id)
    assert twice.returncode == 2 and "named twice" in twice.stderr
    wrong = report(run_id, "--out", str(tmp_path / "report.txt"))
    assert wrong.returncode == 2 and ".html" in wrong.stderr
    assert not (tmp_path / "report.txt").exists()

    no_browser = report(
        run_id,
        "--pdf",
        "--out",
        str(tmp_path / "nopdf.html"),
        env={**os.environ, "RETRO_ML_CHROMIUM": str(tmp_path / "no-chromium")},
    )
    assert no_browser.returncode == 1 and "RETRO_ML_CHROMIUM" in no_browser.stderr
    assert (tmp_path / "nopdf.html").exists()  # the HTML is made all the same
    assert not (tmp_path / "nopdf.pdf").exists()
    assert shutil.which("pdftoppm")  # the PDF test above needs it: .ci/run installs it


def test_a_failed_runs_report_says_why_and_shows_the_end_of_its_output(tmp_path: Path):
    from runstore.models import Diagnosis

    rs = RunStore(tmp_path / "runs")
    rs.ensure_layout()
    path = rs.submit(RUN_YAML.format(name="broke", seed=1, lr="0.001"), "broke.yaml")
    record = rs.accept(path, rs.read_queue_file(path))
    assert record is not None
    record.state = RunState.FAILED
    record.diagnosis = Diagnosis(
        code="out_of_memory",
        title="The machine ran out of memory",
        meaning="The trainer was killed for memory.",
        steps=("Lower n_envs", "Close other programs"),
    )
    rs.write_run(record)
    log = rs.paths(record.id).trainer_log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("step 1\nTraceback (most recent call last):\nMemoryError: <b>bad</b>\n")
    made = make_report(rs, [record.id], out=tmp_path / "failed.html")
    text = made.html.read_text(encoding="utf-8")
    assert "The machine ran out of memory" in text and "Lower n_envs" in text
    assert "MemoryError: &lt;b&gt;bad&lt;/b&gt;" in text  # the log is text, escaped
    assert "No evaluation was logged" in text and "No episode has finished yet" in text
