"""Benchmark: the idle runner with many run folders (issue 20, item 6).

    python bench/bench_runs.py                        # 10 (baseline), 1,000 and 5,000 runs
    python bench/bench_runs.py --runs 10,1000 --idle 10
    python bench/bench_runs.py --code /path/to/other/checkout   # the same, another version

For each size: a runs folder of finished (stopped) runs, made through ``runstore`` and copied
(``tests/test_many_runs.py`` ``finished_runs``); the real runner (``python -m runner``) is
started on it and measured:

* start: until it is idle (adoption reads every run.json once, the first step looks at every
  run's requests/ once): the first second it uses under 5% of a core;
* idle CPU: the runner process's own CPU time (user + system, ``psutil.cpu_times``) over
  ``--idle`` seconds, as a percentage of one core. CPU time, not wall-based sampling, so that
  other load on the machine does not count;
* threads: ``num_threads`` while idle;
* request: a delete request dropped into one stopped run's ``requests/``, until the folder is
  gone (the sweep's latency);
* SIGTERM to exit.

Then, unless ``--no-pages``, the Runs and Compare pages on a runs folder of that size (every
state, a few games: ``tests/faults/harness.py`` ``many_runs``), under Streamlit's AppTest in a
fresh process each size: the first render (fresh process, empty caches) and a warm rerun
(median of 3: what the Runs page's 2 s refresh costs).

Each size runs with a fresh runner; 10 runs is the baseline the ratios are taken against.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _wait(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def measure(runs: int, idle: float, code: Path) -> dict[str, float]:
    import psutil

    from runstore import RunStore
    from tests.test_many_runs import finished_runs

    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    store = RunStore(tmp / "runs")
    try:
        t0 = time.perf_counter()
        ids = finished_runs(store, runs)
        made = time.perf_counter() - t0
        log_path = tmp / "runner.log"
        env = {**os.environ, "PYTHONPATH": str(code)}
        with open(log_path, "wb") as log:
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "runner", "--runs-dir", str(store.root)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=code,
                env=env,
                start_new_session=True,
            )
            try:
                _wait(
                    lambda: proc.poll() is not None or b"supervising" in log_path.read_bytes(),
                    600,
                    "the runner to start",
                )
                if proc.poll() is not None:
                    raise SystemExit(f"the runner ended: {log_path.read_text()[-2000:]}")
                p = psutil.Process(proc.pid)
                # Its first step looks at every run once (requests that arrived while no
                # runner ran): start-up work, not idle. Idle starts with the first second
                # under 5% of a core (at most two minutes on).
                settle_end = time.monotonic() + 120
                while time.monotonic() < settle_end:
                    a = sum(p.cpu_times()[:2])
                    time.sleep(1.0)
                    if sum(p.cpu_times()[:2]) - a < 0.05:
                        break
                start_s = time.monotonic() - started
                before, t_before = p.cpu_times(), time.monotonic()
                threads = p.num_threads()
                time.sleep(idle)
                after, t_after = p.cpu_times(), time.monotonic()
                threads = max(threads, p.num_threads())
                used = (after.user + after.system) - (before.user + before.system)
                cpu = 100.0 * used / (t_after - t_before)
                victim = ids[len(ids) // 2]
                store.write_request(victim, "delete")
                request_s = _wait(lambda: not (store.root / victim).exists(), 120, "the delete")
                t_term = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=120)
                    exit_s = time.monotonic() - t_term
                except subprocess.TimeoutExpired:
                    exit_s = float("inf")
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        return {
            "runs": runs,
            "make_s": made,
            "start_s": start_s,
            "cpu_pct": cpu,
            "threads": threads,
            "request_s": request_s,
            "exit_s": exit_s,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure_pages(runs: int) -> dict[str, float]:
    """In this process: ``runs`` run folders, then the Runs and Compare pages' render times."""
    from runstore import RunStore
    from tests.faults.harness import many_runs

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        store = RunStore(tmp / "runs")
        many_runs(store, runs)
        os.environ["RETRO_ML_RUNS_DIR"] = str(store.root)
        os.environ["RETRO_ML_NO_AUTOSTART"] = "1"
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)

        def render(page: str | None = None) -> float:
            t0 = time.perf_counter()
            (at.switch_page(page) if page else at).run()
            took = time.perf_counter() - t0
            if at.exception:
                raise SystemExit(f"{page or 'Runs'} raised: {at.exception[0].message}")
            return took

        out = {"runs_first_s": render()}  # the Runs page is the first page
        out["runs_warm_s"] = statistics.median(render() for _ in range(3))
        out["compare_first_s"] = render("app_pages/compare.py")
        out["compare_warm_s"] = statistics.median(render() for _ in range(3))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pages_in_fresh_process(runs: int) -> dict[str, float]:
    from bench.bench_dashboard import in_fresh_process

    return in_fresh_process(runs, __file__, "--pages-child")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="10,1000,5000", help="sizes, the first the baseline")
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds measured")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout the runner runs from")
    parser.add_argument("--no-pages", action="store_true", help="the runner only")
    parser.add_argument("--pages-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pages_child is not None:
        print(json.dumps(measure_pages(args.pages_child)))
        return 0
    sizes = [int(x) for x in args.runs.split(",")]
    print(f"idle runner, {args.idle:.0f} s of CPU time measured per size; code: {args.code}")
    header = ("runs", "make s", "start s", "CPU % core", "threads", "request s", "exit s")
    print("".join(f"{h:>12}" for h in header), flush=True)
    results = []
    for runs in sizes:
        r = measure(runs, args.idle, args.code)
        results.append(r)
        row = (
            f"{runs:>12}{r['make_s']:>12.1f}{r['start_s']:>12.2f}{r['cpu_pct']:>12.2f}"
            f"{r['threads']:>12}{r['request_s']:>12.2f}{r['exit_s']:>12.2f}"
        )
        print(row, flush=True)
    base = results[0]
    for r in results[1:]:
        ratio = r["cpu_pct"] / base["cpu_pct"] if base["cpu_pct"] else float("nan")
        print(f"{r['runs']} vs {base['runs']} runs: idle CPU {ratio:.1f}x")
    if args.no_pages:
        return 0
    print("\npages (AppTest script run, server time): first render in a fresh process, warm rerun")
    header = ("runs", "Runs first", "Runs warm", "Compare 1st", "Compare warm")
    print("".join(f"{h:>14}" for h in header), flush=True)
    for runs in sizes:
        p = pages_in_fresh_process(runs)
        print(
            f"{runs:>14}{p['runs_first_s']:>13.2f}s{p['runs_warm_s']:>13.2f}s"
            f"{p['compare_first_s']:>13.2f}s{p['compare_warm_s']:>13.2f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
