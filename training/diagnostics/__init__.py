"""What this machine can train with, what is wrong with it, and which settings suit it.

``python -m training.diagnostics [--json] [--runs-dir PATH]`` prints a report: OS, Python, CPU,
memory, the disk under the runs folder, every NVIDIA GPU seen through NVML, the PyTorch build and
whether CUDA really works (a matmul and the Atari CNN's first convolution on each GPU), the RL
package versions and the Atari ROMs, then findings (problems with steps to fix them) and
recommended settings.

Why a separate process: the runner and the dashboard must never import torch or hold a CUDA
context, so the System page runs this package as a subprocess and reads its ``--json`` output
(:class:`machine.report.DiagnosticsReport`). Torch is imported only inside
:func:`~training.diagnostics.torch_probe.probe_torch`; the torch-free probes, NVML and the
recommended settings live in :mod:`machine`.

Where each part lives: :mod:`.torch_probe` (the build, the GPU test calculation),
:mod:`.report` (every probe into one report), :mod:`.findings` and :mod:`.gpu_findings`
(problems and their fixes), :mod:`.text` (the terminal rendering), :mod:`.cli` (the command).

A probe that raises does not crash the report: its section records the error and the findings
turn it into a finding. A machine without a GPU is normal, not an error: NVML failing to load
there becomes a calm "info" finding. The NVML and torch probes accept a stand-in module so tests
can walk the GPU code paths on a machine that has no GPU.
"""

from training.diagnostics.findings import findings
from training.diagnostics.report import build_report, resolve_runs_dir
from training.diagnostics.text import render_text
from training.diagnostics.torch_probe import probe_torch

__all__ = ["build_report", "findings", "probe_torch", "render_text", "resolve_runs_dir"]
