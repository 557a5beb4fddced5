"""Human-readable progress text from the live event stream.

A host shows this message while a long call runs (Claude Code displays the progress message), so it
says what is happening now: turn, the current tool with a short argument, files touched, tokens, cost
and elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cc_executor.engine.events import (
    ApiRetry,
    AssistantText,
    Event,
    InitEvent,
    OversizedLine,
    PermissionDenied,
    ResultEvent,
    ToolResult,
    ToolUse,
)
from cc_executor.models import ProgressKind, ProgressUpdate
from cc_executor.text import shorten as shorten  # the one cutter, re-exported for the engine modules

_ARG_KEYS = ("command", "file_path", "path", "pattern", "url", "query", "description", "prompt")
_FILE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")


def summarize_tool_input(name: str, tool_input: Mapping[str, Any], width: int = 60) -> str:
    """A one-line hint of what a tool call does: the Bash command, the file path, the pattern..."""
    for key in _ARG_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return shorten(" ".join(value.split()), width)
    return ""


def _tokens(usage: Mapping[str, Any]) -> int:
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens"))


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressTracker:
    """Folds events into the state behind a progress message."""

    def __init__(self, run_id: str, *, started: float | None = None) -> None:
        self.run_id = run_id
        self.started = time.monotonic() if started is None else started
        self.turn = 0
        self.phase = "starting claude"
        self.last_tool: str | None = None
        self.files: list[str] = []
        self.tokens = 0
        self.cost_usd: float | None = None
        self._seen_messages: set[str] = set()

    def feed(self, event: Event) -> bool:
        """Update from one event; True when the message changed in a way worth reporting."""
        match event:
            case InitEvent():
                self.phase = "claude started"
            case AssistantText(text=text):
                self._count_turn(event.raw)
                self.phase = "writing: " + shorten(" ".join(text.split()), 60) if text.strip() else "thinking"
            case ToolUse(name=name, input=tool_input):
                self._count_turn(event.raw)
                arg = summarize_tool_input(name, tool_input)
                self.last_tool = f"{name}: {arg}" if arg else name
                self.phase = self.last_tool
                self._note_file(name, tool_input)
            case ToolResult(is_error=True):
                self.phase = f"{self.last_tool or 'tool'} failed"
            case ToolResult():
                self.phase = f"{self.last_tool or 'tool'} done"
            case ApiRetry(attempt=attempt, max_retries=limit, error=error):
                self.phase = f"API {error or 'error'}, CLI retry {attempt}/{limit}"
            case PermissionDenied(tool_name=tool):
                self.phase = f"permission denied: {tool}"
            case ResultEvent(total_cost_usd=cost, usage=usage, num_turns=turns):
                self.cost_usd = cost if cost is not None else self.cost_usd
                self.tokens = _tokens(usage) or self.tokens
                self.turn = turns or self.turn
                self.phase = "finishing"
            case OversizedLine(size=size):
                self.phase = f"received a {size / 1e6:.1f} MB stream line"
            case _:
                return False
        return True

    def _count_turn(self, raw: Mapping[str, Any]) -> None:
        message = raw.get("message")
        if not isinstance(message, Mapping):
            return
        message_id = str(message.get("id", ""))
        if message_id and message_id not in self._seen_messages:
            self._seen_messages.add(message_id)
            self.turn += 1
            usage = message.get("usage")
            if isinstance(usage, Mapping):
                self.tokens += _tokens(usage)

    def _note_file(self, tool: str, tool_input: Mapping[str, Any]) -> None:
        path = tool_input.get("file_path") or tool_input.get("notebook_path")
        if tool in _FILE_TOOLS and isinstance(path, str) and path not in self.files:
            self.files.append(path)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def message(self) -> str:
        parts = [f"turn {self.turn}" if self.turn else None, self.phase]
        if self.files:
            names = ", ".join(p.rsplit("/", 1)[-1] for p in self.files[-3:])
            more = f" (+{len(self.files) - 3})" if len(self.files) > 3 else ""
            parts.append(f"{len(self.files)} file{'s' if len(self.files) != 1 else ''} touched: {names}{more}")
        if self.tokens:
            parts.append(f"{self.tokens / 1000:.1f}k tokens" if self.tokens >= 1000 else f"{self.tokens} tokens")
        if self.cost_usd:
            parts.append(f"${self.cost_usd:.4f}")
        parts.append(format_elapsed(self.elapsed()))
        return " · ".join(p for p in parts if p)

    def update(self, kind: ProgressKind, message: str | None = None) -> ProgressUpdate:
        return ProgressUpdate(
            run_id=self.run_id,
            kind=kind,
            message=message or self.message(),
            elapsed_s=round(self.elapsed(), 3),
            turn=self.turn,
            last_tool=self.last_tool,
            files_touched=list(self.files),
            tokens=self.tokens,
            cost_usd=self.cost_usd,
        )
