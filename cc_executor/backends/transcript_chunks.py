"""A ``TranscriptChunk`` (raw stream-json lines) from a transcript file: the one way every backend pages a
transcript it can read (the local and durable backends their own files, a Temporal worker the file it wrote, a
Temporal front end the copy a result shipped back)."""

from __future__ import annotations

from pathlib import Path

from cc_executor.backends.protocol import TranscriptChunk, TranscriptQuery
from cc_executor.errors import TranscriptNotFoundError
from cc_executor.registry.transcripts import read_page, tail_offset

__all__ = ["read_chunk"]


def read_chunk(path: Path, run_id: str, query: TranscriptQuery, *, finished: bool) -> TranscriptChunk:
    """One page from ``query.cursor``, or from the start of the last ``query.tail`` lines."""
    if not path.is_file():
        raise TranscriptNotFoundError(f"run {run_id} has no transcript at {path}")
    cursor = query.cursor if query.tail is None else tail_offset(path, query.tail)
    limit = query.limit if query.tail is None else query.tail
    page = read_page(path, cursor=cursor, limit=limit, max_bytes=query.max_bytes)
    return TranscriptChunk(
        run_id=run_id,
        lines=page.lines,
        cursor=page.cursor,
        next_cursor=page.next_cursor,
        total_bytes=page.total_bytes,
        running=not finished,
        offsets=page.offsets,
    )
