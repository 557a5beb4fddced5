"""The seam between front ends and runs: everything the MCP server and the CLI may do with runs.

A front end (server/, cc_executor/cli/) holds a ``Backend`` and nothing else of the engine: it never opens the
store, builds argv or reads transcript files. Three backends implement this protocol over the one
``engine.runner.execute_run`` core: ``LocalBackend`` (runs in this process's task group), a durable local
backend (runs owned by a supervisor that outlives the front end) and a Temporal backend (runs as activities on
remote workers). ``tests/test_backend_contract.py`` pins the behaviour every backend must share.

Everything that crosses the seam is plain pydantic data (``RunRequest``, ``RunRecord``, ``ExecutionResult``,
``RunEvent``, ``RunFilter``, ``TranscriptQuery``, ``TranscriptChunk``, ``ListRequest``, ``ListOutcome``), so the
same calls can cross a network. Errors come back as the typed tree in ``cc_executor.errors``
(``RunNotFoundError``, ``InvalidRequestError``, ``ClaudeNotFoundError``, ``TranscriptNotFoundError``, ...) and the
front end translates them into its own words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from cc_executor.models import (
    Approval,
    ApprovalDecision,
    ExecutionResult,
    ProgressUpdate,
    RunRecord,
    RunRequest,
    RunStatus,
)


class RunEvent(BaseModel):
    """One numbered event of a run. ``seq`` starts at 1 and grows by one per event of that run, so a front end
    that reconnects asks for ``events(run_id, after=last_seq)`` and misses nothing that is still kept."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    seq: int = Field(ge=1)
    kind: Literal["progress", "finished"] = Field(
        description="progress: a ProgressUpdate; finished: the run ended (``status`` says how). The last event."
    )
    progress: ProgressUpdate | None = None
    status: RunStatus | None = None


class RunFilter(BaseModel):
    """Which runs ``list_runs`` returns, newest first. ``cwd`` is compared after resolving symlinks."""

    status: RunStatus | None = None
    cwd: str | None = None
    since: datetime | None = Field(default=None, description="Only runs created at or after this (aware) time.")
    list_id: str | None = None
    limit: int = Field(default=20, ge=1, le=500)


class TranscriptQuery(BaseModel):
    """A page of a run's raw transcript (the CLI's stream-json lines), by byte cursor or from the end."""

    cursor: int = Field(default=0, ge=0, description="Byte offset of a line start (``next_cursor`` of a page).")
    limit: int = Field(default=50, ge=1, le=5000, description="At most this many lines.")
    max_bytes: int = Field(default=1024 * 1024, ge=1, description="Stop the page before it grows past this.")
    tail: int | None = Field(default=None, ge=1, le=5000, description="The last N lines instead of from ``cursor``.")


class TranscriptChunk(BaseModel):
    """One page of raw transcript lines as it crosses the seam (rendering is the front end's:
    ``cc_executor.transcript_text``)."""

    run_id: str
    lines: list[str]
    cursor: int = Field(description="Byte offset where this page starts.")
    next_cursor: int | None = Field(description="Where the next page starts; None when this page reached the end.")
    total_bytes: int = Field(description="The transcript's size in bytes when read.")
    running: bool = Field(description="The run has not finished: more lines may come.")
    offsets: list[int] = Field(
        default_factory=list,
        description="Byte offset where each line starts (a cursor resuming at that line); empty from older workers.",
    )


class ListRequest(BaseModel):
    """A validated task list: its members' requests (already checked), how to run them."""

    list_id: str
    requests: list[RunRequest]
    mode: Literal["sequential", "parallel"] = "sequential"
    max_parallel: int = Field(default=1, ge=1)
    stop_on_error: bool = True


class ListMemberState(BaseModel):
    """One task of a list: ``pending`` (not started), ``running``, ``finished`` (``result`` set) or ``skipped``."""

    index: int = Field(ge=1)
    run_id: str
    task: str
    cwd: str
    state: Literal["pending", "running", "finished", "skipped"]
    reason: str | None = Field(default=None, description="Why it was skipped, or cancelled by the list.")
    result: ExecutionResult | None = None


class ListOutcome(BaseModel):
    """Where a task list is: each member in list order, the totals, and how it ended (``running`` until then)."""

    list_id: str
    mode: Literal["sequential", "parallel"]
    status: Literal["running", "success", "failed", "cancelled"]
    members: list[ListMemberState]
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0
    pending: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status != "running"


