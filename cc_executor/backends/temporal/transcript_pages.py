"""A ``TranscriptChunk`` from a transcript file: used by the worker that wrote it and by the front end for the
copy the result shipped back."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from cc_executor.backends.protocol import TranscriptChunk, TranscriptQuery
from cc_executor.errors import TranscriptNotFoundError
from cc_executor.registry.transcript_text import render_line
from cc_executor.registry.transcripts import iter_lines, read_page


def read_chunk(path: Path, run_id: str, query: TranscriptQuery, *, finished: bool) -> TranscriptChunk:
    """One page from ``query.cursor`` (or the last ``query.tail`` lines); text format renders each raw line."""
    if not path.is_file():
        raise TranscriptNotFoundError(f"run {run_id} has no transcript at {path}")
    if query.tail is not None:
        raw = list(deque(iter_lines(path), maxlen=query.tail))
        size = path.stat().st_size
        lines = _render(raw) if query.format == "text" else raw
        return TranscriptChunk(
            run_id=run_id, lines=lines[-query.tail :], cursor=0, next_cursor=size, size=size, complete=finished
        )
    page = read_page(path, cursor=query.cursor, limit=query.limit, max_bytes=query.max_bytes)
    next_cursor = page.total_bytes if page.next_cursor is None else page.next_cursor
    lines = _render(page.lines) if query.format == "text" else page.lines
    return TranscriptChunk(
        run_id=run_id,
        lines=lines,
        cursor=page.cursor,
        next_cursor=next_cursor,
        size=page.total_bytes,
        complete=finished and next_cursor >= page.total_bytes,
    )


def _render(raw: list[str]) -> list[str]:
    return [text for line in raw for text in render_line(line)]
