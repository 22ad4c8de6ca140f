"""Reports: the HTML (and PDF) reports in runs/reports/, newest first, to open and download;
and the report jobs the runner is running or could not finish."""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from dashboard import data, fmt

st.title("Reports")
jobs = data.report_jobs()
for job in jobs:
    if job.state == "running":
        st.info(f"Making a report of {len(job.runs)} run(s) (asked {fmt.clock(job.started_at)}).")
    elif job.state in ("failed", "lost") or job.error:
        st.warning(f"Report of {', '.join(job.runs[:3])}: {job.state}. {job.error}")

files = data.report_files()
if not files:
    st.info(
        "No reports yet. Make one with the Report button on a Run or the Compare page, or "
        "from a terminal: `python -m runner report RUN [MORE...] [--group-seeds] [--pdf]`."
    )
    st.stop()

st.caption(f"{len(files)} report(s) in `{data.store().root / 'reports'}`, newest first.")
for report in files[:50]:
    name = report.html.name
    with st.container(border=True):
        st.markdown(f"**{name}**  \n{fmt.clock(report.mtime)} · {report.size / 1e3:,.0f} kB")
        c_html, c_pdf, c_view = st.columns([1, 1, 2])
        # the bytes are read when a button is clicked (a callable), not for every report shown
        html_path = str(report.html)
        c_html.download_button(
            "HTML",
            lambda path=html_path: data.report_bytes(path),
            name,
            "text/html",
            key=f"rep_html_{name}",
            on_click="ignore",
        )
        if report.pdf is not None:
            pdf_path = str(report.pdf)
            c_pdf.download_button(
                "PDF",
                lambda path=pdf_path: data.report_bytes(path),
                report.pdf.name,
                "application/pdf",
                key=f"rep_pdf_{name}",
                on_click="ignore",
            )
        if c_view.toggle("Show here", key=f"rep_show_{name}"):
            # a sandboxed frame: the report has no script, and its own CSP forbids fetching
            content = data.report_bytes(html_path).decode("utf-8", errors="replace")
            components.html(content, height=900, scrolling=True)
