"""NDJSON framing of the CLI's stdout with no line-size crash and bounded memory.

Peers die on long lines (the Agent SDK's 1 MiB buffer, field notes §3D). Here a line up to
``max_line_bytes`` is framed and parsed; a longer one is handed out in pieces as it arrives (to be
spilled to the transcript) and never held whole, so memory stays near ``max_line_bytes`` whatever
the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    """A complete line (without the newline)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SpillPiece:
    """Part of an oversized line. ``first`` marks its start, ``last`` its end (newline seen or EOF)."""

    data: bytes | bytearray
    first: bool
    last: bool
    head: bytes
    total: int


Framed = Line | SpillPiece

_HEAD_BYTES = 1024


class LineFramer:
    """Push chunks in, get lines (or spill pieces of oversized lines) out."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._spilling = False
        self._spill_head = b""
        self.spilled_bytes = 0

    def push(self, chunk: bytes) -> list[Framed]:
        out: list[Framed] = []
        start = 0
        while start < len(chunk):
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            if self._spilling:
                out.append(self._spill(chunk[start:end], last=newline >= 0))
            elif len(self._buffer) + (end - start) > self.max_line_bytes:
                out.extend(self._start_spill(chunk[start:end], last=newline >= 0))
            elif newline >= 0:
                if self._buffer:
                    self._buffer += chunk[start:end]
                    out.append(Line(bytes(self._buffer)))
                    self._buffer.clear()
                else:
                    out.append(Line(chunk[start:end]))
            else:
                self._buffer += chunk[start:end]
            if newline < 0:
                break
            start = newline + 1
        return out

    def flush(self) -> list[Framed]:
        """At EOF: whatever is pending becomes a final line (or ends the spill)."""
        if self._spilling:
            return [self._spill(b"", last=True)]
        if self._buffer:
            line = Line(bytes(self._buffer))
            self._buffer.clear()
            return [line]
        return []

    def _start_spill(self, data: bytes, *, last: bool) -> list[SpillPiece]:
        """Hand out what was buffered and the new data as separate pieces: no copy of both at once."""
        pending, self._buffer = self._buffer, bytearray()
        self._spilling = True
        self._spill_head = (bytes(pending[:_HEAD_BYTES]) + data[:_HEAD_BYTES])[:_HEAD_BYTES]
        self.spilled_bytes = 0
        if not pending:
            return [self._spill(data, last=last, first=True)]
        return [self._spill(pending, last=False, first=True), self._spill(data, last=last)]

    def _spill(self, data: bytes | bytearray, *, last: bool, first: bool = False) -> SpillPiece:
        self.spilled_bytes += len(data)
        piece = SpillPiece(data=data, first=first, last=last, head=self._spill_head, total=self.spilled_bytes)
        if last:
            self._spilling = False
        return piece
