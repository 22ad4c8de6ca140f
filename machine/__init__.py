"""What this machine is and what went wrong on it, without torch.

Shared by the three processes (runner, trainer, dashboard), below all of them: probes of the
CPU, memory, disk, installed packages and Atari ROMs (:mod:`machine.probes`), the one way to
open NVML (:mod:`machine.nvml`), CUDA versions and the PyTorch reinstall command
(:mod:`machine.cuda`), the settings that suit this machine (:mod:`machine.recommend`), the
failure classifier (:mod:`machine.failures`, its rule table in :mod:`machine.failure_rules`)
and the typed diagnostics report (:mod:`machine.report`).

Import rule (tests/test_layering.py): of our packages this one imports only ``runstore``; of
the rest only the standard library, psutil, pynvml and pydantic. Never torch, SB3, gymnasium,
ale-py or OpenCV: the runner and the dashboard import this package and must stay light.
"""
