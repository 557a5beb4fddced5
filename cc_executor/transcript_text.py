"""Readable text for transcript lines (what `get_transcript format=text` and `show --transcript` print)."""

from __future__ import annotations

import json

from cc_executor.engine.events import (
    ApiRetry,
    AssistantText,
    InitEvent,
    NonJsonLine,
    PermissionDenied,
    ResultEvent,
    ToolResult,
    ToolUse,
    UnknownEvent,
    parse_line,
)
from cc_executor.engine.progress_text import summarize_tool_input
from cc_executor.text import shorten

_TOOL_RESULT_CHARS = 500


def render_line(line: str) -> list[str]:
    """Zero or more readable lines for one raw transcript line."""
    out: list[str] = []
    for event in parse_line(line):
        match event:
            case InitEvent(model=model, session_id=session, cwd=cwd):
                out.append(f"[init] session {session} · model {model} · cwd {cwd}")
            case AssistantText(text=text):
                out.append(f"[assistant] {text}")
            case ToolUse(name=name, input=tool_input):
                hint = summarize_tool_input(name, tool_input, width=200)
                out.append(f"[tool] {name}: {hint}" if hint else f"[tool] {name} {json.dumps(tool_input)[:200]}")
            case ToolResult(content=content, is_error=is_error):
                label = "tool error" if is_error else "tool result"
                out.append(f"[{label}] {shorten(content, _TOOL_RESULT_CHARS)}")
            case ApiRetry(attempt=attempt, max_retries=limit, error=error):
                out.append(f"[api retry] {error} (attempt {attempt}/{limit})")
            case PermissionDenied(tool_name=tool, message=message):
                out.append(f"[permission denied] {tool}: {message}")
            case ResultEvent(is_error=is_error, result=result, num_turns=turns, total_cost_usd=cost):
                state = "error" if is_error else "success"
                out.append(f"[result: {state}] turns {turns} · cost ${cost or 0:.4f}\n{result or ''}")
            case UnknownEvent(type="cc_executor", raw=raw):  # our own lines: an attempt's start, or a note
                out.append(
                    f"[cc-executor] {raw['message']}" if raw.get("message") else f"[cc-executor] attempt {raw.get('n')}"
                )
            case UnknownEvent():
                continue
            case NonJsonLine(text=text):
                out.append(f"[stdout] {shorten(text, 500)}")
            case _:
                continue
    return out


def incomplete_note(first_line: str) -> str | None:
    """What a transcript's first line says is missing from it (a remote run's copy whose start stayed on a worker
    that did not answer), or None for a complete transcript."""
    if '"incomplete_transcript"' not in first_line:
        return None
    try:
        raw = json.loads(first_line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("type") != "cc_executor" or raw.get("subtype") != "incomplete_transcript":
        return None
    return str(raw.get("message") or "incomplete transcript: its start is missing")
