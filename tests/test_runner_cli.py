"""``python -m runner`` argument parsing and run lookup, through the real command line.

No runner is started here: the commands only read the store and write request files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.cli import build_parser
from runstore import RunStore

from .conftest import ROOT, cartpole


def runner_cli(
    *args: str, cwd: Path = ROOT, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def make_run(store: RunStore, name: str) -> str:
    store.ensure_layout()
    path = store.submit(cartpole(extra=f"name: {name}\n"), f"{name}.yaml")
    record = store.accept(path, store.read_queue_file(path))
    assert record is not None
    return record.id


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[RunStore, str, Path]:
    """A runs folder with one run, and a working directory whose ./runs holds another: a
    command that ignores --runs-dir lists the wrong one."""
    store = RunStore(tmp_path / "mine")
    run_id = make_run(store, "mine")
    cwd = tmp_path / "cwd"
    decoy = RunStore(cwd / "runs")
    make_run(decoy, "decoy")
    return store, run_id, cwd


@pytest.mark.parametrize("where", ["before", "after"])
def test_runs_dir_works_before_or_after_the_command(two_folders, where: str):
    store, run_id, cwd = two_folders
    flag = ["--runs-dir", str(store.root)]
    args = [*flag, "ls"] if where == "before" else ["ls", *flag]
    env = {k: v for k, v in os.environ.items() if k != "RETRO_ML_RUNS_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    listing = runner_cli(*args, cwd=cwd, env=env)
    assert listing.returncode == 0, listing.stderr
    assert run_id in listing.stdout and "decoy" not in listing.stdout, listing.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_request_commands_take_runs_dir_in_either_place(two_folders, where: str):
    store, run_id, cwd = two_folders
    flag = ["--runs-dir", str(store.root)]
    args = [*flag, "pause", run_id] if where == "before" else ["pause", run_id, *flag]
    env = {k: v for k, v in os.environ.items() if k != "RETRO_ML_RUNS_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    result = runner_cli(*args, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert [r.action for r in store.pending_requests(run_id)[0]] == ["pause"]


@pytest.mark.parametrize(
    ("flag", "value", "attr", "expected"),
    [
        ("--runs-dir", "/tmp/x", "runs_dir", Path("/tmp/x")),
        ("--max-concurrent", "3", "max_concurrent", 3),
        ("--stop-grace", "7.5", "stop_grace", 7.5),
        ("--poll", "0.25", "poll", 0.25),
    ],
)
@pytest.mark.parametrize(
    "command",
    [[], ["ls"], ["stop", "abcd"], ["record", "abcd"], ["tag", "abcd", "x"], ["archive", "abcd"]],
)
def test_every_global_flag_parses_before_and_after_every_command(
    flag: str, value: str, attr: str, expected: object, command: list[str]
):
    """The same value whichever side of the command it is given on; the other flags keep
    their defaults (a subcommand's copy of a flag never overrides the global one)."""
    parser = build_parser()
    before = parser.parse_args([flag, value, *command])
    assert getattr(before, attr) == expected
    if command:
        after = parser.parse_args([*command, flag, value])
        assert getattr(after, attr) == expected
        assert vars(after) == vars(before)


@pytest.mark.parametrize("flag", ["--max-concurrent 2", "--stop-grace 5", "--poll 1"])
def test_supervisor_flags_with_a_command_are_refused_not_ignored(tmp_path: Path, flag: str):
    """They only mean something to the supervisor; silently ignoring them is the same kind
    of surprise as the ignored --runs-dir."""
    store = RunStore(tmp_path / "runs")
    store.ensure_layout()
    result = runner_cli("ls", *flag.split(), "--runs-dir", str(store.root))
    assert result.returncode == 2
    assert flag.split()[0] in result.stderr and "supervisor" in result.stderr


def test_short_empty_and_ambiguous_run_names_are_refused_with_candidates(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    only = make_run(store, "alpha")
    root = ["--runs-dir", str(store.root)]
    for query in ("", " ", "2", only[:3]):
        result = runner_cli("stop", query, *root)
        assert result.returncode == 2, (query, result.stdout)
        assert only in result.stderr, (query, result.stderr)  # the candidate, to copy
    assert store.pending_requests(only)[0] == []

    time.sleep(1.1)  # a second run, whose id shares the date prefix
    other = make_run(store, "alpha")  # the same name
    shared = os.path.commonprefix([only, other])[:8]
    for query in (shared, "alpha"):
        result = runner_cli("pause", query, *root)
        assert result.returncode == 2, (query, result.stdout)
        assert only in result.stderr and other in result.stderr, result.stderr
    assert store.pending_requests(only)[0] == store.pending_requests(other)[0] == []

    # What is accepted: the exact id, a unique prefix of at least 4 characters, a unique name.
    third = make_run(store, "beta")
    for query, run_id in ((only, only), (other, other), ("beta", third)):
        result = runner_cli("pause", query, *root)
        assert result.returncode == 0, (query, result.stderr)
        assert run_id in result.stdout
    unique = next(
        third[:n]
        for n in range(4, len(third) + 1)
        if not any(i.startswith(third[:n]) for i in (only, other))
    )
    result = runner_cli("resume", unique, *root)
    assert result.returncode == 0 and third in result.stdout, result.stderr


def test_timelapse_runs_in_a_process_of_its_own(tmp_path: Path):
    """``python -m runner timelapse`` runs ``python -m training.timelapse RUN_DIR`` as a
    child, as a time-lapse request does: the runner process never imports it (cv2, imageio),
    and the child's message and exit code are the command's."""
    store = RunStore(tmp_path / "runs")
    run_id = make_run(store, "lapse")
    result = runner_cli("timelapse", "lapse", "--runs-dir", str(store.root))
    assert result.returncode == 2 and result.stdout == ""
    videos = store.paths(run_id).videos
    expected = f"error: {videos} has no evaluation clips yet; they appear every video_every steps"
    assert result.stderr == expected + "\n"
    code = (
        "import sys\n"
        "from runner import cli\n"
        f"code = cli.main(['timelapse', 'lapse', '--runs-dir', {str(store.root)!r}])\n"
        "heavy = ('training.timelapse', 'training.video', 'cv2', 'imageio', 'torch')\n"
        "print(code, [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "2 []", out.stderr
    missing = runner_cli("timelapse", "nope", "--runs-dir", str(store.root))
    assert missing.returncode == 2 and "no run matches 'nope'" in missing.stderr
