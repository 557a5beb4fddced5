"""Retention: forget old runs (their rows, attempts and transcripts together) and measure the state dir.

``prune_runs`` is what `cc-executor prune --older-than 30d` calls, and what the MCP server applies at start when
CC_EXECUTOR_RETENTION_DAYS is set. Only finished runs are pruned: a queued or running row still has an owner that
writes it. Rows go first (one transaction), then the files; a file that cannot be removed is left for the next
prune rather than leaving a row that points at nothing.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cc_executor.errors import InvalidRequestError
from cc_executor.models import RunStatus
from cc_executor.timeparse import parse_age

__all__ = ["RETENTION_ENV", "PruneResult", "StateSize", "prune_runs", "retention_days", "state_size"]

RETENTION_ENV = "CC_EXECUTOR_RETENTION_DAYS"


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune removed (or, with ``dry_run``, would remove)."""

    cutoff: str  # runs that ended before this ISO-8601 UTC time
    run_ids: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)  # how many of each status
    bytes_freed: int = 0  # transcript bytes (with dry_run: that would be freed)
    dry_run: bool = False

    @property
    def count(self) -> int:
        return len(self.run_ids)


@dataclass(frozen=True, slots=True)
class StateSize:
    """The state dir's footprint: the database (with its WAL) and the transcripts."""

    path: Path
    database_bytes: int
    transcript_bytes: int
    transcript_files: int

    @property
    def total_bytes(self) -> int:
        return self.database_bytes + self.transcript_bytes


async def prune_runs(
    older_than: str | timedelta,
    *,
    statuses: Iterable[RunStatus | str] | None = None,
    dry_run: bool = False,
    db_path: Path | None = None,
    transcript_dir: Path | None = None,
) -> PruneResult:
    """Delete finished runs that ended more than ``older_than`` ago ('30d', '12h', or a timedelta), with their
    attempts and transcript files. ``statuses`` narrows it (default: every finished status); asking for queued or
    running is an InvalidRequestError. ``dry_run`` only reports. Paths default to the state dir."""
    from cc_executor.engine.recovery import open_store
    from cc_executor.registry.transcripts import delete_transcripts

    age = parse_age(older_than, field="older_than") if isinstance(older_than, str) else _checked(older_than)
    wanted = _statuses(statuses)
    cutoff = (datetime.now(UTC) - age).isoformat(timespec="microseconds")
    folder = transcript_dir if transcript_dir is not None else _transcript_dir(db_path)
    async with open_store(db_path) as store:
        records = await store.prunable(before=cutoff, statuses=wanted)
        if not dry_run:
            await store.delete_runs(r.run_id for r in records)
    freed = 0
    for record in records:
        recorded = (record.transcript_path, record.stderr_path)
        freed += (
            _sizes(record.run_id, recorded, folder) if dry_run else delete_transcripts(record.run_id, recorded, folder)
        )
    counts = Counter(record.status.value for record in records)
    return PruneResult(cutoff, [r.run_id for r in records], dict(counts), freed, dry_run)


def retention_days(environ: dict[str, str] | None = None) -> float | None:
    """CC_EXECUTOR_RETENTION_DAYS as a number of days (None when unset); bad values are an InvalidRequestError."""
    raw = (os.environ if environ is None else environ).get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        raise InvalidRequestError(f"{RETENTION_ENV}={raw!r} is not a number of days") from None
    if not math.isfinite(days) or not 0 < days <= 36500:
        raise InvalidRequestError(f"{RETENTION_ENV}={raw!r} must be a number of days between 0 and 36500")
    return days


def state_size(directory: Path | None = None) -> StateSize:
    """Bytes used by runs.db (+ -wal, -shm) and transcripts/ under ``directory`` (default: the state dir)."""
    from cc_executor.paths import DB_NAME, TRANSCRIPTS_NAME, state_dir

    base = directory if directory is not None else state_dir()
    database = sum(_size(base / f"{DB_NAME}{suffix}") for suffix in ("", "-wal", "-shm"))
    files = (
        [p for p in (base / TRANSCRIPTS_NAME).glob("*") if p.is_file()] if (base / TRANSCRIPTS_NAME).is_dir() else []
    )
    return StateSize(base, database, sum(_size(p) for p in files), len(files))


def format_bytes(count: int) -> str:
    """1536 → '1.5 KiB'."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _transcript_dir(db_path: Path | None) -> Path:
    """Transcripts sit beside runs.db (the state dir's layout)."""
    from cc_executor.paths import TRANSCRIPTS_NAME, state_dir

    return (db_path.parent if db_path is not None else state_dir()) / TRANSCRIPTS_NAME


def _checked(age: timedelta) -> timedelta:
    if age < timedelta(0):
        raise InvalidRequestError("older_than: must not be negative")
    return age


def _statuses(statuses: Iterable[RunStatus | str] | None) -> list[RunStatus]:
    if statuses is None:
        return [s for s in RunStatus if s.finished]
    chosen = []
    for value in statuses:
        try:
            status = RunStatus(value)
        except ValueError:
            names = ", ".join(s.value for s in RunStatus if s.finished)
            raise InvalidRequestError(f"status: {value!r} is not a run status (one of {names})") from None
        if not status.finished:
            raise InvalidRequestError(
                f"status: {status.value} runs are never pruned (their owner still writes them); cancel them first"
            )
        chosen.append(status)
    return chosen


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sizes(run_id: str, recorded: Iterable[str | None], folder: Path) -> int:
    names = {f"{run_id}.jsonl", f"{run_id}.stderr.log"}
    paths = {Path(p) for p in recorded if p} | {folder / name for name in names}
    return sum(_size(p) for p in paths if p.name in names)
