"""RunStore: the only module that speaks SQL. Every run is a row in ``runs``; retries are rows in ``attempts``.

One aiosqlite connection is shared by many coroutines. aiosqlite runs statements one at a time on its thread, but a
transaction spans several awaits, so an ``anyio.Lock`` keeps one coroutine's statements from landing inside another's
transaction. Across processes, WAL plus ``busy_timeout`` and ``BEGIN IMMEDIATE`` keep writers from deadlocking.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
import anyio

from cc_executor.errors import InvalidRequestError, RunNotFoundError
from cc_executor.models import Approval, ExecutionResult, RunRecord, RunRequest, RunStatus, compact_json
from cc_executor.paths import ensure_private_dir
from cc_executor.registry.migrations import migrate

if TYPE_CHECKING:
    from cc_executor.engine.worktree import WorktreePlan

MEMORY = ":memory:"

# Columns holding JSON text, with the value RunRecord expects when the column is NULL (None = leave it NULL).
_JSON_COLUMNS: dict[str, Any] = {
    "argv": [],
    "profile": None,
    "usage": {},
    "structured_output": None,
    "files_created": [],
    "files_modified": [],
    "files_deleted": [],
    "permission_denials": [],
    "commits": [],
}
# Columns the record does not carry: they exist for SQL queries only.
_SQL_ONLY_COLUMNS = ("input_tokens", "output_tokens")
_UNFINISHED = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING_FOR_APPROVAL.value)
# What a cancel request wrote that the run's own result must not overwrite (finish_run's compare-and-set).
_CANCEL_KEEPS = ("status", "error_class", "error", "finished_at")
_DELETE_CHUNK = 400  # ids per DELETE (or IN list): under SQLite's default limit of host parameters
LIST_RUNNING = "running"  # a durable list's status until its end is recorded (then success/failed/cancelled)


@dataclass(frozen=True, slots=True)
class TaskListRow:
    """A durable task list as recorded (m009); its members are in ``task_list_members``."""

    list_id: str
    mode: str
    max_parallel: int
    stop_on_error: bool
    status: str = LIST_RUNNING
    cancel_reason: str | None = None
    error: str | None = None
    owner_pid: int | None = None
    owner_start: int | None = None
    owner_boot: str | None = None
    created_at: str = ""
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status != LIST_RUNNING


@dataclass(frozen=True, slots=True)
class UnstartedMember:
    """A member of a durable list with no row in ``runs``: not started yet, or (list ended) never started."""

    run_id: str
    list_id: str
    index: int  # 1-based
    total: int  # members in its list
    request: str  # its recorded request (JSON)
    list_status: str
    list_error: str | None
    list_created_at: str


def utc_now() -> str:
    """ISO-8601 UTC with microseconds: one fixed width, so text order is time order in SQL."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def normalise_timestamp(value: str) -> str:
    """Turn any ISO-8601 time into the stored form; a naive time is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequestError(f"invalid timestamp {value!r}: expected ISO-8601") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class RunStore:
    """Async access to the runs database. Open with ``async with RunStore.open(path) as store``."""

    def __init__(self, db: aiosqlite.Connection, path: Path | None) -> None:
        self._db = db
        self.path = path
        self._lock = anyio.Lock()

    @classmethod
    async def connect(cls, path: Path | str) -> RunStore:
        """Open (creating if needed) and migrate the database; call ``close()`` when done."""
        file = None if str(path) == MEMORY else Path(path)
        if file is not None:
            _prepare_file(file)
        db = await aiosqlite.connect(MEMORY if file is None else file, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await _configure(db)
            await migrate(db)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await db.close()
            raise
        if file is not None:
            _restrict_files(file)
        return cls(db, file)

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[RunStore]:
        store = await cls.connect(path)
        try:
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    async def close(self) -> None:
        await self._db.close()

    # --- writes -------------------------------------------------------------------------------------------------

    async def create_run(
        self,
        request: RunRequest,
        *,
        argv: list[str],
        owner_pid: int,
        owner_start: int | None = None,
        owner_boot: str | None = None,
        status: RunStatus = RunStatus.QUEUED,
        transcript_path: str | None = None,
        stderr_path: str | None = None,
        backend: str | None = None,
    ) -> RunRecord:
        """Insert the run's row before anything starts, so even a crash at spawn leaves a trace. The owner is
        pid + start time + boot id (``process.own_identity``), so reconcile tells a dead owner from a reused pid.

        ``backend`` names a remote owner (e.g. ``temporal``); such rows are never reconciled by pid."""
        row = {
            "id": request.run_id,
            "list_id": request.list_id,
            "parent_run_id": request.parent_run_id,
            "task": request.task,
            "cwd": str(request.cwd),
            "argv": compact_json(argv),
            "model": request.config.model,
            "permission_mode": request.config.permission_mode,
            "status": status.value,
            "created_at": utc_now(),
            "owner_pid": owner_pid,
            "owner_start": owner_start,
            "owner_boot": owner_boot,
            "transcript_path": transcript_path,
            "stderr_path": stderr_path,
            "timeout_s": request.timeout_s,
            "idle_timeout_s": request.config.idle_timeout,
            "timeout_basis": request.timeout_basis,
            "context": request.context,
            "profile": compact_json(request.config.profile()),
            "backend": backend,
        }
        sql = f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        async with self._lock:
            try:
                await self._write(sql, tuple(row.values()))
            except sqlite3.IntegrityError as exc:
                raise InvalidRequestError(f"run id {request.run_id!r} already exists") from exc
            return await self._get(request.run_id)

    async def set_worktree(self, run_id: str, plan: WorktreePlan) -> None:
        """An isolated run's branch, base and worktree directory, known before it starts (doctor reads them)."""
        await self._update(
            run_id,
            "isolation = 'worktree', branch = ?, base_sha = ?, base_branch = ?, worktree_path = ?, "
            "uncommitted_changes_not_carried = ?",
            (plan.branch, plan.base_sha, plan.base_branch, str(plan.path), int(plan.dirty)),
        )

    async def mark_started(self, run_id: str, *, pid: int, pgid: int) -> None:
        """Record the CLI's pids; a row already cancelled (by `cc-executor cancel`) stays cancelled."""
        await self._update(
            run_id,
            "status = CASE WHEN status = ? THEN status ELSE ? END, "
            "started_at = COALESCE(started_at, ?), pid = ?, pgid = ?",
            (RunStatus.CANCELLED.value, RunStatus.RUNNING.value, utc_now(), pid, pgid),
        )

    async def set_worker(self, run_id: str, worker: str) -> None:
        """The remote worker running the run (a remote backend fills this from what its engine reports)."""
        await self._update(run_id, "worker = ?", (worker,))

    async def set_progress(self, run_id: str, message: str) -> None:
        await self._update(run_id, "last_progress = ?", (message,))

    async def mark_status(
        self, run_id: str, status: RunStatus, *, error_class: str | None = None, error: str | None = None
    ) -> None:
        """Set the status (and error, when given); a finished status also stamps finished_at."""
        assignments = "status = ?, error_class = COALESCE(?, error_class), error = COALESCE(?, error)"
        params: tuple[Any, ...] = (status.value, error_class, error)
        if status.finished:
            assignments += ", finished_at = ?"
            params += (utc_now(),)
        await self._update(run_id, assignments, params)

    async def mark_cancelled(self, run_id: str, reason: str) -> bool:
        """Mark a queued or running row cancelled with ``reason``; False if it had already finished.

        One statement, so a run that finishes meanwhile is never turned into a cancelled one. The runner keeps this
        reason when it records the run (the first cancel reason wins, whichever process asked).
        """
        sql = (
            "UPDATE runs SET status = ?, error_class = 'RunCancelledError', error = ?, finished_at = ? "
            f"WHERE id = ? AND status IN ({', '.join('?' * len(_UNFINISHED))})"
        )
        async with self._lock:
            touched = await self._write(sql, (RunStatus.CANCELLED.value, reason, utc_now(), run_id, *_UNFINISHED))
            if not touched:
                await self._get(run_id)  # RunNotFoundError for an unknown id
        return bool(touched)

    async def mark_lost(self, run_id: str, reason: str) -> bool:
        """Mark a queued or running row ``lost`` (its owner died); False if it had finished meanwhile."""
        sql = (
            "UPDATE runs SET status = ?, error_class = 'RunLostError', error = ?, finished_at = ? "
            f"WHERE id = ? AND status IN ({', '.join('?' * len(_UNFINISHED))})"
        )
        async with self._lock:
            touched = await self._write(sql, (RunStatus.LOST.value, reason, utc_now(), run_id, *_UNFINISHED))
        return bool(touched)

    async def record_skipped(self, request: RunRequest, reason: str) -> None:
        """The row of a task-list member that never started, so the list's rows account for every task."""
        await self.create_run(request, argv=[], owner_pid=os.getpid(), status=RunStatus.SKIPPED)
        await self.mark_status(request.run_id, RunStatus.SKIPPED, error=reason)

    async def finish_run(self, result: ExecutionResult) -> RunStatus:
        """Write the outcome as a compare-and-set, and return the row's status afterwards.

        Only an unfinished row, or one a cancel request marked ``cancelled`` (this process's or another's:
        `cc-executor cancel`, a second server's cancel_run), takes the result; on a cancelled row the status and the
        cancel's reason stay, whatever the run itself reached, and the details (output, files, cost) are added. A row
        already final (lost, or finished before) is left alone. One statement, so no cancel can slip in between a
        read and the write. Fields the result leaves empty (task, cwd, paths...) keep what create_run stored.
        """
        values = _result_values(result)
        overwrite = values["overwrite"]
        sticky = {column: overwrite.pop(column) for column in _CANCEL_KEEPS}
        assignments = [f"{column} = ?" for column in overwrite]
        assignments += [f"{column} = CASE WHEN status = ? THEN {column} ELSE ? END" for column in sticky]
        assignments += [f"{column} = COALESCE(?, {column})" for column in values["keep"]]
        cancelled = RunStatus.CANCELLED.value
        params = (
            *overwrite.values(),
            *(param for value in sticky.values() for param in (cancelled, value)),
            *values["keep"].values(),
        )
        takes = (*_UNFINISHED, cancelled)
        sql = f"UPDATE runs SET {', '.join(assignments)} WHERE id = ? AND status IN ({', '.join('?' * len(takes))})"
        async with self._lock:
            await self._write(sql, (*params, result.run_id, *takes))
            return (await self._get(result.run_id)).status  # RunNotFoundError for an unknown id

    async def record_attempt(
        self,
        run_id: str,
        n: int,
        *,
        status: RunStatus | str,
        started_at: str | None = None,
        finished_at: str | None = None,
        exit_code: int | None = None,
        error_class: str | None = None,
        error: str | None = None,
        session_id: str | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Upsert attempt ``n`` and raise the run's attempt count to at least ``n``, in one transaction."""
        status_value = status.value if isinstance(status, RunStatus) else status
        row = (run_id, n, started_at, finished_at, status_value, exit_code, error_class, error, session_id, cost_usd)
        async with self._lock, self._transaction():
            bump = "UPDATE runs SET attempts = MAX(COALESCE(attempts, 0), ?) WHERE id = ?"
            touched = await self._write(bump, (n, run_id))
            if not touched:
                raise RunNotFoundError(run_id)
            await self._write(
                "INSERT OR REPLACE INTO attempts (run_id, n, started_at, finished_at, status, exit_code,"
                " error_class, error, session_id, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    # --- reads --------------------------------------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord:
        async with self._lock:
            return await self._get(run_id)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        cwd: str | None = None,
        since: str | None = None,
        list_id: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs newest first. ``since`` is any ISO-8601 time and compares with created_at."""
        filters: dict[str, Any] = {
            "status = ?": status.value if status is not None else None,
            "cwd = ?": cwd,
            "created_at >= ?": normalise_timestamp(since) if since is not None else None,
            "list_id = ?": list_id,
        }
        used = {clause: value for clause, value in filters.items() if value is not None}
        where = f"WHERE {' AND '.join(used)}" if used else ""
        sql = f"SELECT * FROM runs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return await self._records(sql, (*used.values(), _check_limit(limit)))

    async def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix`` (lowercase hex and dashes), newest first: the CLI accepts a unique prefix."""
        if not prefix or prefix.strip("0123456789abcdef-"):
            raise InvalidRequestError(f"invalid run id prefix {prefix!r}: expected lowercase hex digits and dashes")
        # Ids use only '-', '0'-'9', 'a'-'f' (all below 'g'), so [prefix, prefix + "g") is exactly the ids with
        # that prefix, and the primary-key index answers it.
        sql = "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY created_at DESC, rowid DESC LIMIT ?"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (prefix, prefix + "g", _check_limit(limit)))
        return [str(row[0]) for row in rows]

    async def unfinished_runs(self, *, backend: str | None = None) -> list[RunRecord]:
        """Queued or running rows, oldest first: the ones a restart must adopt or mark lost. Only this machine's
        own rows by default; ``backend="temporal"`` gives the rows a remote backend owns."""
        where = "backend IS NULL" if backend is None else "backend = ?"
        statuses = ", ".join("?" * len(_UNFINISHED))
        sql = f"SELECT * FROM runs WHERE status IN ({statuses}) AND {where} ORDER BY created_at, rowid"
        return await self._records(sql, _UNFINISHED if backend is None else (*_UNFINISHED, backend))

    async def delete_run(self, run_id: str) -> None:
        """Forget a run's row and attempts (a worker's own copy, before it executes a retried attempt afresh)."""
        async with self._lock, self._transaction():
            for table in ("attempts", "approvals"):  # both reference runs(id)
                await self._write(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            await self._write("DELETE FROM runs WHERE id = ?", (run_id,))

    async def list_attempts(self, run_id: str) -> list[dict[str, Any]]:
        sql = "SELECT * FROM attempts WHERE run_id = ? ORDER BY n"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (run_id,))
        return [dict(row) for row in rows]

    async def durations(self, *, cwd: str | None = None, limit: int = 500) -> list[tuple[str, str, float]]:
        """(task, cwd, duration_s) of successful runs, newest first: the history a timeout predictor learns from."""
        where = "status = ? AND duration_s IS NOT NULL" + (" AND cwd = ?" if cwd is not None else "")
        params = (RunStatus.SUCCESS.value, *((cwd,) if cwd is not None else ()), _check_limit(limit))
        sql = f"SELECT task, cwd, duration_s FROM runs WHERE {where} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, params)
        return [(str(row[0]), str(row[1]), float(row[2])) for row in rows]

    # --- durable runs: the recorded request and numbered events ----------------------------------------------------

    async def save_request(self, run_id: str, request_json: str) -> None:
        """The request a supervisor loads to run ``run_id`` (its row must exist). Written once."""
        sql = "INSERT INTO run_requests (run_id, request, created_at) VALUES (?, ?, ?)"
        async with self._lock:
            await self._write(sql, (run_id, request_json, utc_now()))

    async def load_request(self, run_id: str) -> str | None:
        """The recorded request of a durable run; None for a run started in-process (no supervisor)."""
        async with self._lock:
            rows = list(await self._db.execute_fetchall("SELECT request FROM run_requests WHERE run_id = ?", (run_id,)))
        return str(rows[0][0]) if rows else None

    async def append_event(self, run_id: str, seq: int, kind: str, payload: str) -> None:
        """Event ``seq`` of a run (its one writer, the supervisor, numbers them)."""
        sql = "INSERT INTO run_events (run_id, seq, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)"
        async with self._lock:
            await self._write(sql, (run_id, seq, kind, payload, utc_now()))

    async def append_finished_event(self, run_id: str, payload: str) -> int | None:
        """The run's one ``finished`` event, numbered after the last one; None if it already has one (whoever
        records the end first, the supervisor or a front end that found it dead, is the only one)."""
        async with self._lock, self._transaction():
            rows = list(
                await self._db.execute_fetchall(
                    "SELECT MAX(seq), SUM(kind = 'finished') FROM run_events WHERE run_id = ?", (run_id,)
                )
            )
            last, finished = rows[0][0] or 0, rows[0][1] or 0
            if finished:
                return None
            sql = "INSERT INTO run_events (run_id, seq, kind, payload, created_at) VALUES (?, ?, 'finished', ?, ?)"
            await self._write(sql, (run_id, last + 1, payload, utc_now()))
        return int(last) + 1

    async def events_after(self, run_id: str, after: int, *, limit: int = 500) -> list[tuple[int, str, str]]:
        """(seq, kind, payload) of the kept events with ``seq > after``, oldest first."""
        sql = "SELECT seq, kind, payload FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (run_id, after, _check_limit(limit)))
        return [(int(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def last_event_seq(self, run_id: str) -> int:
        async with self._lock:
            rows = list(await self._db.execute_fetchall("SELECT MAX(seq) FROM run_events WHERE run_id = ?", (run_id,)))
        return int(rows[0][0] or 0)

    async def has_finished_event(self, run_id: str) -> bool:
        sql = "SELECT 1 FROM run_events WHERE run_id = ? AND kind = 'finished' LIMIT 1"
        async with self._lock:
            rows = list(await self._db.execute_fetchall(sql, (run_id,)))
        return bool(rows)

    async def trim_events(self, run_id: str, *, keep: int) -> None:
        """Keep the latest ``keep`` progress events of a run (and its finished event): what is stored stays bounded."""
        await self._trim("run_events", "run_id", run_id, keep)

    async def _trim(self, table: str, key: str, value: str, keep: int) -> None:
        """The latest ``keep`` progress events of one run or list in ``table`` (our constants, never input)."""
        sql = (
            f"DELETE FROM {table} WHERE {key} = ? AND kind = 'progress' AND seq <= "
            f"(SELECT MAX(seq) FROM {table} WHERE {key} = ?) - ?"
        )
        async with self._lock:
            await self._write(sql, (value, value, keep))

    async def queued_durable_before(self, run_id: str) -> list[tuple[str, int | None]]:
        """(run id, owner pid) of the durable runs still queued that were created before ``run_id``: the ones a
        supervisor lets go first (FIFO across processes)."""
        sql = (
            "SELECT r.id, r.owner_pid FROM runs r JOIN run_requests q ON q.run_id = r.id "
            "WHERE r.status = ? AND r.created_at < (SELECT created_at FROM runs WHERE id = ?) ORDER BY r.created_at"
        )
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (RunStatus.QUEUED.value, run_id))
        return [(str(row[0]), None if row[1] is None else int(row[1])) for row in rows]

    async def mark_lost_if_unfinished(self, run_id: str, reason: str) -> bool:
        """Mark a queued or running row ``lost`` with ``reason``; False if it had already finished (one statement,
        so an end recorded meanwhile is never overwritten)."""
        sql = (
            "UPDATE runs SET status = ?, error_class = 'RunLostError', error = ?, finished_at = ? "
            f"WHERE id = ? AND status IN ({', '.join('?' * len(_UNFINISHED))})"
        )
        async with self._lock:
            touched = await self._write(sql, (RunStatus.LOST.value, reason, utc_now(), run_id, *_UNFINISHED))
        return bool(touched)

    # --- durable task lists (m009) -------------------------------------------------------------------------------

    async def create_list(self, row: TaskListRow, requests: list[str]) -> None:
        """Record a durable list and its members' requests (JSON, in list order) in one transaction; raises
        InvalidRequestError if the list id is taken."""
        sql = (
            "INSERT INTO task_lists (list_id, mode, max_parallel, stop_on_error, status, owner_pid, owner_start, "
            "owner_boot, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        member_sql = "INSERT INTO task_list_members (run_id, list_id, idx, request) VALUES (?, ?, ?, ?)"
        async with self._lock:
            try:
                async with self._transaction():
                    await self._write(
                        sql,
                        (
                            row.list_id,
                            row.mode,
                            row.max_parallel,
                            int(row.stop_on_error),
                            LIST_RUNNING,
                            row.owner_pid,
                            row.owner_start,
                            row.owner_boot,
                            utc_now(),
                        ),
                    )
                    for index, request in enumerate(requests, start=1):
                        run_id = json.loads(request)["run_id"]
                        await self._write(member_sql, (run_id, row.list_id, index, request))
            except sqlite3.IntegrityError as exc:
                raise InvalidRequestError(f"list id {row.list_id!r} or one of its run ids already exists") from exc

    async def get_list(self, list_id: str) -> TaskListRow | None:
        async with self._lock:
            rows = list(await self._db.execute_fetchall("SELECT * FROM task_lists WHERE list_id = ?", (list_id,)))
        return _list_row(rows[0]) if rows else None

    async def unfinished_lists(self) -> list[TaskListRow]:
        async with self._lock:
            rows = await self._db.execute_fetchall("SELECT * FROM task_lists WHERE status = ?", (LIST_RUNNING,))
        return [_list_row(row) for row in rows]

    async def list_members(self, list_id: str) -> list[tuple[str, str, str | None]]:
        """(run id, request JSON, cancel request) of each member, in list order."""
        sql = "SELECT run_id, request, cancel_reason FROM task_list_members WHERE list_id = ? ORDER BY idx"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (list_id,))
        return [(str(r[0]), str(r[1]), None if r[2] is None else str(r[2])) for r in rows]

    async def member_cancels(self, list_id: str) -> list[tuple[str, str]]:
        """(run id, reason) of the members some front end asked to stop."""
        sql = "SELECT run_id, cancel_reason FROM task_list_members WHERE list_id = ? AND cancel_reason IS NOT NULL"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (list_id,))
        return [(str(r[0]), str(r[1])) for r in rows]

    async def list_of(self, run_id: str) -> str | None:
        """The durable list ``run_id`` is a member of, if any."""
        async with self._lock:
            rows = list(
                await self._db.execute_fetchall("SELECT list_id FROM task_list_members WHERE run_id = ?", (run_id,))
            )
        return str(rows[0][0]) if rows else None

    async def member_places(self, run_ids: Iterable[str]) -> dict[str, int]:
        """The 1-based place of each of ``run_ids`` that is a member of a durable list."""
        ids = list(run_ids)
        places: dict[str, int] = {}
        for start in range(0, len(ids), _DELETE_CHUNK):
            chunk = ids[start : start + _DELETE_CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT run_id, idx FROM task_list_members WHERE run_id IN ({marks})"
            async with self._lock:
                rows = await self._db.execute_fetchall(sql, chunk)
            places.update((str(r[0]), int(r[1])) for r in rows)
        return places

    async def unstarted_members(
        self, *, run_id: str | None = None, list_id: str | None = None, running_lists_only: bool = False
    ) -> list[UnstartedMember]:
        """Members of recorded lists that have no row in ``runs`` (one run id, one list's, or all), newest list
        first and later members first; ``running_lists_only``: only those of lists that have not ended."""
        filters: dict[str, Any] = {
            "m.run_id = ?": run_id,
            "m.list_id = ?": list_id,
            "l.status = ?": LIST_RUNNING if running_lists_only else None,
        }
        used = {clause: value for clause, value in filters.items() if value is not None}
        where = "".join(f" AND {clause}" for clause in used)
        sql = (
            "SELECT m.run_id, m.list_id, m.idx, m.request, l.status, l.error, l.created_at, "
            "(SELECT COUNT(*) FROM task_list_members c WHERE c.list_id = m.list_id) "
            "FROM task_list_members m JOIN task_lists l ON l.list_id = m.list_id "
            f"WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = m.run_id){where} "
            "ORDER BY l.created_at DESC, m.idx DESC"
        )
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, tuple(used.values()))
        return [
            UnstartedMember(
                run_id=str(r[0]),
                list_id=str(r[1]),
                index=int(r[2]),
                total=int(r[7]),
                request=str(r[3]),
                list_status=str(r[4]),
                list_error=None if r[5] is None else str(r[5]),
                list_created_at=str(r[6]),
            )
            for r in rows
        ]

    async def request_list_cancel(self, list_id: str, reason: str) -> bool:
        """Ask a running list's supervisor to stop it (the first reason wins); False if it has ended."""
        sql = "UPDATE task_lists SET cancel_reason = COALESCE(cancel_reason, ?) WHERE list_id = ? AND status = ?"
        async with self._lock:
            return bool(await self._write(sql, (reason, list_id, LIST_RUNNING)))

    async def request_member_cancel(self, run_id: str, reason: str) -> None:
        """Ask a list's supervisor to stop one member (pending: skipped, running: cancelled); first reason wins."""
        sql = "UPDATE task_list_members SET cancel_reason = COALESCE(cancel_reason, ?) WHERE run_id = ?"
        async with self._lock:
            await self._write(sql, (reason, run_id))

    async def finish_list(self, list_id: str, status: str, error: str | None = None) -> bool:
        """Record how the list ended, once (only a running list takes it)."""
        sql = "UPDATE task_lists SET status = ?, error = ?, finished_at = ? WHERE list_id = ? AND status = ?"
        async with self._lock:
            return bool(await self._write(sql, (status, error, utc_now(), list_id, LIST_RUNNING)))

    async def append_list_event(self, list_id: str, seq: int, kind: str, payload: str) -> None:
        sql = "INSERT INTO list_events (list_id, seq, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)"
        async with self._lock:
            await self._write(sql, (list_id, seq, kind, payload, utc_now()))

    async def append_list_finished_event(self, list_id: str) -> None:
        """The list's one ``finished`` event (whoever records the end first writes it)."""
        async with self._lock, self._transaction():
            rows = list(
                await self._db.execute_fetchall(
                    "SELECT MAX(seq), SUM(kind = 'finished') FROM list_events WHERE list_id = ?", (list_id,)
                )
            )
            if rows[0][1]:
                return
            sql = "INSERT INTO list_events (list_id, seq, kind, payload, created_at) VALUES (?, ?, 'finished', '{}', ?)"
            await self._write(sql, (list_id, (rows[0][0] or 0) + 1, utc_now()))

    async def list_events_after(self, list_id: str, after: int, *, limit: int = 500) -> list[tuple[int, str, str]]:
        sql = "SELECT seq, kind, payload FROM list_events WHERE list_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, (list_id, after, _check_limit(limit)))
        return [(int(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def trim_list_events(self, list_id: str, *, keep: int) -> None:
        await self._trim("list_events", "list_id", list_id, keep)

    # --- retention ----------------------------------------------------------------------------------------------

    async def prunable(self, *, before: str, statuses: Iterable[RunStatus] | None = None) -> list[RunRecord]:
        """Finished runs that ended (or, never started, were created) before ``before``, oldest first.

        Queued and running rows are never returned, whatever ``statuses`` says: their owner still writes them."""
        wanted = [s.value for s in (statuses or RunStatus) if s.value not in _UNFINISHED]
        if not wanted:
            return []
        sql = (
            f"SELECT * FROM runs WHERE status IN ({', '.join('?' * len(wanted))}) "
            "AND COALESCE(finished_at, created_at) < ? ORDER BY created_at, rowid"
        )
        return await self._records(sql, (*wanted, normalise_timestamp(before)))

    async def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete these runs' rows, attempts, approvals and durable events/requests in one transaction; unfinished
        rows are kept. Returns how many runs went. Their transcript files are the caller's
        (registry.transcripts.delete_transcripts). A durable list that has ended goes once none of its members is
        left."""
        ids = list(dict.fromkeys(run_ids))
        deleted = 0
        async with self._lock, self._transaction():
            for start in range(0, len(ids), _DELETE_CHUNK):
                chunk = ids[start : start + _DELETE_CHUNK]
                marks = ", ".join("?" * len(chunk))
                finished = f"id IN ({marks}) AND status NOT IN ({', '.join('?' * len(_UNFINISHED))})"
                for table in ("attempts", "approvals", "run_events", "run_requests"):  # they reference runs(id)
                    await self._write(
                        f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM runs WHERE {finished})",
                        (*chunk, *_UNFINISHED),
                    )
                # Members of ended durable lists go with their runs (an unfinished list keeps its members).
                await self._write(
                    f"DELETE FROM task_list_members WHERE run_id IN (SELECT id FROM runs WHERE {finished}) AND "
                    "list_id IN (SELECT list_id FROM task_lists WHERE status != ?)",
                    (*chunk, *_UNFINISHED, LIST_RUNNING),
                )
                deleted += await self._write(f"DELETE FROM runs WHERE {finished}", (*chunk, *_UNFINISHED))
            # An ended list with no member left goes too, with its events.
            empty = (
                "SELECT list_id FROM task_lists l WHERE status != ? AND NOT EXISTS "
                "(SELECT 1 FROM task_list_members m WHERE m.list_id = l.list_id)"
            )
            await self._write(f"DELETE FROM list_events WHERE list_id IN ({empty})", (LIST_RUNNING,))
            await self._write(f"DELETE FROM task_lists WHERE list_id IN ({empty})", (LIST_RUNNING,))
        return deleted

    # --- internals ----------------------------------------------------------------------------------------------

    async def _get(self, run_id: str) -> RunRecord:
        rows = list(await self._db.execute_fetchall("SELECT * FROM runs WHERE id = ?", (run_id,)))
        if not rows:
            raise RunNotFoundError(run_id)
        record = _record(rows[0])
        record.approvals = await self._approvals(run_id)
        return record

    # --- approvals (ask mode) ------------------------------------------------------------------------------------

    async def add_approval(self, approval: Approval, *, copy: bool = False) -> None:
        """Record a pending question; the run shows waiting_for_approval while any is pending. ``copy``: a question
        asked elsewhere (a Temporal worker), which several observers may copy at once: the first copy counts."""
        row = approval.model_dump(exclude={"decision", "decided_by", "message", "decided_at"})
        row["can_allow_for_run"] = int(approval.can_allow_for_run)
        row["requested_schema"] = None if approval.requested_schema is None else compact_json(approval.requested_schema)
        insert = "INSERT OR IGNORE" if copy else "INSERT"
        sql = f"{insert} INTO approvals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        async with self._lock:
            await self._write(sql, tuple(row.values()))
            await self._write(
                "UPDATE runs SET status = ? WHERE id = ? AND status = ?",
                (RunStatus.WAITING_FOR_APPROVAL.value, approval.run_id, RunStatus.RUNNING.value),
            )

    async def decide_approval(
        self, run_id: str, request_id: str, *, decision: str, decided_by: str, message: str | None = None
    ) -> bool:
        """Answer a pending question; False if it was already answered (the first answer wins, from any process).
        The run goes back to running once nothing is pending."""
        async with self._lock:
            touched = await self._write(
                "UPDATE approvals SET decision = ?, decided_by = ?, message = ?, decided_at = ? "
                "WHERE run_id = ? AND request_id = ? AND decision IS NULL",
                (decision, decided_by, message, utc_now(), run_id, request_id),
            )
            await self._write(
                "UPDATE runs SET status = ? WHERE id = ? AND status = ? AND NOT EXISTS "
                "(SELECT 1 FROM approvals WHERE run_id = ? AND decision IS NULL)",
                (RunStatus.RUNNING.value, run_id, RunStatus.WAITING_FOR_APPROVAL.value, run_id),
            )
        return bool(touched)

    async def settle_approval(
        self, run_id: str, request_id: str, *, decision: str, decided_by: str, message: str | None = None
    ) -> None:
        """Overwrite an answer with the one that took effect elsewhere (a Temporal worker's deadline beat a front
        end's late answer): the record says what the CLI got."""
        async with self._lock:
            await self._write(
                "UPDATE approvals SET decision = ?, decided_by = ?, message = ?, decided_at = ? "
                "WHERE run_id = ? AND request_id = ?",
                (decision, decided_by, message, utc_now(), run_id, request_id),
            )

    async def approval(self, run_id: str, request_id: str) -> Approval | None:
        async with self._lock:
            found = [a for a in await self._approvals(run_id) if a.request_id == request_id]
        return found[0] if found else None

    async def _approvals(self, run_id: str) -> list[Approval]:
        rows = await self._db.execute_fetchall(
            "SELECT * FROM approvals WHERE run_id = ? ORDER BY created_at, rowid", (run_id,)
        )
        return [_approval(row) for row in rows]

    async def _records(self, sql: str, params: Iterable[Any]) -> list[RunRecord]:
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, tuple(params))
        return [_record(row) for row in rows]

    async def _update(self, run_id: str, assignments: str, params: Iterable[Any]) -> None:
        async with self._lock:
            touched = await self._write(f"UPDATE runs SET {assignments} WHERE id = ?", (*params, run_id))
        if not touched:
            raise RunNotFoundError(run_id)

    async def _write(self, sql: str, params: Iterable[Any]) -> int:
        """Run one statement and return how many rows it changed."""
        async with self._db.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; roll back (shielded, so a cancel cannot skip it) on any exception."""
        try:
            # BEGIN sits inside the try: if we are cancelled while it is queued, it still runs, and must be undone.
            await self._db.execute("BEGIN IMMEDIATE")
            yield
            await self._db.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._db.rollback()
            raise


async def _configure(db: aiosqlite.Connection) -> None:
    await db.execute("PRAGMA busy_timeout=5000")
    await _use_wal(db)
    # WAL + NORMAL: a commit survives a crash of the process (what matters for reconcile); only a power loss
    # can drop the last commits. Saves an fsync per write, which is most of a run's bookkeeping time.
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute("PRAGMA foreign_keys=ON")


async def _use_wal(db: aiosqlite.Connection) -> None:
    """Switch the file to WAL (persistent: later opens find it set). Switching takes an exclusive lock and SQLite
    does not always wait on the busy handler for it, so several processes creating the registry at once (parallel
    runs, two servers) retry here for up to the busy timeout instead of failing "database is locked"."""
    for delay in _WAL_RETRY_S:
        await anyio.sleep(delay)
        try:
            await db.execute("PRAGMA journal_mode=WAL")  # an in-memory database answers "memory": fine too
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
    await db.execute("PRAGMA journal_mode=WAL")  # the last try: its error (if any) is the caller's


_WAL_RETRY_S = (0.0, *([0.05] * 10), *([0.25] * 18))  # about 5 s in all, like the busy timeout


def _prepare_file(file: Path) -> None:
    """Make the parent dir 0700 and create the db file 0600 before SQLite does (it copies that mode to -wal/-shm)."""
    ensure_private_dir(file.parent)
    os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))


def _restrict_files(file: Path) -> None:
    for candidate in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        if candidate.exists() and candidate.stat().st_uid == os.getuid():
            candidate.chmod(0o600)


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise InvalidRequestError(f"limit must be at least 1, got {limit}")
    return limit


def _record(row: sqlite3.Row) -> RunRecord:
    """Row → RunRecord: decode JSON columns, map ``id`` to ``run_id``, drop SQL-only columns."""
    data = dict(row)
    data["run_id"] = data.pop("id")
    for column in _SQL_ONLY_COLUMNS:
        data.pop(column, None)
    for column, empty in _JSON_COLUMNS.items():
        text = data[column]
        data[column] = empty if text is None else json.loads(text)
    data["files_truncated"] = bool(data["files_truncated"])
    data["uncommitted_changes_not_carried"] = bool(data["uncommitted_changes_not_carried"])
    return RunRecord.model_validate(data)


def _approval(row: sqlite3.Row) -> Approval:
    data = dict(row)
    data["can_allow_for_run"] = bool(data["can_allow_for_run"])
    schema = data.get("requested_schema")
    data["requested_schema"] = json.loads(schema) if schema else None
    return Approval.model_validate(data)


def _result_values(result: ExecutionResult) -> dict[str, dict[str, Any]]:
    """Split a result into columns to overwrite and columns to keep when the result has no value for them."""
    usage = result.usage
    overwrite = {
        "status": result.status.value,
        "result": result.result,
        "structured_output": None if result.structured_output is None else compact_json(result.structured_output),
        "summary": result.summary,
        "files_created": compact_json(result.files_created),
        "files_modified": compact_json(result.files_modified),
        "files_deleted": compact_json(result.files_deleted),
        "files_truncated": int(result.files_truncated),
        "session_id": result.session_id,
        "cost_usd": result.cost_usd,
        "usage": compact_json(usage),
        "input_tokens": _int_or_none(usage.get("input_tokens")),
        "output_tokens": _int_or_none(usage.get("output_tokens")),
        "num_turns": result.num_turns,
        "duration_s": result.duration_s,
        "exit_code": result.exit_code,
        "error_class": result.error_class,
        "error": result.error,
        "permission_denials": compact_json(result.permission_denials),
        "attempts": result.attempts,
        "finished_at": result.finished_at or utc_now(),
        "head_sha": result.head_sha,
        "commits": compact_json([c.model_dump() for c in result.commits]),
        "diffstat": result.diffstat,
        "worktree_path": result.worktree_path,
    }
    keep = {
        "task": result.task or None,
        "cwd": result.cwd or None,
        "list_id": result.list_id,
        "parent_run_id": result.parent_run_id,
        "transcript_path": result.transcript_path,
        "stderr_path": result.stderr_path,
        "timeout_s": result.timeout_s,
        "timeout_basis": result.timeout_basis,
        "started_at": result.started_at,
        "worker": result.worker,
        "branch": result.branch,
        "base_sha": result.base_sha,
    }
    return {"overwrite": overwrite, "keep": keep}


def _list_row(row: sqlite3.Row) -> TaskListRow:
    return TaskListRow(
        list_id=str(row["list_id"]),
        mode=str(row["mode"]),
        max_parallel=int(row["max_parallel"]),
        stop_on_error=bool(row["stop_on_error"]),
        status=str(row["status"]),
        cancel_reason=row["cancel_reason"],
        error=row["error"],
        owner_pid=row["owner_pid"],
        owner_start=row["owner_start"],
        owner_boot=row["owner_boot"],
        created_at=str(row["created_at"]),
        finished_at=row["finished_at"],
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
