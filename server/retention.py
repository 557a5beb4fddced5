"""CC_EXECUTOR_RETENTION_DAYS: at start, the server forgets finished runs older than that (rows and transcripts).

Runs in the lifespan's task group after the initialize answer, on its own connection (SQLite WAL lets it work
beside the backend's); a failure is logged and never stops the server.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from .settings import ServerSettings

log = logging.getLogger(__name__)


async def prune_at_start(settings: ServerSettings) -> None:
    from cc_executor.api import prune_runs
    from cc_executor.retention import format_bytes

    if settings.retention_days is None:
        return
    home = settings.home
    try:
        result = await prune_runs(
            timedelta(days=settings.retention_days),
            db_path=home / "runs.db" if home else None,
            transcript_dir=home / "transcripts" if home else None,
        )
    except Exception:
        log.exception("retention: could not prune runs older than %g days", settings.retention_days)
        return
    log.info(
        "retention: deleted %d finished run(s) older than %g days, %s of transcripts",
        result.count,
        settings.retention_days,
        format_bytes(result.bytes_freed),
    )
