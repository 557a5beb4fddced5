"""Raw transcript files: append the CLI's stdout lines verbatim, then page through them by byte cursor.

A cursor is a byte offset at the start of a line, so it stays valid while the file grows. Only newline-terminated
lines are ever returned: a tail without its newline is a line still being written (or spilled in pieces), and a
reader tailing a live run gets it whole on a later call. Lines longer than the page budget come back truncated with
a marker, and are read in chunks so a 100 MB line never sits in memory.
"""

from __future__ import annotations

import codecs
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from cc_executor.errors import InvalidRequestError, TranscriptNotFoundError
from cc_executor.paths import ensure_private_dir

DEFAULT_PAGE_LINES = 100
DEFAULT_PAGE_BYTES = 256 * 1024
DEFAULT_MAX_LINE_BYTES = 32 * 1024 * 1024  # matches CCExecutorConfig.max_line_bytes: longer lines were spilled raw
_SKIP_CHUNK = 1024 * 1024


class TranscriptWriter:
    """Appends to <run_id>.jsonl (stdout lines) and <run_id>.stderr.log; both 0600. Synchronous: page-cache writes."""

    def __init__(self, stdout_path: Path, stderr_path: Path, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self._out = stdout
        self._err = stderr
        self._in_piece = False

    @classmethod
    def open(cls, stdout_path: Path, stderr_path: Path) -> TranscriptWriter:
        """Open both files for appending, creating them (and a missing parent dir, 0700) with mode 0600."""
        out = _open_private(stdout_path)
        try:
            err = _open_private(stderr_path)
        except BaseException:
            out.close()
            raise
        return cls(stdout_path, stderr_path, out, err)

    def write_line(self, line: bytes) -> None:
        """Append one complete line; the newline is added here, so ``line`` must not contain one."""
        if self._in_piece:
            raise RuntimeError("write_line while a spilled line is open; call end_piece() first")
        if b"\n" in line:
            raise ValueError("a transcript line must not contain a newline")
        self._out.write(line + b"\n")
        self._out.flush()

    def write_piece(self, data: bytes | bytearray) -> None:
        """Append part of a line too big to hold in memory; readers treat it as unfinished until ``end_piece``."""
        if b"\n" in data:
            raise ValueError("a line piece must not contain a newline")
        self._in_piece = True
        self._out.write(data)
        self._out.flush()

    def end_piece(self) -> None:
        """Terminate the line built by ``write_piece``."""
        self._in_piece = False
        self._out.write(b"\n")
        self._out.flush()

    def write_stderr(self, data: bytes) -> None:
        self._err.write(data)
        self._err.flush()

    def close(self) -> None:
        """Close both files (idempotent); a spilled line left open is terminated so the file ends on a line."""
        if self._out.closed:
            return
        try:
            if self._in_piece:
                self.end_piece()
        finally:
            self._out.close()
            self._err.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TranscriptPage:
    """A slice of a transcript: ``next_cursor`` feeds the next call; None means the page reached the end of file."""

    lines: list[str]
    cursor: int
    next_cursor: int | None
    total_bytes: int
    offsets: list[int]  # where each line starts: a cursor that resumes at that line


def read_page(
    path: Path, *, cursor: int = 0, limit: int = DEFAULT_PAGE_LINES, max_bytes: int = DEFAULT_PAGE_BYTES
) -> TranscriptPage:
    """Up to ``limit`` complete lines from ``cursor``, within ``max_bytes`` (one oversized line comes back truncated).

    ``next_cursor`` equals ``cursor`` with no lines when the only thing left is a line still being written.
    """
    if limit < 1 or max_bytes < 1:
        raise InvalidRequestError(f"limit and max_bytes must be at least 1, got {limit} and {max_bytes}")
    with _open_for_reading(path) as file:
        _check_cursor(file, cursor)
        lines, offsets, position = _read_lines(file, limit, max_bytes)
        total = os.fstat(file.fileno()).st_size
    next_cursor = None if position >= total else position
    return TranscriptPage(lines=lines, cursor=cursor, next_cursor=next_cursor, total_bytes=total, offsets=offsets)


def tail_offset(path: Path, count: int) -> int:
    """Byte offset where the ``count``-th complete line from the end starts (0 when the file has fewer lines)."""
    starts: deque[int] = deque(maxlen=count)
    position = 0
    with _open_for_reading(path) as file:  # one pass, one open: a long transcript has many thousand lines
        while (line := _next_line(file, 1, skip_long=True)) is not None:
            starts.append(position)
            position += line.length
    return starts[0] if starts else 0


def iter_lines(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[str]:
    """Every complete line, each truncated (with a marker) to ``max_line_bytes``; an unterminated tail is skipped."""
    if max_line_bytes < 1:
        raise InvalidRequestError(f"max_line_bytes must be at least 1, got {max_line_bytes}")
    with _open_for_reading(path) as file:
        while True:
            line = _next_line(file, max_line_bytes, skip_long=True)
            if line is None:
                return
            yield line.text


@dataclass(slots=True)
class _Line:
    text: str
    length: int  # bytes consumed in the file, newline included
    truncated: bool


def _read_lines(file: BinaryIO, limit: int, max_bytes: int) -> tuple[list[str], list[int], int]:
    """Collect lines while they fit the budget; return them, where each starts, and where the next page starts."""
    lines: list[str] = []
    offsets: list[int] = []
    position = file.tell()
    used = 0
    while len(lines) < limit and used < max_bytes:
        # Only the first line of a page may be truncated: later ones must fit whole, or wait for the next page.
        line = _next_line(file, max_bytes if not lines else max_bytes - used, skip_long=not lines)
        if line is None or (lines and line.truncated):
            break
        lines.append(line.text)
        offsets.append(position)
        position += line.length
        used += line.length - 1
    return lines, offsets, position


def _next_line(file: BinaryIO, cap: int, *, skip_long: bool) -> _Line | None:
    """Read one terminated line of at most ``cap`` bytes. Longer: truncate and skip to its end (if ``skip_long``).

    None at end of file, or when the line has no newline yet. A long line that cannot be skipped comes back with
    ``truncated`` set and the file position is then meaningless.
    """
    head = file.readline(cap + 1)
    if head.endswith(b"\n"):
        return _Line(head[:-1].decode("utf-8", "replace"), len(head), truncated=False)
    if len(head) <= cap:
        return None  # end of file, or an unterminated tail still being written
    if not skip_long:
        return _Line("", len(head), truncated=True)
    rest = _skip_line(file)
    if rest is None:
        return None
    omitted = len(head) - cap + rest - 1
    return _Line(_decode_prefix(head[:cap]) + f"…[truncated {omitted} bytes]", len(head) + rest, truncated=True)


def _skip_line(file: BinaryIO) -> int | None:
    """Skip to just past the next newline in bounded chunks; return the bytes skipped, or None at end of file."""
    skipped = 0
    while chunk := file.readline(_SKIP_CHUNK):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            return skipped
    return None


def _decode_prefix(data: bytes) -> str:
    """Decode a cut-off prefix, dropping a multi-byte character split by the cut instead of mangling it."""
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


def _check_cursor(file: BinaryIO, cursor: int) -> None:
    size = os.fstat(file.fileno()).st_size
    if cursor < 0 or cursor > size:
        raise InvalidRequestError(f"cursor {cursor} is outside the transcript (0..{size} bytes)")
    if cursor > 0:
        file.seek(cursor - 1)
        if file.read(1) != b"\n":
            raise InvalidRequestError(f"cursor {cursor} is not at the start of a line")
    file.seek(cursor)


def _open_for_reading(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise TranscriptNotFoundError(f"transcript {str(path)!r} does not exist") from exc


def _open_private(path: Path) -> BinaryIO:
    """Append mode, created 0600 in a private dir (made 0700 if missing, refused if others can write it: they could
    plant a link where the file goes); never through a symlink. An existing file we own is tightened to 0600 too."""
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def delete_transcripts(run_id: str, recorded: Iterable[str | None], directory: Path | None) -> int:
    """Remove a pruned run's transcript and stderr log; returns the bytes freed. Only files named for the run
    (``<run_id>.jsonl``, ``<run_id>.stderr.log``) are touched, wherever the row says they are, so a doctored row
    can never make prune delete anything else. Missing files are fine (a run that never started has none)."""
    names = {f"{run_id}.jsonl", f"{run_id}.stderr.log"}
    candidates = {Path(p) for p in recorded if p}
    if directory is not None:
        candidates |= {directory / name for name in names}
    freed = 0
    for path in candidates:
        if path.name not in names:
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed
