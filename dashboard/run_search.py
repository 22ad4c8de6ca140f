"""The Runs page's text search, tag filter and archive view over the run index (issue 17),
as plain functions of index entries: no Streamlit, testable alone.

A search is words separated by spaces; a run matches when every word is found (any case, any
part of a word) in its name, id, tags, note, game, algorithm, sweep or parent run, or, only
when those do not hold every word, in the values of its config.yaml (``config_words``, read
once per version of the file), so a search that the index answers reads no config at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dashboard.data import IndexEntry


def index_text(entry: IndexEntry) -> str:
    """What the index itself knows of a run, in lower case, for the search."""
    return "\n".join(
        (
            entry.name,
            entry.id,
            *entry.tags,
            entry.note,
            entry.env,
            entry.algo,
            entry.sweep_id,
            entry.parent,
        )
    ).lower()


def search(
    entries: Iterable[IndexEntry], query: str, config_words: Callable[[str], str]
) -> list[IndexEntry]:
    """The entries every word of ``query`` is found in (all of them for an empty query), in
    their order; ``config_words(run_id)`` is asked only for runs the index does not match."""
    words = query.lower().split()
    if not words:
        return list(entries)
    found = []
    for entry in entries:
        text = index_text(entry)
        missing = [w for w in words if w not in text]
        if not missing:
            found.append(entry)
            continue
        config = config_words(entry.id)
        if all(w in config for w in missing):
            found.append(entry)
    return found


def all_tags(entries: Iterable[IndexEntry]) -> list[str]:
    """Every tag of these runs, sorted, each once (the tag filter's choices)."""
    return sorted({tag for entry in entries for tag in entry.tags})


def with_tags(entries: Iterable[IndexEntry], tags: Iterable[str]) -> list[IndexEntry]:
    """The runs that carry any of ``tags`` (all runs when none is chosen)."""
    wanted = set(tags)
    return [e for e in entries if not wanted or wanted.intersection(e.tags)]


def visible(entries: Iterable[IndexEntry], show_archived: bool) -> list[IndexEntry]:
    """Archived runs only when asked for (the default view hides them)."""
    return [e for e in entries if show_archived or not e.archived]
