"""Reading runs out of a registry by a ``RunFilter``: the one query every backend's ``list_runs`` answers with
(the Temporal backend first brings its unfinished rows up to date). Members of task lists that have not started
(``pending``, no row yet) come from the backend and are filtered and ordered the same way (``pending_members``)."""

from __future__ import annotations

from collections.abc import Iterable

import anyio

from cc_executor.backends.pending_members import matching_pending, newest_first
from cc_executor.backends.protocol import RunFilter
from cc_executor.models import RunRecord
from cc_executor.registry.store import RunStore

__all__ = ["matching_runs"]


async def matching_runs(store: RunStore, query: RunFilter, pending: Iterable[RunRecord] = ()) -> list[RunRecord]:
    """The rows ``query`` selects, with the ``pending`` list members it selects, newest first; its cwd is resolved
    first (rows hold resolved cwds)."""
    cwd = str(await anyio.Path(query.cwd).resolve()) if query.cwd else None
    rows = await store.list_runs(
        status=query.status,
        cwd=cwd,
        since=query.since.isoformat() if query.since else None,
        list_id=query.list_id,
        limit=query.limit,
    )
    extra = matching_pending(pending, query)
    return newest_first(rows, extra, query.limit) if extra else rows
