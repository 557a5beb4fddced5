"""Cancel a run whichever process owns it: mark the row, then stop the process tree by its marker.

The owner's runner checks the row before it spawns the CLI and before it records the outcome, so a run
cancelled here ends ``cancelled`` with this reason even while its owner (a `cc-executor run`, an MCP server,
a script) is alive; a run whose owner died is still marked and its leftovers signalled.
"""

from __future__ import annotations

from dataclasses import dataclass

from cc_executor.engine import process
from cc_executor.models import RunStatus
from cc_executor.registry.store import RunStore


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    run_id: str
    status: RunStatus  # the row's status afterwards
    cancelled: bool  # False: the run had already finished, nothing was changed
    signalled: int  # distinct processes signalled
    remaining: int  # processes still carrying the run's marker


async def cancel_run(store: RunStore, run_id: str, *, reason: str, grace_s: float = 2.0) -> CancelOutcome:
    """Mark ``run_id`` cancelled with ``reason`` (unless it already finished), then SIGINT → SIGTERM → SIGKILL
    its tree with ``grace_s`` between signals. Raises RunNotFoundError for an unknown id."""
    cancelled = await store.mark_cancelled(run_id, reason)
    record = await store.get(run_id)  # read after marking: the pgid the owner wrote if it spawned meanwhile
    signalled = await process.stop_marked(record.pgid, run_id, grace_s=grace_s) if cancelled else 0
    remaining = len(process.marked_processes(run_id))
    return CancelOutcome(run_id, record.status, cancelled, signalled, remaining)
