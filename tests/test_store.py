"""store + migrations: schema, permissions, round trips, filters and concurrent writers on a real file db."""

from __future__ import annotations

import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import anyio
import pytest

from cc_executor.errors import InvalidRequestError, RunNotFoundError, UnsafeDirectoryError
from cc_executor.models import CCExecutorConfig, ExecutionResult, RunRequest, RunStatus
from cc_executor.registry.migrations import MIGRATIONS, applied_migrations, migrate
from cc_executor.registry.store import RunStore, normalise_timestamp, utc_now

pytestmark = pytest.mark.anyio

RUNS_COLUMNS = {
    "id", "list_id", "parent_run_id", "task", "cwd", "argv", "model", "permission_mode", "status", "created_at",
    "started_at", "finished_at", "pid", "pgid", "owner_pid", "exit_code", "session_id", "cost_usd", "input_tokens",
    "output_tokens", "usage", "num_turns", "duration_s", "error_class", "error", "result", "structured_output",
    "summary", "files_created", "files_modified", "files_deleted", "files_truncated", "permission_denials",
    "transcript_path", "stderr_path", "timeout_s", "idle_timeout_s", "timeout_basis", "attempts", "last_progress",
    "context", "profile", "owner_start", "owner_boot", "backend", "worker",
    # m007_worktree
    "isolation", "branch", "base_branch", "base_sha", "head_sha", "commits", "diffstat", "worktree_path",
    "uncommitted_changes_not_carried",
}  # fmt: skip
APPROVALS_COLUMNS = {
    "run_id", "request_id", "kind", "tool", "summary", "reason", "can_allow_for_run", "requested_schema",
    "created_at", "deadline_at",
    "decision", "decided_by", "message", "decided_at",
}  # fmt: skip
ATTEMPTS_COLUMNS = {
    "run_id", "n", "started_at", "finished_at", "status", "exit_code", "error_class", "error", "session_id", "cost_usd",
}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite is asyncio-only


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "db" / "runs.db"


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A resolved working directory: the store keeps RunRequest's resolved cwd."""
    return tmp_path.resolve()


@pytest.fixture
def there(here: Path) -> Path:
    (here / "other").mkdir()
    return here / "other"


@pytest.fixture
async def store(db_file: Path) -> AsyncIterator[RunStore]:
    async with RunStore.open(db_file) as opened:
        yield opened


def _request(tmp_path: Path, task: str = "do the thing", **kwargs: object) -> RunRequest:
    return RunRequest.model_validate({"task": task, "cwd": tmp_path, **kwargs})


async def _columns(db: aiosqlite.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in await db.execute_fetchall(f"PRAGMA table_info({table})")}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _set_mode(path: Path, mode: int) -> None:
    path.chmod(mode)


# --- migrations and the file ------------------------------------------------------------------------------------


async def test_migrate_creates_schema_and_is_idempotent(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "m.db") as db:
        await migrate(db)
        assert await _columns(db, "runs") == RUNS_COLUMNS
        assert await _columns(db, "attempts") == ATTEMPTS_COLUMNS
        assert await _columns(db, "approvals") == APPROVALS_COLUMNS
        indexes = {str(row[1]) for row in await db.execute_fetchall("PRAGMA index_list(runs)")}
        assert {"idx_runs_status", "idx_runs_created_at", "idx_runs_list_id", "idx_runs_cwd"} <= indexes
        applied = await applied_migrations(db)
        assert applied == [fn.__name__ for fn in MIGRATIONS]
        await migrate(db)  # a second run must not try to re-create anything
        assert await applied_migrations(db) == applied
        assert not db.in_transaction


async def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def m999_broken(db: aiosqlite.Connection) -> None:
        await db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    monkeypatch.setattr("cc_executor.registry.migrations.MIGRATIONS", [*MIGRATIONS, m999_broken])
    async with aiosqlite.connect(tmp_path / "m.db") as db:
        with pytest.raises(RuntimeError):
            await migrate(db)
        assert "m999_broken" not in await applied_migrations(db)
        assert await _columns(db, "half_done") == set()  # the table creation was rolled back
        assert await _columns(db, "runs") == RUNS_COLUMNS  # earlier steps stay applied


