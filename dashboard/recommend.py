"""Settings recommended for this machine, without importing torch.

The full report (PyTorch's build, a CUDA test calculation) comes from a subprocess on the
System page; the new-run form only needs cores, memory and whether NVML sees a GPU, which are
cheap to read here.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from machine.nvml import probe_gpus
from machine.probes import probe_cpu, probe_memory
from machine.recommend import recommend_settings


@st.cache_data(ttl=60, show_spinner=False)
def machine_recommendations() -> dict[str, Any]:
    gpus = probe_gpus()
    report = {
        "cpu": probe_cpu(),
        "memory": probe_memory(),
        # NVML seeing a GPU stands in for "PyTorch can use it"; the System page checks that.
        "torch": {"cuda_available": bool(gpus.get("devices"))},
    }
    return recommend_settings(report)
