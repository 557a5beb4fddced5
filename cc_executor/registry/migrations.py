"""Schema migrations: an ordered list of named async functions (the llm pattern).

Applied names are recorded in ``_migrations(name, applied_at)``; order is list order and the key is the function
name, so never rename or reorder a shipped migration, only append new ones. Each step runs in its own transaction
(``BEGIN IMMEDIATE``), so a failed step leaves nothing half-applied. Each step must use ``execute`` only, never
``executescript``: that commits the open transaction first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiosqlite
import anyio

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration."""
    MIGRATIONS.append(fn)
    return fn


async def migrate(db: aiosqlite.Connection) -> None:
    """Apply every migration not yet recorded, each in its own transaction."""
    await db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    await db.commit()
    for fn in MIGRATIONS:
        await _apply(db, fn)


async def applied_migrations(db: aiosqlite.Connection) -> list[str]:
    rows = await db.execute_fetchall("SELECT name FROM _migrations ORDER BY rowid")
    return [str(row[0]) for row in rows]


async def _apply(db: aiosqlite.Connection, fn: Migration) -> None:
    # The check sits inside the write lock, so two processes migrating at once cannot both apply a step.
    try:
        await db.execute("BEGIN IMMEDIATE")  # inside the try: a cancelled BEGIN still runs and must be rolled back
        rows = await db.execute_fetchall("SELECT 1 FROM _migrations WHERE name = ?", (fn.__name__,))
        if not list(rows):
            await fn(db)
            applied_at = datetime.now(UTC).isoformat(timespec="microseconds")
            await db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (fn.__name__, applied_at))
        await db.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await db.rollback()
        raise


