"""System: this machine for training — CPU, memory, disk, GPUs, the PyTorch build, findings
with steps to fix them, recommended settings, the health of the runner, and the runs folder's
storage (each run's size, a bulk clean-up: ``dashboard/components/storage.py``).

The web server never imports torch nor holds a CUDA context (tests/test_layering.py): the
PyTorch half of the report comes from ``python -m training.diagnostics --json`` run as a
subprocess, read as a :class:`machine.report.DiagnosticsReport` and cached for a minute. Live
figures (CPU, memory, disk, GPUs through NVML, the runs' own use) come from :mod:`machine` in
this process and refresh on their own every few seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import streamlit as st
from pydantic import ValidationError

from dashboard import data, fmt
from dashboard.components.cluster import render_cluster
from dashboard.components.storage import render_storage
from machine.nvml import probe_gpus
from machine.probes import probe_disk, probe_memory
from machine.report import DiagnosticsReport, Finding, Recommendations

REPORT_TTL_SECONDS = 60
REPORT_TIMEOUT_SECONDS = 180
LIVE_SECONDS = 3.0
RUNNER_STALE_SECONDS = 30.0  # the runner writes runner.json every 2 s
ROOT = Path(__file__).resolve().parent.parent.parent
_SEVERITY = {"error": st.error, "warning": st.warning, "info": st.info}


@st.cache_data(ttl=REPORT_TTL_SECONDS, show_spinner="Checking PyTorch and the GPUs...")
def diagnostics_report(runs_dir: str) -> DiagnosticsReport | str:
    """The full report from a subprocess (it imports torch; we do not), or why there is none.
    Never raises."""
    cmd = [sys.executable, "-m", "training.diagnostics", "--json", "--runs-dir", runs_dir]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=REPORT_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd[1:4])} did not finish: {exc}"
    if done.returncode != 0:
        return f"the diagnostics exited {done.returncode}: {done.stderr[-2000:]}"
    try:
        return DiagnosticsReport.model_validate_json(done.stdout)
    except ValidationError as exc:
        return f"the diagnostics printed no report ({exc}): {done.stdout[-500:]}"


def runner_health() -> tuple[str, str]:
    """(level, message): level is ok / stale / none."""
    rs = data.store()
    info = rs.read_runner_info()
    alive = rs.runner_is_alive()
    if info is None:
        return ("none" if not alive else "stale"), (
            "No runner is supervising this folder (none has run here yet): queued runs wait. "
            "Start one with `python -m runner`."
            if not alive
            else "A runner holds the folder lock but has written no heartbeat yet."
        )
    age = time.time() - info.heartbeat_at
    who = (
        f"pid {info.pid} on {info.host}, version {info.version}, up since {fmt.clock(info.started)}"
    )
    if not alive:
        return "none", (
            f"No runner is supervising this folder (the last one was {who}): queued runs wait."
        )
    if age > RUNNER_STALE_SECONDS:
        return "stale", (
            f"The runner ({who}) holds the folder but its heartbeat is {fmt.duration(age)} old: "
            "it may be hung. Queued runs and requests wait until it answers; restart it if this "
            "lasts."
        )
    return "ok", f"Runner healthy: {who}; heartbeat {age:.0f} s ago."


def runs_usage() -> tuple[int, float, float, float]:
    """(live runs, CPU % summed, RSS MB summed, GPU MB summed) from the runs' status.json."""
    statuses = data.working_statuses()
    cpu = sum(s.cpu_percent or 0.0 for s in statuses)
    rss = sum(s.rss_mb or 0.0 for s in statuses)
    gpu = sum(s.gpu_mem_mb or 0.0 for s in statuses)
    count = len(statuses)
    return count, cpu, rss, gpu


