"""The New run presets: the example configs shipped in ``examples/``, with a line each on why
to pick them. The files stay the single source, so the examples in docs/configuration.md and
the form agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstore.yamlsafe import load_yaml_mapping

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class Preset:
    key: str
    file: str
    blurb: str

    @property
    def text(self) -> str:
        return (EXAMPLES / self.file).read_text(encoding="utf-8")

    def doc(self) -> dict[str, Any]:
        return load_yaml_mapping(self.text.encode("utf-8"))


#: In the New run form's order. The smoke run (its default) checks the whole chain in a
#: minute; the first agent to train is Pong, fast: the shortest way to a winning agent (issue 19).
PRESETS: dict[str, Preset] = {
    "CartPole PPO smoke run": Preset(
        "cartpole",
        "cartpole-smoke.yaml",
        "About a minute on a CPU: checks the whole chain (queue, runner, trainer, charts).",
    ),
    "Pong PPO, fast": Preset(
        "pong_fast",
        "pong-ppo-fast.yaml",
        "PPO tuned for wall-clock time on a small machine (minibatches of 32, no sticky "
        "actions); stops at +18. Measured on a 2-core CPU: +18 in 19-38 minutes (4 runs).",
    ),
    "Pong PPO (zoo)": Preset(
        "pong",
        "pong-ppo.yaml",
        "PPO with the RL Zoo's Atari settings over their 10M steps (the Zoo reports 21).",
    ),
    "Breakout DQN (zoo)": Preset(
        "breakout",
        "breakout-dqn.yaml",
        "DQN with the RL Zoo's Atari settings; needs about 3 GB of memory for its replay buffer.",
    ),
}

# The New run choice that holds a config cloned from a run (Runs page, "Clone").
CLONE_CHOICE = "Cloned run"
