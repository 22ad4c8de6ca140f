"""Benchmark: the Runs page's server time with many run folders.

    python bench/bench_dashboard.py                 # 1,000 runs (and 10 as the baseline)
    python bench/bench_dashboard.py --runs 3000     # another size

Makes the run folders through ``runstore`` (queue file, ``accept``, ``write_run``, a
status.json each, every state, a few games and algorithms: tests/faults/harness.py
``many_runs``), then runs the real app script under Streamlit's AppTest (no browser, no
network: the time is the server's, the script run that builds the page) and measures:

* first run in a fresh process (imports, empty caches): what the first visitor waits for;
* cold caches: ``st.cache_data`` cleared, modules already imported;
* warm: nothing changed on disk (each run costs a ``stat`` of three files), median of 5;
* one run's status.json rewritten (as a training run does every few seconds), median of 5.

Each size runs in its own fresh process. The baseline is the same page with 10 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
REPEATS = 5


def measure(runs: int) -> dict[str, float]:
    """In this process: make ``runs`` run folders and time the Runs page on them."""
    sys.path.insert(0, str(ROOT))
    from dashboard.data import PAGE_SIZE
    from runstore import RunStore, TrainStatus, write_status_file
    from tests.faults.harness import many_runs

    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-")) / "runs"
    os.environ["RETRO_ML_RUNS_DIR"] = str(folder)
    os.environ["RETRO_ML_NO_AUTOSTART"] = "1"
    store = RunStore(folder)
    started = time.perf_counter()
    ids = many_runs(store, runs)
    made = time.perf_counter() - started

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def page() -> float:
        t0 = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - t0
        if at.exception:
            raise SystemExit(f"the Runs page raised: {at.exception[0].message}")
        shown = len(at.dataframe[0].value)
        if shown != min(runs, PAGE_SIZE):  # the page shows one page of the table
            raise SystemExit(f"the Runs page shows {shown} runs, not {min(runs, PAGE_SIZE)}")
        return elapsed

    at = AppTest.from_file(str(APP), default_timeout=600)
    first = page()
    st.cache_data.clear()
    cold = page()
    warm = statistics.median(page() for _ in range(REPEATS))
    changed = []
    for i in range(REPEATS):
        write_status_file(
            store.paths(ids[i]).status_json,
            TrainStatus(phase="training", timesteps=1000 + i, total_timesteps=50_000, fps=900.0),
        )
        changed.append(page())
    return {
        "runs": runs,
        "make_s": made,
        "first_s": first,
        "cold_s": cold,
        "warm_s": warm,
        "changed_s": statistics.median(changed),
    }


def in_fresh_process(runs: int, script: str = __file__, flag: str = "--child") -> dict[str, float]:
    """``script flag runs`` in a fresh process; its last line of output, as JSON (also used
    by bench_runs.py for its page measurement)."""
    out = subprocess.run(
        [sys.executable, script, flag, str(runs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{runs} runs: the measuring process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="run folders (default 1000)")
    parser.add_argument("--baseline", type=int, default=10, help="baseline size (default 10)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(args.child)))
        return 0
    base = in_fresh_process(args.baseline)
    big = in_fresh_process(args.runs)
    print(f"Runs page server time (AppTest script run), {args.baseline} vs {args.runs} runs")
    print(f"{'measure':<34}{args.baseline:>10} runs{args.runs:>10} runs{'ratio':>8}")
    rows = [
        ("first run (fresh process)", "first_s"),
        ("cold caches (cache_data cleared)", "cold_s"),
        ("warm (nothing changed), median", "warm_s"),
        ("one status.json changed, median", "changed_s"),
    ]
    for label, key in rows:
        ratio = big[key] / base[key] if base[key] else float("nan")
        print(f"{label:<34}{base[key]:>13.3f} s{big[key]:>13.3f} s{ratio:>7.1f}x")
    per_run = (big["warm_s"] - base["warm_s"]) / max(1, args.runs - args.baseline) * 1000
    print(f"warm cost per run: {per_run:.2f} ms; making {args.runs} run folders: "
          f"{big['make_s']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