@st.fragment(run_every=LIVE_SECONDS)
def live() -> None:
    """Totals that refresh on their own; only this part of the page reruns."""
    rs = data.store()
    per_core = psutil.cpu_percent(percpu=True)
    memory = probe_memory()
    disk = probe_disk(rs.root)
    cols = st.columns(4)
    cols[0].metric(
        "CPU",
        f"{sum(per_core) / max(len(per_core), 1):.0f} %",
        help="Per core: " + ", ".join(f"{p:.0f}%" for p in per_core),
    )
    total = memory["effective_total_bytes"]
    free = memory["effective_available_bytes"]
    cols[1].metric("Memory free", fmt.size(free), help=f"of {fmt.size(total)}")
    cols[2].metric("Disk free (runs folder)", fmt.size(disk["free_bytes"]))
    count, cpu, rss, gpu_mb = runs_usage()
    cols[3].metric(
        "Training runs",
        count,
        help=f"together: CPU {cpu:.0f}% (100 = one core), memory {rss:,.0f} MB"
        + (f", GPU memory {gpu_mb:,.0f} MB" if gpu_mb else ""),
    )
    if count:
        st.caption(
            f"The {count} live run(s) use CPU {cpu:.0f}% (100 = one core), memory "
            f"{rss:,.0f} MB" + (f", GPU memory {gpu_mb:,.0f} MB" if gpu_mb else "") + "."
        )
    gpus = probe_gpus()
    if gpus["nvml_available"]:
        rows = []
        for dev in gpus["devices"]:
            if "error" in dev:
                rows.append({"GPU": dev["index"], "name": f"error: {dev['error']}"})
                continue
            rows.append(
                {
                    "GPU": dev["index"],
                    "name": dev["name"],
                    "util %": dev["utilization_gpu_percent"],
                    "memory used": fmt.size(dev["memory_used_bytes"] or 0),
                    "memory total": fmt.size(dev["memory_total_bytes"] or 0),
                    "compute capability": dev["compute_capability"],
                    "temp °C": dev["temperature_c"],
                    "power W": dev["power_w"],
                    "processes": len(dev["processes"]),
                }
            )
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(
            f"Driver {gpus['driver_version']}, supports CUDA up to {gpus['cuda_driver_version']}"
        )
    else:
        st.caption("No NVIDIA GPU is visible (NVML is not available): training runs on the CPU.")
    st.caption(f"Updated {time.strftime('%H:%M:%S')}, every {LIVE_SECONDS:.0f} s.")


def show_findings(findings: list[Finding]) -> None:
    if not findings:
        st.success("Nothing to fix: this machine is ready to train.")
    for finding in findings:
        box = _SEVERITY.get(finding.severity, st.info)
        steps = "\n".join(f"- {step}" for step in finding.steps)
        detail = f"\n\n_{finding.detail}_" if finding.detail else ""
        box(f"**{finding.title}**{detail}\n\n{steps}")


def show_recommendations(rec: Recommendations) -> None:
    dqn = rec.dqn
    st.markdown(
        f"- **device: {rec.device}**: {rec.device_reason}\n"
        f"- **n_envs: {rec.n_envs}**, **vec_env: {rec.vec_env}**: {rec.vec_env_reason}\n"
        f"- **DQN buffer_size: {dqn.buffer_size:,}** with "
        f"optimize_memory_usage: {str(dqn.optimize_memory_usage).lower()} "
        f"(about {fmt.size(dqn.buffer_bytes)}): {dqn.reason}"
    )
    for note in rec.notes:
        st.caption(note)


def show_build(report: DiagnosticsReport) -> None:
    torch, system, cpu = report.torch, report.system, report.cpu
    cols = st.columns(2)
    with cols[0]:
        st.markdown(
            f"**Machine**: {system.os or '?'}, Python {system.python_version or '?'}  \n"
            f"**CPU**: {cpu.model or '?'}, {cpu.physical_cores} physical / "
            f"{cpu.logical_cores} logical cores ({cpu.usable_cores} usable)"
        )
    with cols[1]:
        if torch.probe_error or not torch.installed:
            st.markdown(f"**PyTorch**: {torch.probe_error or 'not installed'}")
        else:
            usable = "yes" if torch.cuda_available else "no"
            st.markdown(
                f"**PyTorch** {torch.version or '?'}: CUDA build "
                f"{torch.cuda_build or 'none (CPU-only)'}, cuDNN "
                f"{torch.cudnn_version or '—'}, CUDA usable: {usable}  \n"
                f"**Architectures compiled in**: {', '.join(torch.arch_list) or '—'}"
            )
    shown = ", ".join(f"{k} {v}" for k, v in report.packages.items() if isinstance(v, str))
    if shown:
        st.caption(f"Packages: {shown}")
    if report.atari.roms_known is not None:
        st.caption(
            f"Atari ROMs: {report.atari.roms_available} of {report.atari.roms_known} present"
        )


st.title("System")
level, message = runner_health()
{"ok": st.success, "stale": st.warning, "none": st.warning}[level](message)

render_cluster(data.store().read_runner_info())

st.subheader("Now")
live()

st.subheader("Storage")
render_storage()

report = diagnostics_report(str(data.store().root))
if isinstance(report, str):
    st.error(f"Could not run the machine report: {report}")
    st.caption("Run `python -m training.diagnostics` in a terminal to see it there.")
    st.stop()

st.subheader("Findings")
show_findings(report.findings)

st.subheader("Recommended settings")
show_recommendations(report.recommendations)

st.subheader("Build")
show_build(report)
if st.button("Check again", key="system_recheck", help="Runs the report again (a few seconds)"):
    diagnostics_report.clear()
    st.rerun()
st.caption(
    f"Report from {report.generated_at or '?'} (kept {REPORT_TTL_SECONDS} s). The same "
    "report in a terminal: `python -m training.diagnostics` (add `--json` for scripts)."
)