@migration
async def m001_runs(db: aiosqlite.Connection) -> None:
    await db.execute(
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            list_id TEXT,
            parent_run_id TEXT,
            task TEXT NOT NULL,
            cwd TEXT NOT NULL,
            argv TEXT,
            model TEXT,
            permission_mode TEXT,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            pid INTEGER,
            pgid INTEGER,
            owner_pid INTEGER,
            exit_code INTEGER,
            session_id TEXT,
            cost_usd REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            usage TEXT,
            num_turns INTEGER,
            duration_s REAL,
            error_class TEXT,
            error TEXT,
            result TEXT,
            structured_output TEXT,
            summary TEXT,
            files_created TEXT,
            files_modified TEXT,
            files_deleted TEXT,
            files_truncated INTEGER,
            permission_denials TEXT,
            transcript_path TEXT,
            stderr_path TEXT,
            timeout_s REAL,
            idle_timeout_s REAL,
            timeout_basis TEXT,
            attempts INTEGER DEFAULT 0,
            last_progress TEXT
        )
        """
    )
    for column in ("status", "created_at", "list_id", "cwd"):
        await db.execute(f"CREATE INDEX idx_runs_{column} ON runs ({column})")
    await db.execute(
        """
        CREATE TABLE attempts (
            run_id TEXT REFERENCES runs(id),
            n INTEGER,
            started_at TEXT,
            finished_at TEXT,
            status TEXT,
            exit_code INTEGER,
            error_class TEXT,
            error TEXT,
            session_id TEXT,
            cost_usd REAL,
            PRIMARY KEY (run_id, n)
        )
        """
    )


@migration
async def m002_runs_context(db: aiosqlite.Connection) -> None:
    """What was sent before the task (a task list's summary of earlier tasks), kept apart from the task."""
    await db.execute("ALTER TABLE runs ADD COLUMN context TEXT")


@migration
async def m003_profile(db: aiosqlite.Connection) -> None:
    """The nested profile a run used (setting sources, MCP server names, strict), as JSON."""
    await db.execute("ALTER TABLE runs ADD COLUMN profile TEXT")


@migration
async def m004_approvals(db: aiosqlite.Connection) -> None:
    """Questions the nested CLI asked in ask mode (permission prompts, relayed elicitations) and who answered."""
    await db.execute(
        """
        CREATE TABLE approvals (
            run_id TEXT NOT NULL REFERENCES runs(id),
            request_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            tool TEXT,
            summary TEXT NOT NULL DEFAULT '',
            reason TEXT,
            can_allow_for_run INTEGER NOT NULL DEFAULT 0,
            requested_schema TEXT,
            created_at TEXT NOT NULL,
            deadline_at TEXT NOT NULL,
            decision TEXT,
            decided_by TEXT,
            message TEXT,
            decided_at TEXT,
            PRIMARY KEY (run_id, request_id)
        )
        """
    )


@migration
async def m005_owner_identity(db: aiosqlite.Connection) -> None:
    """The owner as pid + process start time + boot id, so a reused pid does not pass for a live owner."""
    await db.execute("ALTER TABLE runs ADD COLUMN owner_start INTEGER")
    await db.execute("ALTER TABLE runs ADD COLUMN owner_boot TEXT")


@migration
async def m006_runs_backend(db: aiosqlite.Connection) -> None:
    """Which backend owns a run (NULL: this machine's processes) and which worker ran it (remote backends).

    A row owned by a remote backend (``temporal``) is not this machine's to reconcile: its owner is the Temporal
    server, so recovery never marks it lost because a front end's pid died."""
    await db.execute("ALTER TABLE runs ADD COLUMN backend TEXT")
    await db.execute("ALTER TABLE runs ADD COLUMN worker TEXT")


@migration
async def m007_worktree(db: aiosqlite.Connection) -> None:
    """Worktree isolation: where an isolated run's work is (branch, base..head, commits) and its worktree dir."""
    for column in (
        "isolation TEXT NOT NULL DEFAULT 'none'",
        "branch TEXT",
        "base_branch TEXT",
        "base_sha TEXT",
        "head_sha TEXT",
        "commits TEXT",
        "diffstat TEXT",
        "worktree_path TEXT",
        "uncommitted_changes_not_carried INTEGER NOT NULL DEFAULT 0",
    ):
        await db.execute(f"ALTER TABLE runs ADD COLUMN {column}")


@migration
async def m008_run_events(db: aiosqlite.Connection) -> None:
    """Durable runs: the request a supervisor loads (``run_requests``, written once by the front end that submitted
    it; ``config.env`` is never stored) and numbered progress events any front end can follow (``run_events``,
    bounded per run: the latest progress events plus the finished one; the transcript stays the full record)."""
    await db.execute(
        """
        CREATE TABLE run_requests (
            run_id TEXT PRIMARY KEY REFERENCES runs(id),
            request TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    await db.execute(
        """
        CREATE TABLE run_events (
            run_id TEXT NOT NULL REFERENCES runs(id),
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )
        """
    )


@migration
async def m009_task_lists(db: aiosqlite.Connection) -> None:
    """Durable task lists: the list as its supervisor loads it (mode, options, the members' requests without secrets,
    in order), its owner (the list supervisor: pid + start time + boot id, as runs have), a cancel request any front
    end may write (``cancel_reason``, per list and per member), its status once ended, and numbered list events
    (``list_events``: every member's progress, prefixed with its place, then ``finished``; bounded like run_events).
    A member that has not started has no row in ``runs``: ``task_list_members`` maps its run id to its list."""
    await db.execute(
        """
        CREATE TABLE task_lists (
            list_id TEXT PRIMARY KEY,
            mode TEXT NOT NULL,
            max_parallel INTEGER NOT NULL,
            stop_on_error INTEGER NOT NULL,
            status TEXT NOT NULL,
            cancel_reason TEXT,
            error TEXT,
            owner_pid INTEGER,
            owner_start INTEGER,
            owner_boot TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        )
        """
    )
    await db.execute(
        """
        CREATE TABLE task_list_members (
            run_id TEXT PRIMARY KEY,
            list_id TEXT NOT NULL REFERENCES task_lists(list_id),
            idx INTEGER NOT NULL,
            request TEXT NOT NULL,
            cancel_reason TEXT
        )
        """
    )
    await db.execute("CREATE INDEX idx_task_list_members_list ON task_list_members (list_id, idx)")
    await db.execute(
        """
        CREATE TABLE list_events (
            list_id TEXT NOT NULL REFERENCES task_lists(list_id),
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (list_id, seq)
        )
        """
    )
