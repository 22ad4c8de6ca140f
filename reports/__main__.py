"""``python -m reports``: make one report, the job the runner starts for a dashboard's request
(``runner/reports.py``), in its own process group, output to ``runs/reports/jobs/<id>.log``.

Exit 0: made; 2: a report that cannot be made (the last line says why); 1: the HTML was made
and its PDF was not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.build import make_report, make_sweep_report
from reports.facts import ReportError
from reports.pdf import PdfError
from runstore.store import RunStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the .html file to write")
    parser.add_argument("--group-seeds", action="store_true")
    parser.add_argument("--pdf", action="store_true")
    parser.add_argument("--sweep", help="a sweep id: the sweep's report (no runs)")
    parser.add_argument("runs", nargs="*", help="run ids")
    args = parser.parse_args(argv)
    store = RunStore(args.runs_dir)
    try:
        if args.sweep:
            made = make_sweep_report(store, args.sweep, pdf=args.pdf, out=args.out)
        else:
            made = make_report(
                store, args.runs, group_seeds=args.group_seeds, pdf=args.pdf, out=args.out
            )
    except ReportError as exc:
        print(f"no report: {exc}", file=sys.stderr)
        return 2
    except PdfError as exc:
        print(f"no PDF: {exc}", file=sys.stderr)
        return 1
    print(made.html.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
