"""``python -m dashboard.serve [streamlit run options]``: ``streamlit run dashboard/app.py`` with
the anti-framing headers installed before the server starts (dashboard/headers.py).

``make run`` and ``make share`` (dashboard/share.py) start the dashboard this way, so the very
first page the server sends already refuses to be framed by another site; plain ``streamlit
run dashboard/app.py`` only gets them once the first session has run the app script.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def main(argv: list[str] | None = None) -> None:
    """Install the headers in this process, then hand it to Streamlit's own CLI (which never
    returns: it runs the server until it is stopped)."""
    from dashboard import headers

    if not headers.install():
        print("warning: no Starlette or Tornado found; pages can be framed", file=sys.stderr)
    from streamlit.web import cli

    args = sys.argv[1:] if argv is None else argv
    cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
