"""Resources per run (sampled into TensorBoard and status.json) and resources a run may use
(cores, nice, GPU visibility) applied by the runner, on real runs.

This machine has no GPU: the GPU halves (NVML process memory, ``auto`` picking the GPU with
the most free memory) are exercised with a stand-in NVML module, said so in each test.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import psutil
import pytest

from machine.nvml import gpus_by_free_memory
from runner import process, resources
from runner.resources import Plan, ResourceError, plan
from runstore import RunState
from runstore.config import ConfigError, Resources, parse_config
from runstore.config_schema import TORCH_THREADS_ENV
from runstore.metrics import load_scalars
from training.system_sampler import INTERVAL_ENV, SystemSampler

from .conftest import Runs, cartpole, wait_for

RESOURCES = "vec_env: subproc\nresources: {cpus: [0], priority: low, gpu: none}\n"


def test_run_is_pinned_niced_sampled_and_charted(runs: Runs, monkeypatch: pytest.MonkeyPatch):
    """A real CartPole run with two SubprocVecEnv workers, ``cpus: [0]``, ``priority: low``
    and ``gpu: none``: every process of its group runs on core 0 at nice 10 with the thread
    variables set, and its CPU/RSS land in status.json and in TensorBoard under system/."""
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    runs.runner()
    runs.submit(cartpole(steps=12_000, ckpt=100_000, n_envs=2, extra=RESOURCES), "res.yaml")
    run_id = runs.only_run()
    runs.wait_state(run_id, RunState.RUNNING, timeout=90)
    record = runs.record(run_id)

    def sampled():
        status = runs.status(run_id)
        ok = status is not None and status.rss_mb and (status.processes or 0) >= 3
        return status if ok else None

    status = wait_for(sampled, 120, "a system sample with the env workers in it")
    members = process.group_members(record.pgid)
    assert len(members) >= 3  # trainer, forkserver, two workers (some may be still starting)
    for proc in members:
        assert proc.cpu_affinity() == [0], proc
        assert proc.nice() == 10, proc
    environ = psutil.Process(record.pid).environ()
    assert environ["OMP_NUM_THREADS"] == environ["MKL_NUM_THREADS"] == "1"
    assert environ["CUDA_VISIBLE_DEVICES"] == ""
    assert status.rss_mb > 100  # a trainer with torch loaded, plus its workers
    assert status.cpu_percent is not None and status.cpu_percent >= 0
    assert status.gpu_util is None and status.gpu_mem_mb is None  # no NVML on this machine

    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=240)
    assert record.state == RunState.COMPLETED, record.reason
    kinds = {e.kind: e.detail for e in record.events}
    assert kinds["resources"].startswith("cpus [0], nice 10, CUDA_VISIBLE_DEVICES=''")
    assert "resources-warning" not in kinds
    scalars = load_scalars(runs.store.paths(run_id).dir)
    tags = set(scalars["tag"].unique())
    assert {"system/cpu_percent", "system/rss_mb"} <= tags
    assert not {"system/gpu_util", "system/gpu_mem_mb"} & tags
    rss = scalars.filter(tag="system/rss_mb")
    assert rss["value"].min() > 100
    steps = rss["step"].to_list()
    assert steps == sorted(steps) and steps[-1] > 0  # at the run's global step


def test_runs_that_share_the_cores_share_the_torch_threads(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
):
    """``--max-concurrent 2``: a real trainer gets its half of the cores as torch threads
    (two trainers each taking every core ran about 3x slower: docs/performance.md)."""
    monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
    cores = len(resources.available_cores())
    runs.runner("--max-concurrent", "2")
    runs.submit(cartpole(steps=3_000, ckpt=100_000), "shared.yaml")
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.RUNNING, RunState.COMPLETED, timeout=90)
    expected = str(max(1, cores // 2))
    if record.state == RunState.RUNNING:
        assert psutil.Process(record.pid).environ()[TORCH_THREADS_ENV] == expected
    record = runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED, timeout=120)
    assert record.state == RunState.COMPLETED, record.reason
    kinds = {e.kind: e.detail for e in record.events}
    assert kinds["resources"] == f"all cpus, nice 0, {expected} torch thread(s)"


def test_plan_splits_torch_threads_only_between_runs_that_share_the_cores(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
    four = [0, 1, 2, 3]
    assert plan(Resources(), cores=four, gpus=None, share=2).env[TORCH_THREADS_ENV] == "2"
    assert plan(Resources(), cores=four, gpus=None, share=8).env[TORCH_THREADS_ENV] == "1"
    assert TORCH_THREADS_ENV not in plan(Resources(), cores=four, gpus=None, share=1).env
    # Pinned cores already decide the threads (the trainer counts its affinity).
    assert TORCH_THREADS_ENV not in plan(Resources(cpus=2), cores=four, gpus=None, share=4).env
    # The user's own setting in the runner's environment wins (inherited by the trainer).
    monkeypatch.setenv(TORCH_THREADS_ENV, "3")
    assert TORCH_THREADS_ENV not in plan(Resources(), cores=four, gpus=None, share=2).env


def test_a_core_this_machine_lacks_fails_the_run_before_it_starts(runs: Runs):
    runs.runner()
    missing = max(resources.available_cores()) + 1
    runs.submit(cartpole(steps=500, extra=f"resources: {{cpus: [{missing}]}}\n"), "bad.yaml")
    run_id = runs.only_run()
    record = runs.wait_state(run_id, RunState.FAILED, timeout=60)
    assert f"core(s) [{missing}] are not available here" in record.reason
    assert record.pid is None  # nothing was spawned


def test_preflight_warns_when_the_estimate_exceeds_free_memory(runs: Runs):
    """A DQN Atari buffer of 10 million frames (about 530 GiB) cannot fit: the runner records
    a preflight warning in run.json and still starts the run (it does not block)."""
    runs.runner()
    config = (
        "algo: dqn\nenv: ALE/Pong-v5\nn_timesteps: 1000\n"
        "hyperparams: {buffer_size: 10_000_000, learning_starts: 100}\n"
    )
    runs.submit(config, "huge.yaml")
    run_id = runs.only_run()

    def warned():
        record = runs.store.read_run(run_id)
        found = [e for e in record.events if e.kind == "preflight-warning"] if record else []
        return found and record.pid is not None and found

    (event,) = wait_for(warned, 60, "a preflight warning and a spawned trainer")
    assert "replay buffer" in event.detail and "GiB" in event.detail
    assert "optimize_memory_usage" in event.detail or "buffer_size" in event.detail


def test_sampler_reports_gpu_memory_of_its_own_processes():
    """No GPU here: a stand-in NVML lists this process and a stranger on GPU 0 and nothing on
    GPU 1; the sample counts only our memory and GPU 0's utilisation. A process NVML lists as
    both compute and graphics counts once (machine.nvml.gpu_processes)."""
    mine = os.getpid()
    gpus = {
        0: SimpleNamespace(
            procs=[
                SimpleNamespace(pid=mine, usedGpuMemory=300 * 2**20),
                SimpleNamespace(pid=1, usedGpuMemory=5000 * 2**20),
            ],
            util=SimpleNamespace(gpu=73, memory=10),
        ),
        1: SimpleNamespace(procs=[], util=SimpleNamespace(gpu=99, memory=50)),
    }
    nvml = SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: gpus[i],
        nvmlDeviceGetComputeRunningProcesses=lambda h: h.procs,
        nvmlDeviceGetGraphicsRunningProcesses=lambda h: h.procs[:1],
        nvmlDeviceGetUtilizationRates=lambda h: h.util,
    )
    written: list[tuple[str, float, int]] = []
    writer = SimpleNamespace(add_scalar=lambda tag, v, step: written.append((tag, v, step)))
    status = SimpleNamespace()
    sampler = SystemSampler(lambda: 4096, lambda: writer, status, interval=60, nvml=nvml)
    sampler.tree.sample()
    sampler.record(sampler.take())
    assert status.gpu_mem_mb == 300.0 and status.gpu_util == 73.0
    assert status.rss_mb > 10 and status.processes >= 1
    assert {t for t, _, _ in written} == {
        "system/cpu_percent",
        "system/rss_mb",
        "system/gpu_util",
        "system/gpu_mem_mb",
    }
    assert {step for _, _, step in written} == {4096}
    sampler.stop()


def test_a_run_shorter_than_one_interval_still_gets_a_sample_at_its_end():
    """The thread's first sample comes one interval after start; stop takes the last one,
    flushes it to the writer, and a second stop adds nothing. A sampler never started
    (no baseline) writes nothing."""
    written: list[tuple[str, float, int]] = []
    flushes: list[int] = []
    writer = SimpleNamespace(
        add_scalar=lambda tag, v, step: written.append((tag, v, step)),
        flush=lambda: flushes.append(len(written)),
    )
    status = SimpleNamespace()
    sampler = SystemSampler(lambda: 768, lambda: writer, status, interval=60).start()
    sampler.stop()
    assert sorted(t for t, _, _ in written) == ["system/cpu_percent", "system/rss_mb"]
    assert {step for _, _, step in written} == {768} and flushes == [2]
    assert status.rss_mb > 10 and status.processes >= 1
    sampler.stop()
    assert len(written) == 2 and flushes == [2]

    never = SystemSampler(lambda: 0, lambda: writer, SimpleNamespace(), interval=60)
    never.stop()
    assert len(written) == 2


def _fake_nvml(free_by_index: dict[int, int]) -> SimpleNamespace:
    return SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(free_by_index),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(free=free_by_index[h]),
    )


def test_plan_picks_cores_nice_and_gpus():
    """GPU choices with a stand-in NVML (no GPU on this machine)."""
    gib = 2**30
    nvml = _fake_nvml({0: 2 * gib, 1: 20 * gib, 2: 8 * gib})
    listed = gpus_by_free_memory(nvml)
    assert [i for i, _ in listed] == [1, 2, 0]
    auto = plan(Resources(), cores=[0, 1, 2, 3], gpus=listed)
    assert auto.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert auto.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert auto.cpus is None and "OMP_NUM_THREADS" not in auto.env
    pinned = plan(Resources(gpu=2, cpus=2, priority="high"), cores=[4, 5, 6], gpus=listed)
    assert pinned.env["CUDA_VISIBLE_DEVICES"] == "2" and pinned.cpus == [4, 5]
    assert pinned.nice == -5 and pinned.env["OMP_NUM_THREADS"] == "2"
    assert plan(Resources(gpu="none"), cores=[0], gpus=listed).env["CUDA_VISIBLE_DEVICES"] == ""
    # One GPU or none (NVML missing): auto leaves the environment alone.
    assert "CUDA_VISIBLE_DEVICES" not in plan(Resources(), cores=[0], gpus=listed[:1]).env
    assert "CUDA_VISIBLE_DEVICES" not in plan(Resources(), cores=[0], gpus=None).env
    # The real machine: nvidia-ml-py is installed but no driver, so NVML is unavailable.
    assert gpus_by_free_memory() is None
    with pytest.raises(ResourceError, match=r"GPU 7 does not exist here; the GPUs are \[0, 1, 2\]"):
        plan(Resources(gpu=7), cores=[0], gpus=listed)
    with pytest.raises(ResourceError, match=r"3 cores asked, but this runner may use 2 \(0-1\)"):
        plan(Resources(cpus=3), cores=[0, 1], gpus=None)
    with pytest.raises(ResourceError, match=r"core\(s\) \[5\] are not available.*0-2, 4"):
        plan(Resources(cpus=[1, 5]), cores=[0, 1, 2, 4], gpus=None)


def test_apply_sets_affinity_and_nice_on_a_live_process():
    """Real processes: a child sleeper gets core 0 and nice 10; asking for a higher priority
    than this user may set is a note, not a failure."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        notes = resources.apply(child.pid, Plan(cpus=[0], nice=10))
        proc = psutil.Process(child.pid)
        assert notes == [] and proc.cpu_affinity() == [0] and proc.nice() == 10
        notes = resources.apply(child.pid, Plan(nice=-5))
        if os.geteuid() == 0:  # root (CI) may raise priority
            assert notes == [] and proc.nice() == -5
        else:
            assert "needs privileges" in notes[0] and proc.nice() == 10
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{cpus: []}", "resources.cpus: an empty list leaves no core to run on"),
        ("{cpus: 0}", "resources.cpus: 0 cores leaves nothing to run on"),
        ("{cpus: [0, 0]}", "resources.cpus: [0, 0] names a core twice"),
        ("{cpus: [-1]}", "is not a list of core numbers"),
        ("{priority: max}", "resources.priority: Input should be 'low', 'normal' or 'high'"),
        ("{gpu: cuda}", "resources.gpu: 'cuda' is not a GPU choice: use auto, none or an index"),
        ("{cpu: 2}", "resources.cpu: unknown key; did you mean 'cpus'?"),
    ],
)
def test_invalid_resources_are_clear_errors(block: str, message: str):
    text = f"algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\nresources: {block}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text.encode())
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_resources_that_contradict_the_device_are_errors():
    base = "algo: ppo\nenv: CartPole-v1\nn_timesteps: 1000\n"
    with pytest.raises(ConfigError, match="gpu: none hides every GPU, but device is cuda"):
        parse_config((base + "device: cuda\nresources: {gpu: none}\n").encode())
    with pytest.raises(ConfigError, match=r"device: cuda:1 does not exist; use device: cuda"):
        parse_config((base + "device: cuda:1\nresources: {gpu: 1}\n").encode())
    config = parse_config((base + "resources: {cpus: 2, gpu: '1'}\n").encode())
    assert config.resources == Resources(cpus=2, gpu=1, priority="normal")
