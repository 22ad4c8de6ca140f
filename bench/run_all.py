"""Run every benchmark in bench/ (``bench_*.py``), one after the other: ``make bench``.

    python bench/run_all.py                    # all of them, with their defaults
    python bench/run_all.py --device cuda      # the training benchmark on the GPU
    python bench/run_all.py --only train       # bench_train.py only

Each benchmark is its own process and prints its own table, baseline and ratio side by side;
this script adds nothing but the order, a header per benchmark and the exit status (non-zero
when any benchmark failed, after running the rest).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    return sorted(p for p in BENCH_DIR.glob("bench_*.py") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", help="passed to bench_train.py (cpu, cuda, cuda:N)")
    parser.add_argument("--only", help="comma-separated names, e.g. train,metrics")
    args = parser.parse_args(argv)
    found = benchmarks()
    if args.only:
        wanted = {
            name.strip().removeprefix("bench_").removesuffix(".py") for name in args.only.split(",")
        }
        names = {p.stem.removeprefix("bench_") for p in found}
        if wanted - names:
            parser.error(
                f"--only: no benchmark named {', '.join(sorted(wanted - names))}; "
                f"there are: {', '.join(sorted(names))}"
            )
        found = [p for p in found if p.stem.removeprefix("bench_") in wanted]
    failed = []
    for script in found:
        extra = ["--device", args.device] if args.device and script.name == "bench_train.py" else []
        print(f"\n===== {script.name} {' '.join(extra)}".rstrip() + " =====", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *extra], cwd=BENCH_DIR.parent)
        print(f"===== {script.name}: exit {code}, {time.perf_counter() - started:.0f} s =====")
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
