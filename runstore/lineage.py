"""A run's lineage: the runs whose weights it started from (``init_from``, followed back).

One definition for the Run page and the reports; the parent of a run is read from its
config.yaml's top level (``ConfigListing.parent``), never from the weights."""

from __future__ import annotations

from collections.abc import Callable

#: At most this many ancestors are followed (a chain is short; a loop made by hand is cut).
MAX_ANCESTORS = 50


def ancestors(run_id: str, parent_of: Callable[[str], str | None]) -> list[str]:
    """The run's parents, nearest first, until a run with none, a loop or MAX_ANCESTORS."""
    found: list[str] = []
    seen = {run_id}
    current = parent_of(run_id)
    while current and current not in seen and len(found) < MAX_ANCESTORS:
        found.append(current)
        seen.add(current)
        current = parent_of(current)
    return found
