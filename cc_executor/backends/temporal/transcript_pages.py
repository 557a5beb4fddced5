"""A ``TranscriptChunk`` (raw stream-json lines) from a transcript file: used by the worker that wrote it and by
the front end for the copy the result shipped back."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from cc_executor.backends.protocol import TranscriptChunk, TranscriptQuery
from cc_executor.errors import TranscriptNotFoundError
from cc_executor.registry.transcripts import read_page

_TAIL_SCAN_BYTES = 64 * 1024 * 1024


def read_chunk(path: Path, run_id: str, query: TranscriptQuery, *, finished: bool) -> TranscriptChunk:
    """One page from ``query.cursor``, or from the start of the last ``query.tail`` lines."""
    if not path.is_file():
        raise TranscriptNotFoundError(f"run {run_id} has no transcript at {path}")
    cursor = query.cursor if query.tail is None else _tail_offset(path, query.tail)
    limit = query.limit if query.tail is None else query.tail
    page = read_page(path, cursor=cursor, limit=limit, max_bytes=query.max_bytes)
    return TranscriptChunk(
        run_id=run_id,
        lines=page.lines,
        cursor=page.cursor,
        next_cursor=page.next_cursor,
        total_bytes=page.total_bytes,
        running=not finished,
    )


def _tail_offset(path: Path, count: int) -> int:
    """Byte offset of the ``count``-th complete line from the end."""
    starts: deque[int] = deque(maxlen=count)
    position = 0
    while True:
        page = read_page(path, cursor=position, limit=1, max_bytes=_TAIL_SCAN_BYTES)
        if not page.lines or page.next_cursor is None:
            if page.lines:
                starts.append(position)
            return starts[0] if starts else 0
        starts.append(position)
        position = page.next_cursor
