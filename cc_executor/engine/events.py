"""Typed stream-json events. Every event keeps its ``raw`` dict, and unknown types pass through as
``UnknownEvent``, so a newer CLI never breaks a run and transcripts stay lossless."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class InitEvent:
    session_id: str | None
    model: str | None
    cwd: str | None
    tools: list[str]
    permission_mode: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class AssistantText:
    text: str
    usage: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ToolUse:
    tool_use_id: str
    name: str
    input: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: str
    is_error: bool
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiRetry:
    attempt: int
    max_retries: int
    retry_delay_ms: float
    error_status: int | None
    error: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class PermissionDenied:
    tool_name: str
    tool_use_id: str | None
    message: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ResultEvent:
    is_error: bool
    subtype: str | None
    result: str | None
    session_id: str | None
    num_turns: int | None
    total_cost_usd: float | None
    usage: dict[str, Any]
    structured_output: Any
    api_error_status: int | None
    terminal_reason: str | None
    errors: list[str]
    permission_denials: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    type: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class NonJsonLine:
    """A stdout line that is not a JSON object (debug output, corruption): kept, never fatal."""

    text: str
    error: str


@dataclass(frozen=True, slots=True)
class OversizedLine:
    """A line longer than ``max_line_bytes``: spilled to the transcript unparsed; only its head is kept."""

    size: int
    head: str


Event = (
    InitEvent
    | AssistantText
    | ToolUse
    | ToolResult
    | ApiRetry
    | PermissionDenied
    | ResultEvent
    | UnknownEvent
    | NonJsonLine
    | OversizedLine
)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else json.dumps(content)


def parse_line(line: bytes | str) -> list[Event]:
    """One stdout line to zero or more events (an assistant/user message may carry several blocks)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except ValueError as exc:
        return [NonJsonLine(text=stripped, error=str(exc))]
    if not isinstance(data, dict):
        return [NonJsonLine(text=stripped, error="not a JSON object")]
    return to_events(data)


def to_events(data: dict[str, Any]) -> list[Event]:
    kind = data.get("type")
    if kind == "system":
        return [_system(data)]
    if kind == "assistant":
        return _assistant(data)
    if kind == "user":
        return _user(data)
    if kind == "result":
        return [_result(data)]
    return [UnknownEvent(type=str(kind), raw=data)]


def _system(data: dict[str, Any]) -> Event:
    subtype = data.get("subtype")
    if subtype == "init":
        tools = data.get("tools")
        return InitEvent(
            session_id=_str_or_none(data.get("session_id")),
            model=_str_or_none(data.get("model")),
            cwd=_str_or_none(data.get("cwd")),
            tools=[str(t) for t in tools] if isinstance(tools, list) else [],
            permission_mode=_str_or_none(data.get("permissionMode")),
            raw=data,
        )
    if subtype == "api_retry":
        return ApiRetry(
            attempt=_int_or_none(data.get("attempt")) or 0,
            max_retries=_int_or_none(data.get("max_retries")) or 0,
            retry_delay_ms=float(data.get("retry_delay_ms") or 0),
            error_status=_int_or_none(data.get("error_status")),
            error=_str_or_none(data.get("error")),
            raw=data,
        )
    if subtype == "permission_denied":
        return PermissionDenied(
            tool_name=str(data.get("tool_name", "")),
            tool_use_id=_str_or_none(data.get("tool_use_id")),
            message=str(data.get("message", "")),
            raw=data,
        )
    return UnknownEvent(type=f"system/{subtype}", raw=data)


def _assistant(data: dict[str, Any]) -> list[Event]:
    message = _dict(data.get("message"))
    usage = _dict(message.get("usage"))
    events: list[Event] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            events.append(AssistantText(text=str(block.get("text", "")), usage=usage, raw=data))
        elif block.get("type") == "tool_use":
            events.append(
                ToolUse(
                    tool_use_id=str(block.get("id", "")),
                    name=str(block.get("name", "")),
                    input=_dict(block.get("input")),
                    raw=data,
                )
            )
    return events or [UnknownEvent(type="assistant", raw=data)]


def _user(data: dict[str, Any]) -> list[Event]:
    content = _dict(data.get("message")).get("content")
    events: list[Event] = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            events.append(
                ToolResult(
                    tool_use_id=str(block.get("tool_use_id", "")),
                    content=_tool_result_text(block.get("content")),
                    is_error=bool(block.get("is_error", False)),
                    raw=data,
                )
            )
    return events or [UnknownEvent(type="user", raw=data)]


def _result(data: dict[str, Any]) -> ResultEvent:
    cost = data.get("total_cost_usd")
    errors = data.get("errors")
    denials = data.get("permission_denials")
    return ResultEvent(
        is_error=bool(data.get("is_error", False)),
        subtype=_str_or_none(data.get("subtype")),
        result=_str_or_none(data.get("result")),
        session_id=_str_or_none(data.get("session_id")),
        num_turns=_int_or_none(data.get("num_turns")),
        total_cost_usd=float(cost) if isinstance(cost, int | float) else None,
        usage=_dict(data.get("usage")),
        structured_output=data.get("structured_output"),
        api_error_status=_int_or_none(data.get("api_error_status")),
        terminal_reason=_str_or_none(data.get("terminal_reason")),
        errors=[str(e) for e in errors] if isinstance(errors, list) else [],
        permission_denials=[d for d in denials if isinstance(d, dict)] if isinstance(denials, list) else [],
        raw=data,
    )
