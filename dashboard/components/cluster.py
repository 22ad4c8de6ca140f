"""The Ray cluster on the System page: whether the runner reaches it, and each node with its
CPUs, GPUs, memory, custom resources, what is free and which runs are there, from runner.json
(the runner is the one that talks to Ray; the dashboard never imports it)."""

from __future__ import annotations

import streamlit as st

from dashboard import fmt
from runstore.models import ClusterInfo, ClusterNode, RunnerInfo


def node_rows(nodes: list[ClusterNode]) -> list[dict]:
    """One row per node: free of total for CPUs and GPUs (free of the runs placed there by
    this runner), custom resources, runs, and why a node takes none."""
    rows = []
    for node in sorted(nodes, key=lambda n: (not n.alive, n.hostname, n.id)):
        rows.append(
            {
                "node": node.hostname or "?",
                "IP": node.ip,
                "id": node.id[:8],
                "state": "alive" if node.alive else "gone",
                "CPUs free": f"{node.free_cpus:g} of {node.cpus:g}",
                "GPUs free": f"{node.free_gpus:g} of {node.gpus:g}" if node.gpus else "—",
                "memory": fmt.size(int(node.memory)) if node.memory else "—",
                "resources": ", ".join(f"{k}: {v:g}" for k, v in sorted(node.resources.items())),
                "runs": ", ".join(node.runs),
                "takes runs": "no: " + node.refused if node.refused else "yes",
            }
        )
    return rows


def render_cluster(info: RunnerInfo | None) -> ClusterInfo | None:
    """The cluster section, shown only when the runner places runs on one."""
    cluster = info.cluster if info is not None else None
    if cluster is None:
        return None
    st.subheader("Cluster")
    if cluster.connected:
        st.success(f"Runs are placed on the Ray cluster at `{cluster.address}`.")
    else:
        st.error(
            f"The runner cannot use the Ray cluster at `{cluster.address}`: "
            f"{cluster.error or 'not connected yet'}. Queued runs wait for it; runs already "
            "on its nodes go on training."
        )
    if cluster.nodes:
        st.dataframe(node_rows(cluster.nodes), hide_index=True, width="stretch")
    if cluster.checked_at:
        st.caption(f"Nodes as of {fmt.clock(cluster.checked_at)}. Setup: docs/cluster.md.")
    return cluster
