"""What a run asks a Ray cluster for, and the checks on a cluster's settings: pure logic, no
Ray (the cluster itself is tests/test_cluster.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner.cluster.placement import Ask, ask_for, unmet
from runstore.config import ConfigError, parse_config
from runstore.models import ClusterNode
from runstore.settings import SettingsError, parse_settings
from tests.conftest import ROOT, cartpole


def _config(extra: str = "", n_envs: int = 1):
    return parse_config(cartpole(n_envs=n_envs, extra=extra).encode())


@pytest.mark.parametrize(
    ("extra", "n_envs", "cpus", "gpus"),
    [
        ("", 1, 1, 0),
        ("", 4, 4, 0),  # one core per environment process
        ("resources:\n  cpus: 3\n", 4, 3, 0),  # a count wins over n_envs
        ("resources:\n  cpus: [0, 1]\n", 8, 2, 0),  # a core list counts its cores
        ("device: cuda\n", 2, 2, 1),
        ("device: cuda:1\n", 1, 1, 1),
        ("device: auto\n", 1, 1, 0),  # auto asks for no GPU: name cuda to get one
    ],
)
def test_a_run_asks_for_its_cpus_and_a_gpu_when_its_device_is_cuda(extra, n_envs, cpus, gpus):
    ask = ask_for(_config(extra, n_envs))
    assert (ask.cpus, ask.gpus, ask.custom) == (cpus, gpus, {})


def test_custom_resources_come_from_resources_ray():
    ask = ask_for(_config("resources:\n  ray:\n    big_gpu: 1\n    ssd.fast: 0.5\n"))
    assert ask.custom == {"big_gpu": 1.0, "ssd.fast": 0.5}
    assert ask.options() == {"num_cpus": 1, "num_gpus": 0, "resources": ask.custom}
    assert ask.describe() == "1 CPU, big_gpu: 1, ssd.fast: 0.5"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[1, 2]", "is not a mapping"),
        ("{CPU: 2}", "CPU is set by the run itself"),
        ("{GPU: 1}", "GPU is set by the run itself"),
        ("{'bad name': 1}", "is not a resource name"),
        ("{big_gpu: 0}", "big_gpu: 0 is not an amount"),
        ("{big_gpu: -1}", "is not an amount"),
        ("{big_gpu: .nan}", "is not an amount"),
        ("{big_gpu: .inf}", "is not an amount"),
        ("{big_gpu: yes}", "is not an amount"),
    ],
)
def test_a_bad_resources_ray_is_refused_naming_the_field_and_the_fix(value, said):
    with pytest.raises(ConfigError) as err:
        _config(f"resources:\n  ray: {value}\n")
    assert "resources.ray" in str(err.value) and said in str(err.value)


def _node(name: str, cpus: float, gpus: float = 0, refused: str = "", **custom) -> ClusterNode:
    return ClusterNode(
        id=name * 8, hostname=name, cpus=cpus, gpus=gpus, resources=custom, refused=refused
    )


def test_unmet_says_why_no_node_could_ever_hold_a_run():
    nodes = [_node("a", 2), _node("b", 8, gpus=1, big_gpu=1), _node("c", 64, refused="c is blind")]
    assert unmet(Ask(cpus=8, gpus=1, custom={"big_gpu": 1}), nodes) == ""
    assert unmet(Ask(cpus=2), nodes) == ""
    why = unmet(Ask(cpus=16), nodes)  # only the refused node is big enough
    assert why.startswith("no node of the cluster has 16 CPUs")
    assert "a 2 CPUs; b 8 CPUs, 1 GPU, big_gpu: 1" in why and "refused: c is blind" in why
    assert "big_gpu: 2" in unmet(Ask(cpus=1, custom={"big_gpu": 2}), nodes)
    dead = [_node("a", 2).model_copy(update={"alive": False})]
    assert unmet(Ask(cpus=1), dead) == "no node of the cluster may take runs"


@pytest.mark.parametrize("address", ["auto", "192.168.1.10:6379", "head.lan:6379", ""])
def test_settings_take_a_ray_address(address):
    assert parse_settings(f"ray_address: '{address}'\n".encode()).ray_address == address


@pytest.mark.parametrize("address", ["192.168.1.10", "http://x:1", "a b:1", "x:123456", "; rm"])
def test_settings_refuse_what_is_not_a_ray_address(address):
    with pytest.raises(SettingsError, match="is not a Ray address: write HOST:PORT"):
        parse_settings(f"ray_address: '{address}'\n".encode())


def test_the_runner_refuses_a_bad_ray_address_flag_before_starting(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "runner", "--runs-dir", str(tmp_path), "--ray-address", "nope"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--ray-address: 'nope' is not a Ray address" in out.stderr
    assert not (tmp_path / "runner.json").exists()
