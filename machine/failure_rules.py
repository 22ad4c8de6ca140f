"""The failure classifier's rule table: which messages mean which failure, and what to do.

Each :class:`Rule` names a stable code, a plain title, what it means and the steps to fix it,
and the regular expressions (or exception class names) that recognise it in the text that
PyTorch, the CUDA runtime, cuDNN, NCCL, NumPy, Gymnasium and ale-py print. The test corpus in
``tests/data/error_corpus/`` holds real messages, each with its source. To add a failure: add a
rule here (order matters, see :data:`RULES`) and a corpus file in that folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from machine.cuda import parse_cuda_version, pytorch_index_url, reinstall_command
from runstore.models import Diagnosis

__all__ = ["DIAG_CMD", "RULES", "Rule"]


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    meaning: str
    steps: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...] = ()
    exc_types: frozenset[str] = frozenset()
    severity: str = "error"
    # Steps derived from the text itself (a driver version, pip's own suggestion), put first.
    extra: Callable[[str], tuple[str, ...]] | None = None

    def diagnosis(self, text: str, evidence: str) -> Diagnosis:
        extra = self.extra(text) if self.extra else ()
        return Diagnosis(
            code=self.code,
            title=self.title,
            meaning=self.meaning,
            steps=tuple(dict.fromkeys(extra + self.steps)),
            severity=self.severity,
            evidence=evidence,
        )


def _rx(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


_DEVICE_CPU = "Meanwhile set device: cpu in the run config to train on the CPU."
DIAG_CMD = "Run python -m training.diagnostics (or open the System page) to check the GPU setup."


def _driver_steps(text: str) -> tuple[str, ...]:
    match = re.search(r"found version (\d+)", text)
    found = parse_cuda_version(int(match[1])) if match else None
    if found is None:
        return ()
    label = f"{found[0]}.{found[1]}"
    url = pytorch_index_url(found)
    if url is None:
        return (
            f"Your driver supports CUDA up to {label}, older than any current PyTorch build: "
            "update the NVIDIA driver.",
        )
    return (
        f"Your driver supports CUDA up to {label}. Either update the driver, or install the "
        f"PyTorch build for it: {reinstall_command(url)}",
    )


def _kernel_image_steps(text: str) -> tuple[str, ...]:
    steps: list[str] = []
    # torch >= 2.9 prints the exact command itself ("For CUDA 12.8 use pip install torch==...").
    suggested = re.findall(r"pip install torch==\S+ --index-url \S+", text)
    if suggested:
        # The first is the oldest CUDA, so the one that asks least of the driver.
        steps.append(f"PyTorch suggests a build that supports this GPU: {suggested[0]}")
    cap = re.search(r"capability sm_(\d+)", text) or re.search(
        r"compute capability \(CC\) (\d+)\.(\d+)", text
    )
    if cap is not None:
        value = cap[1] if cap.lastindex == 1 else f"{cap[1]}{cap[2]}"
        base = f"sm_{int(value) // 10}0"
        same_gen = f" or {base} (same generation)" if base != f"sm_{value}" else ""
        steps.append(
            f"Your GPU is sm_{value}: install a PyTorch whose torch.cuda.get_arch_list() includes "
            f"sm_{value}{same_gen}."
        )
    return tuple(steps)


def _env_steps(text: str) -> tuple[str, ...]:
    steps: list[str] = []
    mean = re.search(r"Did you mean: `([^`]+)`", text)
    if mean:
        steps.append(f"Gymnasium suggests `{mean[1]}`: check whether that is the game you meant.")
    versions = re.search(r"It provides versioned environments: \[([^\]]*)\]", text)
    if versions:
        steps.append(f"Valid versions for this game: {versions[1].strip()}.")
    instead = re.search(r"Please use `([^`]+)` instead", text)
    if instead:
        steps.append(f"Use `{instead[1]}` instead.")
    return tuple(steps)


def _disk_steps(text: str) -> tuple[str, ...]:
    if "/dev/shm" in text:
        return (
            "The full device is /dev/shm (shared memory). In Docker, start the container with a "
            "larger --shm-size (e.g. --shm-size=8g).",
        )
    return ()


# Order matters: the first rule that matches wins, so specific root causes come before the
# generic messages they lead to (a "driver too old" warning explains a later "CUDA was requested
# but is not available" error), and the catch-all "CUDA error:" comes last.
RULES: tuple[Rule, ...] = (
    Rule(
        code="nan_or_inf",
        title="Training diverged: NaN or infinite numbers",
        meaning=(
            "The loss or the network's weights became NaN (not a number) or infinite, so learning "
            "cannot go on. Usually the learning rate is too high for the other settings, or "
            "rewards are not clipped or scaled."
        ),
        steps=(
            "Lower hyperparams.learning_rate (divide it by 3 to 10), or use a decaying schedule "
            "such as lin_2.5e-4.",
            "Keep hyperparams.max_grad_norm set (PPO: 0.5, DQN: 10) so one bad batch cannot blow "
            "up the weights.",
            "Keep Atari reward clipping on (atari.clip_reward: true).",
            "Resume from a checkpoint taken before the loss went wrong, or start again with "
            "another seed.",
        ),
        patterns=_rx(
            r"NaN or inf\b",
            r"returned nan values in its \d+\w* output",
            r"found invalid values:\s*tensor\([\s\S]{0,2000}?\b(?:nan|inf)\b",
            r"found (?:nan|inf) in \w+",  # SB3 VecCheckNan
        ),
        exc_types=frozenset({"FloatingPointError"}),
    ),
    Rule(
        code="disk_full",
        title="The disk is full",
        meaning=(
            "Writing a checkpoint, video, log or TensorBoard file failed because the drive that "
            "holds the runs folder has no space left."
        ),
        steps=(
            "Free space on the drive that holds the runs folder: delete runs you no longer need "
            "(Runs page, delete) or old checkpoints and videos inside them.",
            "Keep fewer checkpoints (keep_checkpoints) and leave save_replay_buffer off: a DQN "
            "replay buffer is gigabytes on every save.",
            "Or move the runs folder to a bigger drive and point RETRO_ML_RUNS_DIR at it.",
            "Then resume the run from its last checkpoint.",
        ),
        patterns=_rx(
            r"\[Errno 28\]",
            r"No space left on device",
            r"PytorchStreamWriter failed writing file .*file write failed",
        ),
        extra=_disk_steps,
    ),
    Rule(
        code="nccl_error",
        title="NCCL (multi-GPU communication) failed",
        meaning=(
            "NCCL moves data between GPUs or machines. Retro ML trains each run on one GPU, so "
            "this comes from a multi-GPU or cluster setup, or from a GPU fault underneath it."
        ),
        steps=(
            "Run again with the environment variable NCCL_DEBUG=INFO; the log then names the "
            "cause.",
            "'unhandled cuda error' means a GPU problem underneath: update the driver and check "
            "GPU memory and temperature on the System page.",
            "Make every worker use the same PyTorch build, or limit the run to one GPU "
            "(CUDA_VISIBLE_DEVICES=0).",
        ),
        patterns=_rx(r"NCCL error", r"\bnccl(?:Unhandled\w+|System|Internal|InvalidUsage|Remote)"),
        exc_types=frozenset({"DistBackendError"}),
    ),
    Rule(
        code="cuda_driver_too_old",
        title="Your NVIDIA driver is too old for this PyTorch",
        meaning=(
            "This PyTorch was built with a newer CUDA than your NVIDIA driver supports, so it "
            "cannot use the GPU."
        ),
        steps=(
            "Update the NVIDIA driver (https://www.nvidia.com/Download/index.aspx or your Linux "
            "distribution's driver package) and reboot.",
            "Or install the PyTorch build for the CUDA version your driver supports (nvidia-smi "
            "prints it top right as 'CUDA Version'): pip uninstall -y torch && pip install torch "
            "--index-url https://download.pytorch.org/whl/cuXYZ (e.g. cu126 for CUDA 12.6).",
            _DEVICE_CPU,
        ),
        patterns=_rx(
            r"NVIDIA driver on your system is too old",
            r"CUDA driver version is insufficient for CUDA runtime version",
            r"forward compatibility was attempted on non supported HW",
        ),
        extra=_driver_steps,
    ),
    Rule(
        code="nvidia_driver_missing",
        title="No NVIDIA driver found",
        meaning=(
            "PyTorch looked for the NVIDIA driver and found none, so the GPU cannot be used. "
            "Either this machine has no NVIDIA GPU, the driver is not installed, or (Docker, "
            "WSL) the GPU is not passed through."
        ),
        steps=(
            "Without an NVIDIA GPU, set device: cpu (or auto) in the run config.",
            "Otherwise install the NVIDIA driver and reboot; `nvidia-smi` must list your GPU.",
            "In Docker, start the container with --gpus all (NVIDIA Container Toolkit); on WSL2, "
            "install the NVIDIA driver on the Windows side.",
        ),
        patterns=_rx(r"Found no NVIDIA driver on your system", r"NVML Shared Library Not Found"),
    ),
    Rule(
        code="cuda_no_kernel_image",
        title="This PyTorch build has no code for your GPU",
        meaning=(
            "PyTorch ships GPU code compiled for particular GPU generations (compute "
            "capabilities). Yours is not among them: the GPU is newer than the build (e.g. an "
            "RTX 50-series card with an older PyTorch) or older than it still supports."
        ),
        steps=(
            "Compare your GPU's compute capability with the list PyTorch was built for: "
            "python -m training.diagnostics (or the System page) shows both.",
            "Newer GPU: install a newer PyTorch with a newer CUDA build, e.g. pip uninstall -y "
            "torch && pip install torch --index-url https://download.pytorch.org/whl/cu128.",
            "Older GPU: install an older PyTorch release that still supports it "
            "(https://pytorch.org/get-started/previous-versions/).",
            _DEVICE_CPU,
        ),
        patterns=_rx(
            r"no kernel image is available for execution on the device",
            r"CUDA capability sm_\d+ is not compatible with the current PyTorch installation",
            r"does not include kernels for this GPU",
            r"cudaErrorNoKernelImageForDevice",
        ),
        extra=_kernel_image_steps,
    ),
    Rule(
        code="cuda_oom",
        title="The GPU ran out of memory",
        meaning=(
            "PyTorch asked the GPU for more memory than was free. Atari networks are small, so "
            "this usually means a large batch, several runs sharing the GPU, or another program "
            "holding GPU memory."
        ),
        steps=(
            "Lower hyperparams.batch_size in the run config (halve it).",
            "For PPO, fewer hyperparams.n_envs or a smaller n_steps also shrinks what goes "
            "through the network at once.",
            "See what else uses the GPU (System page, or nvidia-smi) and stop other runs or "
            "programs that hold GPU memory.",
            "If the message says a lot is 'reserved by PyTorch but unallocated', set the "
            "environment variable PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.",
            "Or set device: cpu for this run.",
        ),
        patterns=_rx(
            r"CUDA out of memory",
            r"CUDA error: out of memory",
            r"cudaErrorMemoryAllocation",
            r"CUBLAS_STATUS_ALLOC_FAILED",
        ),
        exc_types=frozenset({"OutOfMemoryError"}),
    ),
    Rule(
        code="cuda_device_assert",
        title="A GPU calculation hit an invalid value (device-side assert)",
        meaning=(
            "A check inside a GPU kernel failed, most often an index out of range such as an "
            "action number beyond the game's action space. After it the GPU is unusable for this "
            "process, so later CUDA calls fail too."
        ),
        steps=(
            "Run the same config with device: cpu: the CPU gives a readable error naming the bad "
            "value.",
            "If you resume or fine-tune from a checkpoint, check that the env id and "
            "atari.full_action_space match the ones it was trained with.",
            "For the exact location, run it again with the environment variable "
            "CUDA_LAUNCH_BLOCKING=1.",
        ),
        patterns=_rx(r"device-side assert triggered", r"cudaErrorAssert"),
    ),
    Rule(
        code="cuda_illegal_memory_access",
        title="The GPU hit an illegal memory access",
        meaning=(
            "A GPU kernel touched memory it does not own. The cause is below our code (PyTorch, "
            "the driver, or the hardware, sometimes an overheating or overclocked card). The "
            "process cannot use the GPU again."
        ),
        steps=(
            "Resume the run from its last checkpoint: a one-off fault will not come back.",
            "If it repeats, update the NVIDIA driver and PyTorch, remove any GPU overclock, and "
            "watch the GPU temperature on the System page.",
            "Run again with CUDA_LAUNCH_BLOCKING=1 to find the operation that fails.",
            "Or set device: cpu for this run.",
        ),
        patterns=_rx(
            r"an illegal memory access was encountered",
            r"an illegal instruction was encountered",
            r"CUDA error: misaligned address",
            r"unspecified launch failure",
            r"cudaErrorIllegalAddress",
        ),
    ),
    Rule(
        code="cudnn_error",
        title="cuDNN (NVIDIA's neural-network library) failed",
        meaning=(
            "A convolution on the GPU failed inside cuDNN. Usual causes: the GPU was out of "
            "memory at that moment, or the cuDNN that came with PyTorch does not suit the driver "
            "or GPU."
        ),
        steps=(
            "Lower hyperparams.batch_size and close other programs that use the GPU.",
            "Reinstall PyTorch so that its own cuDNN is used (pip uninstall -y torch && pip "
            "install torch ...); do not mix in a separately installed nvidia-cudnn package.",
            "Update the NVIDIA driver.",
            _DEVICE_CPU,
        ),
        patterns=_rx(
            r"CUDNN_STATUS_\w+",
            r"cuDNN error",
            r"cuDNN Frontend error",
            r"Unable to find a valid cuDNN algorithm",
            r"GET was unable to find an engine to execute this computation",
        ),
    ),
    Rule(
        code="cuda_fork",
        title="CUDA was started before worker processes were forked",
        meaning=(
            "Environment worker processes were created with fork after CUDA was already in use "
            "in the parent process; a forked child cannot use CUDA."
        ),
        steps=(
            "Use vec_env: dummy, or keep vec_env: subproc with the 'forkserver' or 'spawn' start "
            "method.",
            "Make sure nothing touches the GPU before the environments are created.",
        ),
        patterns=_rx(r"Cannot re-initialize CUDA in forked subprocess"),
    ),
    Rule(
        code="cuda_init_failed",
        title="The GPU is there but CUDA could not start",
        meaning=(
            "The driver is present but starting CUDA failed. Common causes: the driver was "
            "updated without a reboot, the machine woke from sleep with the GPU in a bad state, "
            "the GPU is in exclusive mode and busy, or CUDA_VISIBLE_DEVICES changed mid-run."
        ),
        steps=(
            "Reboot (always after a driver update), then check that nvidia-smi works.",
            "Check nvidia-smi for other processes on the GPU and for 'Exclusive_Process' compute "
            "mode.",
            "Leave CUDA_VISIBLE_DEVICES alone while a run is going.",
            _DEVICE_CPU,
        ),
        patterns=_rx(
            r"CUDA driver initialization failed",
            r"CUDA unknown error - this may be due to an incorrectly set up environment",
            r"CUDA-capable device\(s\) is/are busy or unavailable",
            r"system has unsupported display driver / cuda driver combination",
            r"Driver/library version mismatch",
        ),
    ),
    Rule(
        code="cuda_not_compiled",
        title="This PyTorch was installed without GPU support",
        meaning=(
            "The installed PyTorch is a CPU-only build, so device: cuda cannot work even if the "
            "machine has an NVIDIA GPU."
        ),
        steps=(
            "To train on the CPU, set device: cpu (or auto).",
            "To use the GPU, replace PyTorch with a CUDA build: pip uninstall -y torch && pip "
            "install torch --index-url https://download.pytorch.org/whl/cu126 (pick the cuXYZ "
            "for the CUDA version nvidia-smi shows; https://pytorch.org/get-started/locally/).",
        ),
        patterns=_rx(
            r"Torch not compiled with CUDA enabled", r"CUDA build none \(CPU-only build\)"
        ),
    ),
    Rule(
        code="cuda_unavailable",
        title="CUDA was requested but no usable GPU was found",
        meaning="The run asked for device: cuda, but PyTorch sees no usable NVIDIA GPU.",
        steps=(
            "Set device: cpu or auto to train without a GPU.",
            "Run nvidia-smi: if it fails, install or repair the NVIDIA driver; if it works, check "
            "that CUDA_VISIBLE_DEVICES is not empty or wrong.",
            DIAG_CMD,
        ),
        patterns=_rx(
            r"No CUDA GPUs are available",
            r"no CUDA-capable device is detected",
            r"CUDA was requested \(device: [^)]*\) but",
            r"invalid device ordinal",
        ),
    ),
    Rule(
        code="host_oom",
        title="The computer ran out of memory (RAM)",
        meaning=(
            "Training needed more RAM than was free, so an allocation failed or the system killed "
            "the process. With DQN the replay buffer is the usual reason: each stored 84x84 "
            "4-frame observation takes about 28 KB, twice that without optimize_memory_usage."
        ),
        steps=(
            "Lower hyperparams.buffer_size for DQN: 100,000 transitions take about 2.8 GB with "
            "optimize_memory_usage, 5.6 GB without.",
            "Set hyperparams.optimize_memory_usage: true to store each frame once.",
            "Lower hyperparams.n_envs: every environment copy with vec_env: subproc is a separate "
            "process with its own memory.",
            "Run fewer trainings at once and close memory-hungry programs; the System page "
            "suggests a buffer_size that fits this machine.",
        ),
        patterns=_rx(
            r"Unable to allocate [\d.]+ \w+ for an array",
            r"DefaultCPUAllocator: (?:can't allocate memory|not enough memory)",
            r"\[Errno 12\] Cannot allocate memory",
            r"std::bad_alloc",
            r"does not have apparently enough memory to store the complete replay buffer",
        ),
        exc_types=frozenset({"MemoryError", "_ArrayMemoryError"}),
    ),
    Rule(
        code="ale_not_registered",
        title="The Atari environments are not registered",
        meaning=(
            "Gymnasium does not know the ALE/... ids: ale-py is not installed in this Python "
            "environment, or was not imported. Since Gymnasium 1.0 the Atari games must be "
            "registered with gym.register_envs(ale_py)."
        ),
        steps=(
            "Install ale-py into the same environment (pip install ale-py); it includes the "
            "game ROMs.",
            "In your own scripts: import ale_py, then gym.register_envs(ale_py) before "
            "gym.make(...).",
            "Check that training runs in the environment you installed into: python -m pip show "
            "ale-py.",
        ),
        patterns=_rx(r"Namespace ALE not found"),
    ),
    Rule(
        code="atari_rom_missing",
        title="The Atari game ROM could not be loaded",
        meaning=(
            "ale-py found no valid ROM file for this game. ale-py 0.9 and later ship every "
            "supported ROM, so this means ALE_ROMS_DIR points to a folder without the game, a "
            "ROM file is damaged, or the game name is not one ALE supports."
        ),
        steps=(
            "Unset ALE_ROMS_DIR unless you keep your own ROMs there on purpose.",
            "Reinstall ale-py, which brings the ROMs: pip install --force-reinstall ale-py.",
            'Check the game name: python -c "import ale_py.roms as r; print(r.get_all_rom_ids())"',
        ),
        patterns=_rx(
            r'ROM file "[^"]*" not found',
            r"Attempt to wrap ROM .* failed",
            r"ROM directory .* (?:doesn't exist|isn't a directory)",
            r"The hash of \S+\.bin does not match",
            r"Rom \S+ not supported",
            r"loadROM\(\): incompatible function arguments",
            r"No such file or directory: '[^']*\.bin'",
        ),
    ),
    Rule(
        code="env_not_found",
        title="The game / environment id does not exist",
        meaning=(
            "Gymnasium has no environment with this id, usually because of a typo or an old "
            "version. ale-py names Atari games like ALE/Pong-v5 (older ids such as "
            "PongNoFrameskip-v4 also exist)."
        ),
        steps=(
            "Check the env id's spelling and version, e.g. ALE/Pong-v5, ALE/Breakout-v5, "
            "ALE/SpaceInvaders-v5.",
            'List the valid ids: python -c "import gymnasium as gym, ale_py; '
            "gym.register_envs(ale_py); print(sorted(k for k in gym.envs.registry "
            "if k.startswith('ALE/')))\"",
        ),
        patterns=_rx(
            r"Environment `[^`]+` doesn't exist",
            r"Environment version `?v\d+`? for environment `[^`]+` doesn't exist",
            r"Environment version v\d+ for `[^`]+` is deprecated",
            r"Namespace \S+ not found",
            r"No registered env with id",
        ),
        exc_types=frozenset(
            {"NameNotFound", "NamespaceNotFound", "VersionNotFound", "DeprecatedEnv"}
        ),
        extra=_env_steps,
    ),
    Rule(
        code="cuda_error",
        title="A CUDA (GPU) error stopped training",
        meaning="The GPU reported an error that is not one of the common cases we recognise.",
        steps=(
            "Run again with the environment variable CUDA_LAUNCH_BLOCKING=1 so the error points "
            "at the operation that failed.",
            "Update the NVIDIA driver and PyTorch.",
            "Try device: cpu to confirm the problem is GPU-specific.",
            DIAG_CMD,
        ),
        patterns=_rx(
            r"CUDA error: ",
            r"CUDA kernel errors might be asynchronously reported",
            r"CUBLAS_STATUS_\w+",
        ),
        exc_types=frozenset({"AcceleratorError"}),
    ),
)