async def test_open_sets_perms_and_wal(db_file: Path) -> None:
    async with RunStore.open(db_file):
        assert _mode(db_file.parent) == 0o700
        for suffix in ("", "-wal", "-shm"):
            candidate = db_file.with_name(db_file.name + suffix)
            if candidate.exists():
                assert _mode(candidate) == 0o600, candidate
    async with aiosqlite.connect(db_file) as db:
        rows = list(await db.execute_fetchall("PRAGMA journal_mode"))
        assert rows[0][0] == "wal"


async def test_open_tightens_loose_file_perms_but_never_the_dir(db_file: Path) -> None:
    """Our files are tightened to 0600; the directory may be the user's own choice: its mode is left alone."""
    async with RunStore.open(db_file):
        pass
    _set_mode(db_file, 0o644)
    _set_mode(db_file.parent, 0o755)
    async with RunStore.open(db_file):
        assert _mode(db_file) == 0o600
        assert _mode(db_file.parent) == 0o755


async def test_a_db_in_a_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(UnsafeDirectoryError, match="others can write"):
        await RunStore.connect(shared / "runs.db")
    assert list(shared.iterdir()) == [] and _mode(shared) == 0o1777


async def test_reopen_is_a_noop_migration(db_file: Path, tmp_path: Path) -> None:
    async with RunStore.open(db_file) as store:
        await store.create_run(_request(tmp_path), argv=["claude"], owner_pid=1)
    async with RunStore.open(db_file) as store:
        assert len(await store.list_runs()) == 1


async def test_connect_and_close(db_file: Path) -> None:
    store = await RunStore.connect(db_file)
    try:
        assert await store.list_runs() == []
    finally:
        await store.close()


async def test_memory_store(tmp_path: Path) -> None:
    async with RunStore.open(":memory:") as store:
        record = await store.create_run(_request(tmp_path), argv=[], owner_pid=1)
        assert (await store.get(record.run_id)).task == "do the thing"


# --- round trips ------------------------------------------------------------------------------------------------


