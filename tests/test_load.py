"""Load: many configs dropped at once with ``--max-concurrent 2``.

All complete, they start first-in first-out (``started_at`` follows queue order), never more
than two train at a time (run.json states and the process table, sampled all along), and the
runner's own CPU stays small while it watches an idle folder full of finished runs.
``make test`` drops 10 configs; ``make faults`` drops 50 (RETRO_ML_LOAD_CONFIGS).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil
import pytest

from runstore import RunState

from .conftest import Runs, cartpole, wait_for
from .faults.harness import LEDGER, half_written_json

CONFIGS = int(os.environ.get("RETRO_ML_LOAD_CONFIGS") or 10)
IDLE_CPU_BOUND = 20.0  # percent of one core; a busy loop would show ~100


def _trainers(root: str) -> list[str]:
    """Trainers alive during the whole scan (pid, parent, start time, run folder): walking the
    process table takes a while on a loaded machine, and one trainer exiting at its start while
    the next one starts at its end were never alive together."""
    start = time.time()
    found = []
    for proc in psutil.process_iter(["cmdline", "status", "create_time", "ppid"]):
        cmd = proc.info["cmdline"] or []
        if (
            proc.info["status"] != psutil.STATUS_ZOMBIE
            and "training" in cmd
            and any(arg.startswith(root) for arg in cmd)
            and proc.info["create_time"] < start
        ):
            found.append(proc)
    # A trainer's own child still has the trainer's command line until it execs: SB3's first
    # checkpoint save runs `uname -p` (stable_baselines3 get_system_info -> platform.platform),
    # which a scan on a loaded machine can catch between fork and exec. Not a trainer.
    pids = {proc.pid for proc in found}
    found = [proc for proc in found if proc.info["ppid"] not in pids]
    alive = []
    for proc in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                run = next(a for a in proc.info["cmdline"] if a.startswith(root))
                alive.append(
                    f"pid {proc.pid} ppid {proc.info['ppid']} since "
                    f"{proc.info['create_time']:.2f} {os.path.basename(run)} ({proc.status()})"
                )
    return alive


@pytest.mark.faults
def test_many_configs_at_once_run_fifo_two_at_a_time(runs: Runs):
    runner = runs.runner("--max-concurrent", "2")
    names = [f"load-{i:03d}" for i in range(CONFIGS)]
    for name in names:
        runs.submit(cartpole(steps=300, ckpt=300, extra=f"name: {name}\n"), f"{name}.yaml")
    root = str(runs.store.root)
    peak: dict = {"states": 0, "processes": 0, "samples": 0, "detail": []}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            live = 0
            for run_id in runs.store.run_ids():
                record = runs.store.read_run(run_id)
                live += record is not None and record.state.is_live
            peak["states"] = max(peak["states"], live)
            trainers = _trainers(root)
            if len(trainers) > peak["processes"]:
                peak["processes"], peak["detail"] = len(trainers), trainers
            peak["samples"] += 1
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:

        def all_completed() -> bool:
            ids = runs.store.run_ids()
            return len(ids) == CONFIGS and all(
                (r := runs.store.read_run(i)) is not None and r.state.is_ended for i in ids
            )

        wait_for(all_completed, 60 + 15 * CONFIGS, f"{CONFIGS} runs to end")
    finally:
        done.set()
        sampler.join(timeout=30)
    records = [runs.record(i) for i in runs.store.run_ids()]
    assert {r.state for r in records} == {RunState.COMPLETED}, [
        (r.name, r.state.value, r.reason) for r in records if r.state != RunState.COMPLETED
    ]
    assert all(r.attempts == 1 for r in records)
    started = [r.name for r in sorted(records, key=lambda r: r.started_at)]
    assert started == names, "runs did not start in queue order"
    assert peak["samples"] > 10
    assert peak["states"] <= 2, f"{peak['states']} runs live at once"
    assert peak["processes"] <= 2, f"trainers alive together: {peak['detail']}"
    assert not half_written_json(runs.store.root)

    proc = psutil.Process(runner.proc.pid)
    proc.cpu_percent(None)
    time.sleep(5)
    idle_cpu = proc.cpu_percent(None)
    LEDGER.note(
        f"load: {CONFIGS} configs at once, all completed FIFO, peak live {peak['states']}, "
        f"idle runner CPU {idle_cpu:.1f}% of a core"
    )
    assert idle_cpu < IDLE_CPU_BOUND, f"the idle runner uses {idle_cpu:.0f}% of a core"
