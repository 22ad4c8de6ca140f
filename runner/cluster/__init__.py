"""Runs on a Ray cluster: the runner's backend for more than one machine (docs/cluster.md).

The runner stays the one supervisor. With a Ray address it places each run as one detached,
named Ray actor (``agent.Agent``, named by the run id) that starts ``python -m training
RUN_DIR`` in its own process group on its node and carries the runner's signals to it; a
restarted runner finds live runs again by actor name. Scheduling, placement and node membership
are Ray's. Nothing here is imported without an address: ``backend`` imports Ray.

- ``placement``: what a run asks the cluster for, and whether any node can ever give it (pure).
- ``agent``: the actor body, on the node: spawn, signal, wait, report where it runs.
- ``watchdog``: on the node, ends the trainer's group if its agent dies (a lost raylet).
- ``remote``: the runner's side of one agent, behind ``runner.process.Handle``.
- ``backend``: the connection, the node list, the runs-folder probe, placing and finding agents.
"""