async def test_create_start_finish_get(store: RunStore, tmp_path: Path, here: Path) -> None:
    config = CCExecutorConfig(model="sonnet", permission_mode="plan", timeout=60, idle_timeout=30)
    request = _request(tmp_path, config=config, list_id="L1", timeout_basis="default")
    record = await store.create_run(
        request, argv=["claude", "-p"], owner_pid=42, transcript_path="/t/x.jsonl", stderr_path="/t/x.stderr.log"
    )
    assert record.run_id == request.run_id
    assert record.status is RunStatus.QUEUED
    assert record.cwd == str(here)
    assert record.argv == ["claude", "-p"]
    assert (record.model, record.permission_mode) == ("sonnet", "plan")
    assert (record.timeout_s, record.idle_timeout_s, record.timeout_basis) == (60.0, 30.0, "default")
    assert record.list_id == "L1"
    assert record.owner_pid == 42
    assert record.created_at is not None and record.created_at.endswith("+00:00")
    assert record.usage == {} and record.files_created == [] and record.structured_output is None

    await store.mark_started(request.run_id, pid=100, pgid=100)
    await store.set_progress(request.run_id, "turn 1: Bash")
    started = await store.get(request.run_id)
    assert started.status is RunStatus.RUNNING
    assert (started.pid, started.pgid, started.last_progress) == (100, 100, "turn 1: Bash")
    assert started.started_at is not None

    result = ExecutionResult(
        run_id=request.run_id,
        status=RunStatus.SUCCESS,
        result="done",
        structured_output={"result": "ok", "n": [1, 2]},
        summary="did it",
        files_created=["a.py"],
        files_modified=["b.py"],
        files_deleted=["c.py"],
        files_truncated=True,
        session_id="sess",
        cost_usd=0.25,
        usage={"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 5},
        num_turns=3,
        duration_s=12.5,
        exit_code=0,
        permission_denials=[{"tool_name": "Bash"}],
        attempts=2,
        finished_at="2030-01-01T00:00:00.000000+00:00",
    )
    await store.finish_run(result)
    done = await store.get(request.run_id)
    assert done.to_result().model_dump(exclude={"task", "cwd", "transcript_path", "stderr_path", "list_id",
                                                 "timeout_s", "timeout_basis", "started_at"}) == result.model_dump(
        exclude={"task", "cwd", "transcript_path", "stderr_path", "list_id", "timeout_s", "timeout_basis",
                 "started_at"})  # fmt: skip
    # What the result left empty keeps what create_run/mark_started stored.
    assert done.task == "do the thing"
    assert done.cwd == record.cwd
    assert done.transcript_path == "/t/x.jsonl"
    assert done.list_id == "L1"
    assert done.started_at == started.started_at
    assert done.argv == ["claude", "-p"]


async def test_token_columns_extracted(store: RunStore, db_file: Path, tmp_path: Path) -> None:
    record = await store.create_run(_request(tmp_path), argv=[], owner_pid=1)
    usage = {"input_tokens": 7, "output_tokens": 9}
    await store.finish_run(ExecutionResult(run_id=record.run_id, status=RunStatus.SUCCESS, usage=usage))
    async with aiosqlite.connect(db_file) as db:
        rows = list(await db.execute_fetchall("SELECT input_tokens, output_tokens, finished_at FROM runs"))
    assert tuple(rows[0][:2]) == (7, 9)
    assert rows[0][2] is not None  # stamped with now when the result has none


async def test_mark_status(store: RunStore, tmp_path: Path) -> None:
    record = await store.create_run(_request(tmp_path), argv=[], owner_pid=1)
    await store.mark_status(record.run_id, RunStatus.RUNNING)
    assert (await store.get(record.run_id)).finished_at is None
    await store.mark_status(record.run_id, RunStatus.LOST, error_class="CLICrashError", error="owner died")
    lost = await store.get(record.run_id)
    assert lost.status is RunStatus.LOST
    assert (lost.error_class, lost.error) == ("CLICrashError", "owner died")
    assert lost.finished_at is not None


async def test_unknown_run(store: RunStore) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(RunNotFoundError):
        await store.get(missing)
    with pytest.raises(RunNotFoundError):
        await store.mark_started(missing, pid=1, pgid=1)
    with pytest.raises(RunNotFoundError):
        await store.set_progress(missing, "x")
    with pytest.raises(RunNotFoundError):
        await store.mark_status(missing, RunStatus.CANCELLED)
    with pytest.raises(RunNotFoundError):
        await store.finish_run(ExecutionResult(run_id=missing, status=RunStatus.SUCCESS))
    with pytest.raises(RunNotFoundError):
        await store.record_attempt(missing, 1, status=RunStatus.FAILED)
    assert await store.list_attempts(missing) == []


async def test_duplicate_run_id(store: RunStore, tmp_path: Path) -> None:
    request = _request(tmp_path)
    await store.create_run(request, argv=[], owner_pid=1)
    with pytest.raises(InvalidRequestError):
        await store.create_run(request, argv=[], owner_pid=1)


# --- listing ----------------------------------------------------------------------------------------------------


async def test_list_filters_and_order(store: RunStore, here: Path, there: Path) -> None:
    ids = []
    for n in range(6):
        request = _request(there if n % 2 else here, task=f"task {n}", list_id="L" if n < 3 else None)
        ids.append((await store.create_run(request, argv=[], owner_pid=1)).run_id)
    await store.mark_status(ids[0], RunStatus.SUCCESS)

    assert [r.run_id for r in await store.list_runs()] == ids[::-1]
    assert [r.run_id for r in await store.list_runs(limit=2)] == ids[:-3:-1]
    assert [r.run_id for r in await store.list_runs(status=RunStatus.SUCCESS)] == [ids[0]]
    assert [r.run_id for r in await store.list_runs(cwd=str(there))] == [ids[5], ids[3], ids[1]]
    assert [r.run_id for r in await store.list_runs(list_id="L")] == [ids[2], ids[1], ids[0]]
    assert [r.run_id for r in await store.list_runs(list_id="L", cwd=str(here))] == [ids[2], ids[0]]

    records = await store.list_runs()
    pivot = records[2].created_at
    assert pivot is not None
    assert [r.run_id for r in await store.list_runs(since=pivot)] == [r.run_id for r in records[:3]]
    assert await store.list_runs(since="2999-01-01") == []
    assert len(await store.list_runs(since="2000-01-01T00:00:00Z")) == 6
    with pytest.raises(InvalidRequestError):
        await store.list_runs(since="yesterday")
    with pytest.raises(InvalidRequestError):
        await store.list_runs(limit=0)


async def test_unfinished_runs(store: RunStore, tmp_path: Path) -> None:
    queued, running, done = [(await store.create_run(_request(tmp_path), argv=[], owner_pid=1)).run_id for _ in "abc"]
    await store.mark_started(running, pid=5, pgid=5)
    await store.mark_status(done, RunStatus.FAILED)
    assert [r.run_id for r in await store.unfinished_runs()] == [queued, running]


async def test_attempts(store: RunStore, tmp_path: Path) -> None:
    run_id = (await store.create_run(_request(tmp_path), argv=[], owner_pid=1)).run_id
    await store.record_attempt(
        run_id, 1, started_at=utc_now(), finished_at=utc_now(), status=RunStatus.FAILED, exit_code=1,
        error_class="OverloadedError", error="529", session_id="s1", cost_usd=0.01,
    )  # fmt: skip
    await store.record_attempt(run_id, 2, status="success", exit_code=0, session_id="s2")
    attempts = await store.list_attempts(run_id)
    assert [(a["n"], a["status"], a["error_class"], a["session_id"]) for a in attempts] == [
        (1, "failed", "OverloadedError", "s1"),
        (2, "success", None, "s2"),
    ]
    assert set(attempts[0]) == ATTEMPTS_COLUMNS
    assert (await store.get(run_id)).attempts == 2
    await store.record_attempt(run_id, 1, status="failed", error="rewritten")  # upsert, count stays at 2
    assert (await store.list_attempts(run_id))[0]["error"] == "rewritten"
    assert (await store.get(run_id)).attempts == 2


async def test_durations(store: RunStore, here: Path, there: Path) -> None:
    plan: list[tuple[Path, RunStatus, float | None]] = [
        (here, RunStatus.SUCCESS, 10.0),
        (there, RunStatus.SUCCESS, 20.0),
        (here, RunStatus.FAILED, 30.0),
    ]
    plan += [(here, RunStatus.SUCCESS, None), (here, RunStatus.SUCCESS, 40.0)]
    for n, (workdir, status, duration) in enumerate(plan):
        run_id = (await store.create_run(_request(workdir, task=f"t{n}"), argv=[], owner_pid=1)).run_id
        await store.finish_run(ExecutionResult(run_id=run_id, status=status, duration_s=duration))
    cwd = str(here)
    assert await store.durations() == [("t4", cwd, 40.0), ("t1", str(there), 20.0), ("t0", cwd, 10.0)]
    assert await store.durations(cwd=cwd, limit=1) == [("t4", cwd, 40.0)]


# --- concurrency ------------------------------------------------------------------------------------------------


async def test_concurrent_writers(store: RunStore, tmp_path: Path) -> None:
    """20 tasks create, start, record attempts and finish at once: the shared connection must not trip."""

    async def one(n: int) -> None:
        run_id = (await store.create_run(_request(tmp_path, task=f"t{n}"), argv=[], owner_pid=1)).run_id
        await store.mark_started(run_id, pid=n + 1, pgid=n + 1)
        for attempt in (1, 2):
            await store.set_progress(run_id, f"attempt {attempt}")
            await store.record_attempt(run_id, attempt, status="failed" if attempt == 1 else "success")
        result = ExecutionResult(run_id=run_id, status=RunStatus.SUCCESS, duration_s=float(n), attempts=2)
        await store.finish_run(result)

    async with anyio.create_task_group() as group:
        for n in range(20):
            group.start_soon(one, n)
    records = await store.list_runs(limit=100)
    assert len(records) == 20
    assert all(r.status is RunStatus.SUCCESS and r.attempts == 2 for r in records)
    assert await store.unfinished_runs() == []


async def test_two_connections_share_the_file(db_file: Path, tmp_path: Path) -> None:
    """Two stores (as two processes would) write the same WAL file concurrently without 'database is locked'."""
    async with RunStore.open(db_file) as first, RunStore.open(db_file) as second:

        async def write(store: RunStore, n: int) -> None:
            run_id = (await store.create_run(_request(tmp_path), argv=[], owner_pid=n)).run_id
            await store.record_attempt(run_id, 1, status="success")

        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(write, first if n % 2 else second, n)
        assert len(await first.list_runs()) == 10


def test_normalise_timestamp() -> None:
    assert normalise_timestamp("2030-01-01T01:00:00+01:00") == "2030-01-01T00:00:00.000000+00:00"
    assert normalise_timestamp("2030-01-01") == "2030-01-01T00:00:00.000000+00:00"


async def test_cancelled_writer_leaves_no_open_transaction(store: RunStore, tmp_path: Path) -> None:
    """Cancelling writers mid-transaction must roll back cleanly: no half-written attempt, no stuck BEGIN."""
    run_id = (await store.create_run(_request(tmp_path), argv=[], owner_pid=1)).run_id
    base = 0

    async def hammer(offset: int) -> None:
        for n in range(base + offset, base + 100_000, 5):
            await store.record_attempt(run_id, n, status="failed")

    for delay in (0.005, 0.01, 0.02, 0.03, 0.05, 0.08):  # cancels land at different points of the transaction
        with anyio.move_on_after(delay):
            async with anyio.create_task_group() as group:
                for offset in range(1, 6):
                    group.start_soon(hammer, offset)
        attempts = await store.list_attempts(run_id)
        assert (await store.get(run_id)).attempts == max((a["n"] for a in attempts), default=base)
        base += 100_000
        await store.record_attempt(run_id, base, status="success")  # fails if a BEGIN was left open
        assert (await store.get(run_id)).attempts == base


async def test_m002_upgrades_a_database_made_by_m001(tmp_path: Path) -> None:
    """A registry created before the `context` column existed gains it, rows intact."""
    from cc_executor.registry.migrations import m001_runs

    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as db:
        await db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        await m001_runs(db)
        await db.execute("INSERT INTO _migrations VALUES ('m001_runs', '2026-01-01T00:00:00+00:00')")
        await db.execute(
            "INSERT INTO runs (id, task, cwd, status, created_at) VALUES ('11111111-1111-4111-8111-111111111111',"
            " 'old task', '/tmp', 'success', '2026-01-01T00:00:00+00:00')"
        )
        await db.commit()
    async with RunStore.open(path) as store:
        record = await store.get("11111111-1111-4111-8111-111111111111")
    assert record.task == "old task" and record.context is None


async def test_rows_a_remote_backend_owns_are_never_reconciled_by_pid(store: RunStore, here: Path) -> None:
    from cc_executor.engine.recovery import reconcile

    dead = 2**22 + 12345  # above the largest pid Linux allows: no such process
    local = RunRequest(task="mine", cwd=here)
    remote = RunRequest(task="a worker's", cwd=here)
    await store.create_run(local, argv=[], owner_pid=dead)
    await store.create_run(remote, argv=[], owner_pid=dead, backend="temporal")

    assert await reconcile(store) == [local.run_id]

    assert (await store.get(local.run_id)).status is RunStatus.LOST
    kept = await store.get(remote.run_id)
    assert kept.status is RunStatus.QUEUED and kept.backend == "temporal"
    assert [r.run_id for r in await store.unfinished_runs(backend="temporal")] == [remote.run_id]


async def test_many_processes_creating_the_registry_at_once_all_open_it(tmp_path: Path) -> None:
    """Parallel runs (or two servers) opening a registry that does not exist yet: switching it to WAL takes an
    exclusive lock, which SQLite does not always wait for; none of them may fail with "database is locked"."""
    for trial in range(10):
        opened: list[RunStore] = []

        async def open_one(path: Path, into: list[RunStore]) -> None:
            into.append(await RunStore.connect(path))

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(open_one, tmp_path / f"runs-{trial}.db", opened)
        for store in opened:
            await store.close()
        assert len(opened) == 8
