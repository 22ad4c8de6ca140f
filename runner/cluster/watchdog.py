"""``python -m runner.cluster.watchdog AGENT_PID AGENT_CREATE PID PGID CREATE``: on a node,
SIGKILL the run's process group once its agent is gone without having reaped it.

Ray ends an actor's worker when the node's raylet dies; the trainer, in a session of its own,
would go on writing to a run the runner has called ``lost`` and may resume elsewhere. Ray Jobs
guards its entrypoints the same way. The agent ends this process when the trainer exits. The
kill goes through ``machine.processes.send``, so a group that is no longer ours is left alone.
"""

from __future__ import annotations

import signal
import sys
import time

from machine.processes import identify, send

#: How often the agent is looked for; a lost node's trainer dies within about this long.
CHECK_SECONDS = 1.0


def main(argv: list[str]) -> int:
    agent_pid, agent_create, pid, pgid, create = argv
    while identify(int(agent_pid), float(agent_create)) is not None:
        time.sleep(CHECK_SECONDS)
    send(int(pid), int(pgid), float(create), signal.SIGKILL)  # a paused group too
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
