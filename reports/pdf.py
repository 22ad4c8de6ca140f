"""A report's PDF: the HTML printed by headless Chromium, the renderer the HTML was made for,
so the PDF shows what a browser shows (the charts are inline SVG: nothing to wait for).

Chromium is found on PATH (``chromium``, ``chromium-browser``, ``google-chrome``) or named by
``RETRO_ML_CHROMIUM``; without it ``--pdf`` says how to get it and the HTML is still made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 120.0


class PdfError(RuntimeError):
    """No PDF could be made; the message says why and what to do."""


def find_chromium() -> str:
    named = os.environ.get("RETRO_ML_CHROMIUM")
    if named:
        if shutil.which(named):
            return str(shutil.which(named))
        raise PdfError(f"RETRO_ML_CHROMIUM={named!r} is not an executable: point it at Chromium")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise PdfError(
        "a PDF needs Chromium, and none is on PATH: install it (Debian/Ubuntu: "
        "`sudo apt install chromium`) or set RETRO_ML_CHROMIUM to its path; the HTML report "
        "was made and prints to PDF from any browser"
    )


def html_to_pdf(html: Path, pdf: Path) -> None:
    """Print ``html`` to ``pdf`` (written under a temp name, renamed into place)."""
    exe = find_chromium()
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="retro-ml-pdf-") as profile:
        command = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
            "--disable-background-networking", "--no-first-run", "--no-pdf-header-footer",
            f"--user-data-dir={profile}", f"--print-to-pdf={tmp}", html.resolve().as_uri(),
        ]  # fmt: skip
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            _, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise PdfError(f"Chromium did not print the report within {TIMEOUT_S:.0f} s") from exc
        finally:  # Chromium's helpers share its new process group: none outlives the print
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise PdfError(f"Chromium could not print the report (exit {proc.returncode}): {last[0]}")
    os.replace(tmp, pdf)
