"""The report as plain text for a terminal or a bug report: one function per block."""

from __future__ import annotations

from typing import Any

from machine.recommend import recommend_settings
from machine.util import gib
from training.diagnostics.findings import findings

__all__ = ["render_text"]


def _line(label: str, value: str) -> str:
    return f"{label:<9}{value}"


def _machine_lines(report: dict[str, Any]) -> list[str]:
    system, cpu = report.get("system", {}), report.get("cpu", {})
    mem, disk = report.get("memory", {}), report.get("disk", {})
    system_text = system.get("probe_error") or (
        f"{system.get('os')} | Python {system.get('python_version')} "
        f"({system.get('python_implementation')})"
    )
    cpu_text = cpu.get("probe_error") or (
        f"{cpu.get('model') or 'unknown model'}, {cpu.get('physical_cores')} physical / "
        f"{cpu.get('logical_cores')} logical cores"
    )
    mem_text = mem.get("probe_error") or (
        f"{gib(mem.get('effective_available_bytes'))} available of "
        f"{gib(mem.get('effective_total_bytes'))}"
        + (" (container limit)" if mem.get("cgroup_limit_bytes") else "")
    )
    disk_text = disk.get("probe_error") or (
        f"{disk.get('runs_dir')}{'' if disk.get('exists') else ' (not created yet)'}: "
        f"{gib(disk.get('free_bytes'))} free of {gib(disk.get('total_bytes'))}"
    )
    return [
        _line("System", system_text),
        _line("CPU", cpu_text),
        _line("Memory", mem_text),
        _line("Disk", disk_text),
    ]


def _gpu_device_lines(device: dict[str, Any]) -> list[str]:
    d = device
    if "error" in d:
        return [f"   GPU {d['index']}: {d['error']}"]
    lines = [
        f"   GPU {d['index']}: {d.get('name')}, compute capability "
        f"{d.get('compute_capability')}, memory {gib(d.get('memory_used_bytes'))} used "
        f"of {gib(d.get('memory_total_bytes'))}, util {d.get('utilization_gpu_percent')}%"
        f", {d.get('temperature_c')} °C, {d.get('power_w')} W / {d.get('power_limit_w')} W"
    ]
    for p in d.get("processes", []):
        lines.append(
            f"      pid {p['pid']} {p.get('name') or '(name unknown)'}, "
            f"{gib(p.get('used_memory_bytes'))}"
        )
    return lines


def _gpu_lines(gpus: dict[str, Any]) -> list[str]:
    if gpus.get("probe_error"):
        return [_line("GPUs", gpus["probe_error"])]
    if not gpus.get("nvml_available"):
        return [_line("GPUs", f"none visible (NVML: {gpus.get('error')})")]
    lines = [
        _line(
            "GPUs",
            f"{len(gpus.get('devices', []))} | driver {gpus.get('driver_version')}, "
            f"supports CUDA up to {gpus.get('cuda_driver_version')}",
        )
    ]
    for device in gpus.get("devices", []):
        lines += _gpu_device_lines(device)
    return lines


def _software_lines(report: dict[str, Any]) -> list[str]:
    torch = report.get("torch", {})
    lines = []
    if torch.get("probe_error") or not torch.get("installed"):
        lines.append(_line("PyTorch", torch.get("probe_error") or "not installed"))
    else:
        lines.append(
            _line(
                "PyTorch",
                f"{torch.get('version')}, CUDA build {torch.get('cuda_build') or 'none'}, "
                f"cuDNN {torch.get('cudnn_version') or 'none'}, CUDA usable: "
                f"{'yes' if torch.get('cuda_available') else 'no'}"
                + (f", test: {torch.get('smoke_test')}" if torch.get("smoke_test") else ""),
            )
        )
        if torch.get("arch_list"):
            lines.append(f"   built for {' '.join(torch['arch_list'])}")
    packages, atari = report.get("packages", {}), report.get("atari", {})
    roms = (
        atari.get("probe_error")
        or f"{atari.get('roms_available')}/{atari.get('roms_known')} Atari ROMs"
    )
    packages_text = packages.get("probe_error") or (
        f"stable-baselines3 {packages.get('stable_baselines3')}, gymnasium "
        f"{packages.get('gymnasium')}, ale-py {packages.get('ale_py')} ({roms})"
    )
    return [*lines, _line("Packages", packages_text)]


def _recommendation_lines(rec: dict[str, Any]) -> list[str]:
    dqn = rec["dqn"]
    return [
        "",
        "Recommended settings",
        f"  device: {rec['device']}  ({rec['device_reason']})",
        f"  n_envs: {rec['n_envs']}, vec_env: {rec['vec_env']}  ({rec['vec_env_reason']})",
        f"  DQN buffer_size: {dqn['buffer_size']:,}, optimize_memory_usage: "
        f"{str(dqn['optimize_memory_usage']).lower()}  (about {gib(dqn['buffer_bytes'])}. "
        f"{dqn['reason']})",
    ]


def _finding_lines(found: list[dict[str, Any]]) -> list[str]:
    lines = ["", "Findings"]
    if not found:
        lines.append("  none")
    for f in found:
        lines.append(f"  [{f['severity']}] {f['title']}")
        if f.get("detail"):
            lines.append(f"      ({f['detail']})")
        lines += [f"      - {step}" for step in f["steps"]]
    return lines


def render_text(report: dict[str, Any]) -> str:
    """The report as plain text for a terminal or a bug report."""
    found = report.get("findings")
    lines = [
        f"Retro ML diagnostics ({report.get('generated_at', '')})",
        "",
        *_machine_lines(report),
        *_gpu_lines(report.get("gpus", {})),
        *_software_lines(report),
        *_recommendation_lines(report.get("recommendations") or recommend_settings(report)),
        *_finding_lines(findings(report) if found is None else found),
    ]
    return "\n".join(lines) + "\n"