class CancelReport(BaseModel):
    """What a cancel did. ``cancelled`` False: the run had already finished and nothing changed."""

    run_id: str
    cancelled: bool
    status: RunStatus = Field(description="The run's status after the cancel.")
    owner: Literal["here", "elsewhere"] = Field(
        description="here: this backend ran it in this process; elsewhere: another process or machine owns it."
    )
    signalled: int = Field(default=0, description="Processes signalled (runs owned elsewhere).")
    remaining: int = Field(default=0, description="Processes still carrying the run's marker afterwards.")


class ResumeRequest(BaseModel):
    """Continue (or, with ``fork``, branch) a finished run's conversation in its own cwd with a new task.

    ``request`` carries the new task and its options; its ``cwd`` is ignored (the original run's is used)."""

    run_id: str
    request: RunRequest
    fork: bool = False


@runtime_checkable
class Backend(Protocol):
    """What a front end may do with runs. Every method raises ``RunNotFoundError`` for an unknown run id."""

    name: str

    async def preflight(self, request: RunRequest) -> None:
        """Refuse, with a typed error, what would fail before the CLI starts: no ``claude``, root +
        bypassPermissions, a policy refusal. Nothing is written or started."""
        ...

    async def submit(self, request: RunRequest) -> str:
        """Record and start ``request``; return its run id at once. Idempotent on ``request.run_id``: submitting
        the same id again starts nothing and returns the id."""
        ...

    async def resume(self, request: ResumeRequest) -> str:
        """Submit a resumed (or forked) run of a finished run; its new run id."""
        ...

    async def cancel(self, run_id: str, reason: str = "cancelled") -> CancelReport:
        """Stop a queued or running run (its whole process tree), wherever it runs, and record ``cancelled``
        with ``reason``. A pending list task is skipped instead. The first reason wins."""
        ...

    def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """The run's numbered events with ``seq > after``, live until its ``finished`` event (which ends the
        iteration). A finished run yields what is kept and then its ``finished`` event. A list id gives the
        list's events: every task's progress, prefixed with its place in the list, then ``finished``."""
        ...

    async def status(self, run_id: str) -> RunRecord:
        """The run's row, with its latest progress line in ``last_progress`` while it runs."""
        ...

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None:
        """The result once the run has finished, or None if it still runs after ``timeout_s``."""
        ...

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        """Recorded runs, newest first."""
        ...

    async def find_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Run ids that start with ``prefix`` (front ends accept a short id), newest first."""
        ...

    async def transcript(self, run_id: str, query: TranscriptQuery) -> TranscriptChunk:
        """A page of the run's transcript (``TranscriptNotFoundError`` when none was kept)."""
        ...

    async def submit_list(self, request: ListRequest) -> str:
        """Start a task list (its members recorded under ``list_id``); return the list id at once. Each task is
        a run of this backend: ``status``/``wait``/``events``/``cancel`` work on its run id, also while it is
        pending (``wait`` then waits for it to start and end; ``cancel`` skips it)."""
        ...

    async def cancel_list(self, list_id: str, reason: str = "cancelled") -> bool:
        """Cancel a list's running members and skip the rest."""
        ...

    async def list_outcome(self, list_id: str, timeout_s: float = 0.0) -> ListOutcome:
        """The list's members and totals, after waiting up to ``timeout_s`` for it to end. Raises
        ``RunNotFoundError`` (with the list id) for a list this backend does not know."""
        ...

    async def list_of(self, run_id: str) -> str | None:
        """The id of the list ``run_id`` is a member of, when this backend can reach that list (its members are
        reachable by run id even before they start); None otherwise. A durable backend knows every recorded
        list on its state dir, so a front end started later (a restarted server) finds them too."""
        ...

    async def approve(
        self,
        run_id: str,
        request_id: str,
        decision: ApprovalDecision,
        *,
        decided_by: str = "caller",
        message: str | None = None,
    ) -> Approval:
        """Answer a question the run waits on (ask mode: ``RunRecord.pending_approvals``); the first answer wins,
        from any process. Returns the recorded answer; ``InvalidRequestError`` names an unknown request or one
        already answered (and by whom)."""
        ...

    async def aclose(self) -> None:
        """Release what this backend holds. Runs this backend owns in-process are cancelled and recorded;
        runs owned elsewhere (a supervisor, a worker) go on."""
        ...


__all__ = [
    "Backend",
    "CancelReport",
    "ListMemberState",
    "ListOutcome",
    "ListRequest",
    "ResumeRequest",
    "RunEvent",
    "RunFilter",
    "TranscriptChunk",
    "TranscriptQuery",
]
