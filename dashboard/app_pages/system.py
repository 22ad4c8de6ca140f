"""System: this machine for training — CPU, memory, disk, GPUs, the PyTorch build, findings
with steps to fix them, recommended settings, and the health of the runner.

The web server never imports torch nor holds a CUDA context (DESIGN.md): the PyTorch half of
the report comes from ``python -m training.diagnostics --json`` run as a subprocess and cached
for a minute. Live figures (CPU, memory, disk, GPUs through NVML, the runs' own use) come from
psutil and NVML in this process and refresh on their own every few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import streamlit as st

from dashboard import data, fmt
from runstore.models import RunState
from training.diagnostics import probe_disk, probe_gpus, probe_memory

REPORT_TTL_SECONDS = 60
REPORT_TIMEOUT_SECONDS = 180
LIVE_SECONDS = 3.0
RUNNER_STALE_SECONDS = 30.0  # the runner writes runner.json every 5 s
ROOT = Path(__file__).resolve().parent.parent.parent
_SEVERITY = {"error": st.error, "warning": st.warning, "info": st.info}


@st.cache_data(ttl=REPORT_TTL_SECONDS, show_spinner="Checking PyTorch and the GPUs...")
def diagnostics_report(runs_dir: str) -> dict[str, Any]:
    """The full report from a subprocess (it imports torch; we do not). Never raises: a
    failure becomes ``{"error": ...}`` for the page to show."""
    cmd = [sys.executable, "-m", "training.diagnostics", "--json", "--runs-dir", runs_dir]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=REPORT_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{' '.join(cmd[1:4])} did not finish: {exc}"}
    if done.returncode != 0:
        return {"error": f"the diagnostics exited {done.returncode}: {done.stderr[-2000:]}"}
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        return {"error": f"the diagnostics printed no JSON ({exc}): {done.stdout[-500:]}"}


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
    count, cpu, rss, gpu = 0, 0.0, 0.0, 0.0
    for row in data.list_runs():
        if row.state not in (RunState.RUNNING, RunState.STARTING, RunState.STOPPING):
            continue
        status = data.read_status(row.id)
        if status is None:
            continue
        count += 1
        cpu += status.cpu_percent or 0.0
        rss += status.rss_mb or 0.0
        gpu += status.gpu_mem_mb or 0.0
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


def show_findings(findings: list[dict[str, Any]]) -> None:
    if not findings:
        st.success("Nothing to fix: this machine is ready to train.")
    for finding in findings:
        box = _SEVERITY.get(finding.get("severity", "info"), st.info)
        steps = "\n".join(f"- {step}" for step in finding.get("steps", []))
        detail = f"\n\n_{finding['detail']}_" if finding.get("detail") else ""
        box(f"**{finding['title']}**{detail}\n\n{steps}")


def show_recommendations(rec: dict[str, Any]) -> None:
    dqn = rec.get("dqn", {})
    st.markdown(
        f"- **device: {rec.get('device')}**: {rec.get('device_reason', '')}\n"
        f"- **n_envs: {rec.get('n_envs')}**, **vec_env: {rec.get('vec_env')}**: "
        f"{rec.get('vec_env_reason', '')}\n"
        f"- **DQN buffer_size: {dqn.get('buffer_size', 0):,}** with "
        f"optimize_memory_usage: {str(dqn.get('optimize_memory_usage')).lower()} "
        f"(about {fmt.size(dqn.get('buffer_bytes', 0))}): {dqn.get('reason', '')}"
    )
    for note in rec.get("notes", []):
        st.caption(note)


def show_build(report: dict[str, Any]) -> None:
    torch = report.get("torch", {})
    system, cpu = report.get("system", {}), report.get("cpu", {})
    cols = st.columns(2)
    with cols[0]:
        st.markdown(
            f"**Machine**: {system.get('os', '?')}, Python {system.get('python_version', '?')}  \n"
            f"**CPU**: {cpu.get('model') or '?'}, {cpu.get('physical_cores')} physical / "
            f"{cpu.get('logical_cores')} logical cores ({cpu.get('usable_cores')} usable)"
        )
    with cols[1]:
        if not torch.get("installed", True):
            st.markdown("**PyTorch**: not installed")
        else:
            usable = "yes" if torch.get("cuda_available") else "no"
            st.markdown(
                f"**PyTorch** {torch.get('version', '?')}: CUDA build "
                f"{torch.get('cuda_build') or 'none (CPU-only)'}, cuDNN "
                f"{torch.get('cudnn_version') or '—'}, CUDA usable: {usable}  \n"
                f"**Architectures compiled in**: {', '.join(torch.get('arch_list') or []) or '—'}"
            )
    packages = report.get("packages", {})
    versions = packages.get("versions", packages) if isinstance(packages, dict) else {}
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if isinstance(v, str))
    atari = report.get("atari", {})
    if shown:
        st.caption(f"Packages: {shown}")
    if atari:
        st.caption(
            f"Atari ROMs: {atari.get('roms_available')} of {atari.get('roms_known')} present"
        )


st.title("System")
level, message = runner_health()
{"ok": st.success, "stale": st.warning, "none": st.warning}[level](message)

st.subheader("Now")
live()

report = diagnostics_report(str(data.store().root))
if "error" in report and "findings" not in report:
    st.error(f"Could not run the machine report: {report['error']}")
    st.caption("Run `python -m training.diagnostics` in a terminal to see it there.")
    st.stop()

st.subheader("Findings")
show_findings(report.get("findings", []))

st.subheader("Recommended settings")
show_recommendations(report.get("recommendations", {}))

st.subheader("Build")
show_build(report)
if st.button("Check again", key="system_recheck", help="Runs the report again (a few seconds)"):
    diagnostics_report.clear()
    st.rerun()
st.caption(
    f"Report from {report.get('generated_at', '?')} (kept {REPORT_TTL_SECONDS} s). The same "
    "report in a terminal: `python -m training.diagnostics` (add `--json` for scripts)."
)
