"""The import rules between our packages, read from the source with ``ast``.

Every ``import`` counts: at module level, inside a function, under ``try``/``except`` or
``if TYPE_CHECKING``. The rules (docs: the layering the design promised):

- ``runstore`` (the on-disk contract) imports none of our other packages, and no torch or SB3:
  every process imports it.
- ``machine`` (torch-free probes, NVML, the failure classifier) imports only ``runstore`` of
  ours, and of the rest only the standard library, psutil, pynvml and pydantic.
- ``runner`` and ``dashboard`` never import ``training`` nor torch, SB3, gymnasium, ale-py,
  OpenCV or imageio: they run what needs those as a subprocess, and never hold a CUDA context.
- ``training`` never imports ``runner`` or ``dashboard``.
- ``analysis`` (the numbers and charts behind pages and reports) imports only ``runstore`` of
  ours, and never Streamlit, torch, SB3 or the other libraries above.
- ``reports`` (built by the runner and shown by the dashboard) imports only ``runstore`` and
  ``analysis`` of ours, and never Streamlit, torch, SB3 or the other libraries above.
- ``journey`` (the media job behind journey videos) imports only ``runstore``, ``analysis``
  and ``reports`` of ours, OpenCV and imageio for frames, and never torch, SB3, gymnasium,
  ale-py or Streamlit: more footage is a ``training.record`` subprocess.
- Ray is imported only by ``runner.cluster`` (the runner's cluster backend, loaded only with a
  Ray address): the dashboard, the trainer and the local runner never load it.
- ``training.diagnostics`` imports torch only inside a function: a missing or broken torch is
  a finding of the report, not a crash of the command.

A broken rule fails the test naming ``file:line`` and the rule.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "runstore",
    "machine",
    "runner",
    "dashboard",
    "training",
    "analysis",
    "reports",
    "journey",
)
OURS = frozenset(PACKAGES)
HEAVY = frozenset({"torch", "stable_baselines3", "gymnasium", "ale_py", "cv2", "imageio"})
LIGHT_ONLY = HEAVY | {"streamlit"}
MACHINE_THIRD_PARTY = frozenset({"psutil", "pynvml", "pydantic"})


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository root, with forward slashes
    line: int
    module: str  # the absolute dotted name imported
    in_function: bool


def _package_of(path: str) -> str:
    """``training/diagnostics/cli.py`` -> ``training.diagnostics`` (the module's package)."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1])


def _resolve(path: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: str, source: str) -> list[Import]:
    """Every import in a module's source, function-local ones marked."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                found.extend(Import(path, child.lineno, a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = _resolve(path, child)
                found.append(Import(path, child.lineno, module, in_function))
                # `from machine import nvml` imports machine.nvml: name the submodule too
                found.extend(
                    Import(path, child.lineno, f"{module}.{a.name}", in_function)
                    for a in child.names
                    if a.name != "*"
                )
            visit(child, inner)

    visit(ast.parse(source, filename=path), False)
    return found


def _root(module: str) -> str:
    return module.split(".")[0]


def broken_rule(imp: Import) -> str | None:
    """Why this import breaks a rule, or None when it keeps them all."""
    package, root = _root(imp.path.replace("/", ".")), _root(imp.module)
    if package == "runstore" and root in OURS - {"runstore"}:
        return f"runstore imports nothing of ours ({imp.module})"
    if package in ("runstore", "machine") and root in {"torch", "stable_baselines3"}:
        return f"{package} never imports torch or SB3 ({imp.module})"
    if package == "machine":
        if root in OURS - {"runstore", "machine"}:
            return f"machine imports only runstore of ours ({imp.module})"
        allowed = root in OURS or root in MACHINE_THIRD_PARTY or root in sys.stdlib_module_names
        if not allowed:
            return f"machine imports only the standard library, psutil, pynvml, pydantic ({root})"
    if package == "analysis" and (root in OURS - {"runstore", "analysis"} or root in LIGHT_ONLY):
        return f"analysis imports only runstore of ours, no Streamlit, torch or SB3 ({imp.module})"
    if package == "reports" and (
        root in OURS - {"runstore", "analysis", "reports"} or root in LIGHT_ONLY
    ):
        return f"reports imports only runstore and analysis of ours, no torch ({imp.module})"
    journey_never = OURS - {"runstore", "analysis", "reports", "journey"} | LIGHT_ONLY
    if package == "journey" and root in journey_never - {"cv2", "imageio"}:
        return (
            f"journey imports only runstore, analysis and reports of ours, no torch ({imp.module})"
        )
    if package in ("runner", "dashboard") and (root in ("training", "journey") or root in HEAVY):
        return f"{package} never imports {root} (run it as a subprocess)"
    if package == "training" and root in ("runner", "dashboard"):
        return f"training never imports {root}"
    if root == "ray" and not imp.path.startswith("runner/cluster/"):
        return f"only runner.cluster imports Ray ({imp.module})"
    diagnostics = imp.path.startswith("training/diagnostics/")
    if diagnostics and root == "torch" and not imp.in_function:
        return "training.diagnostics imports torch only inside a function"
    return None


def violations(root: Path) -> list[str]:
    """``file:line: rule`` for every import that breaks a rule in the packages under ``root``
    (one line each: the first rule it breaks)."""
    out: dict[tuple[str, int], str] = {}
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            rel = file.relative_to(root).as_posix()
            for imp in imports_of(rel, file.read_text(encoding="utf-8")):
                rule = broken_rule(imp)
                if rule:
                    out.setdefault((rel, imp.line), f"{rel}:{imp.line}: {rule}")
    return [out[key] for key in sorted(out)]


def test_the_import_rules_hold() -> None:
    broken = violations(ROOT)
    assert not broken, "import rules broken:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("where", "source", "rule"),
    [
        (
            "dashboard/app_pages/bad.py",
            "import torch\n",
            "dashboard never imports torch",
        ),
        (
            "dashboard/bad.py",
            "def page():\n    try:\n        from training.diagnostics import build_report\n"
            "    except ImportError:\n        pass\n",
            "dashboard never imports training",
        ),
        ("runner/bad.py", "if True:\n    import cv2\n", "runner never imports cv2"),
        ("runstore/bad.py", "from runner import cli\n", "runstore imports nothing of ours"),
        ("runstore/bad.py", "from ..machine import nvml\n", "runstore imports nothing of ours"),
        ("machine/bad.py", "from training import diagnostics\n", "machine imports only runstore"),
        ("machine/bad.py", "import numpy\n", "machine imports only the standard library"),
        ("training/bad.py", "from dashboard import data\n", "training never imports dashboard"),
        ("training/diagnostics/bad.py", "import torch\n", "imports torch only inside a function"),
        ("reports/bad.py", "from runner import cli\n", "reports imports only runstore and"),
        ("reports/bad.py", "import torch\n", "reports imports only runstore and"),
        ("reports/bad.py", "import streamlit\n", "reports imports only runstore and"),
        ("analysis/bad.py", "from reports import html\n", "analysis imports only runstore"),
        ("analysis/bad.py", "from dashboard import data\n", "analysis imports only runstore"),
        ("analysis/bad.py", "import streamlit\n", "analysis imports only runstore"),
        ("journey/bad.py", "import torch\n", "journey imports only runstore"),
        ("journey/bad.py", "from training import record\n", "journey imports only runstore"),
        ("journey/bad.py", "import streamlit\n", "journey imports only runstore"),
        ("runner/bad.py", "from journey import make\n", "runner never imports journey"),
        ("runner/bad.py", "import ray\n", "only runner.cluster imports Ray"),
        ("dashboard/bad.py", "from ray.util import state\n", "only runner.cluster imports Ray"),
    ],
)
def test_the_checker_fails_on_a_deliberate_bad_import(
    tmp_path: Path, where: str, source: str, rule: str
) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    bad = tmp_path / where
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("from __future__ import annotations\n\n" + source, encoding="utf-8")
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{where}:") and rule in found[0], found


def test_the_checker_accepts_what_the_rules_allow(tmp_path: Path) -> None:
    allowed = {
        "machine/ok.py": "import json\nimport psutil\nfrom runstore.models import Diagnosis\n",
        "runner/ok.py": "import subprocess\nfrom machine.failures import explain\n",
        "dashboard/ok.py": "import streamlit\nfrom machine.report import DiagnosticsReport\n",
        "training/diagnostics/ok.py": "def probe():\n    import torch\n",
        "training/ok.py": "import torch\nfrom machine.failures import explain\n",
        "reports/ok.py": "import scipy\nfrom runstore.models import RunRecord\n",
        "reports/ok2.py": "import altair\nfrom analysis.stats import iqm\n",
        "analysis/ok.py": "import altair\nimport scipy\nfrom runstore.tags import EPISODE_RETURN\n",
        "dashboard/ok2.py": "from analysis.stats import iqm\n",
        "journey/ok.py": "import cv2\nimport imageio_ffmpeg\nfrom reports.facts import RunFacts\n",
        "runner/cluster/ok.py": "import ray\nfrom ray.exceptions import RayError\n",
    }
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    for where, source in allowed.items():
        (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / where).write_text(source, encoding="utf-8")
    assert violations(tmp_path) == []


def test_the_runner_imports_no_sweep_metrics_or_cluster_machinery_until_it_needs_them():
    """Every ``python -m runner`` command imports the CLI and the supervisor: Optuna, polars
    and the metrics reader (numba) come only with the sweep engine, on the first sweep (they
    cost a runner about 100 MB and half a second at start); Ray only with a Ray address."""
    import subprocess

    heavy = ("optuna", "polars", "numba", "runstore.metrics", "runner.sweeps", "ray")
    heavy += ("runner.cluster.backend", "runner.cluster.runs")
    code = "import sys, runner.cli, runner.supervisor\n"
    code += f"print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
