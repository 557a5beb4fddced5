"""Reading runs out of a registry by a ``RunFilter``: the one query every backend's ``list_runs`` answers with
(the Temporal backend first brings its unfinished rows up to date)."""

from __future__ import annotations

import anyio

from cc_executor.backends.protocol import RunFilter
from cc_executor.models import RunRecord
from cc_executor.registry.store import RunStore

__all__ = ["matching_runs"]


async def matching_runs(store: RunStore, query: RunFilter) -> list[RunRecord]:
    """The rows ``query`` selects, newest first; its cwd is resolved first (rows hold resolved cwds)."""
    cwd = str(await anyio.Path(query.cwd).resolve()) if query.cwd else None
    return await store.list_runs(
        status=query.status,
        cwd=cwd,
        since=query.since.isoformat() if query.since else None,
        list_id=query.list_id,
        limit=query.limit,
    )
