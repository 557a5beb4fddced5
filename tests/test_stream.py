"""Framing and parsing without a process: any chunking gives the same lines; long lines spill."""

from __future__ import annotations

import json

import pytest

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
from cc_executor.engine.stream import Line, LineFramer, SpillPiece

LINES = [b'{"a":1}', b"", b'{"b":"' + b"x" * 5000 + b'"}', b"not json", b'{"c":3}']


def frame(data: bytes, chunk: int, max_line: int = 1 << 20) -> list[Line | SpillPiece]:
    framer = LineFramer(max_line)
    out: list[Line | SpillPiece] = []
    for i in range(0, len(data), chunk):
        out += framer.push(data[i : i + chunk])
    return out + framer.flush()


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 4096, 1 << 20])
def test_any_chunking_gives_the_same_lines(chunk: int) -> None:
    data = b"\n".join(LINES) + b"\n"
    assert [item.data for item in frame(data, chunk) if isinstance(item, Line)] == LINES


def test_a_last_line_without_newline_is_flushed_at_eof() -> None:
    assert [i.data for i in frame(b'{"a":1}\n{"b":2}', 3) if isinstance(i, Line)] == [b'{"a":1}', b'{"b":2}']


@pytest.mark.parametrize("chunk", [1000, 4096, 65536])
def test_oversized_lines_spill_in_pieces_and_framing_resumes(chunk: int) -> None:
    big = b'{"huge":"' + b"y" * 50_000 + b'"}'
    items = frame(b'{"a":1}\n' + big + b'\n{"z":9}\n', chunk, max_line=10_000)
    lines = [i.data for i in items if isinstance(i, Line)]
    pieces = [i for i in items if isinstance(i, SpillPiece)]
    assert lines == [b'{"a":1}', b'{"z":9}']
    assert b"".join(p.data for p in pieces) == big
    assert pieces[0].first and pieces[-1].last and pieces[-1].total == len(big)
    assert pieces[0].head == big[:1024]


def test_the_framer_never_buffers_more_than_the_limit() -> None:
    framer = LineFramer(10_000)
    for _ in range(100):
        framer.push(b"z" * 1000)
        assert len(framer._buffer) <= 10_000


def test_events_are_typed_and_keep_raw() -> None:
    init = parse_line(
        json.dumps({"type": "system", "subtype": "init", "session_id": "s", "tools": ["Bash"], "model": "m"})
    )
    assert isinstance(init[0], InitEvent) and init[0].session_id == "s" and init[0].raw["model"] == "m"
    assistant = parse_line(
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": "m1",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
                    ],
                },
            }
        )
    )
    assert isinstance(assistant[0], AssistantText) and isinstance(assistant[1], ToolUse)
    assert assistant[1].input == {"command": "ls"}
    user = parse_line(
        json.dumps(
            {
                "type": "user",
                "message": {
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "out", "is_error": True}]
                },
            }
        )
    )
    assert user == [ToolResult(tool_use_id="t1", content="out", is_error=True, raw=user[0].raw)]  # type: ignore[union-attr]
    retry = parse_line('{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"error_status":529}')
    assert isinstance(retry[0], ApiRetry) and retry[0].error_status == 529
    denied = parse_line('{"type":"system","subtype":"permission_denied","tool_name":"Write","message":"no"}')
    assert isinstance(denied[0], PermissionDenied) and denied[0].tool_name == "Write"
    result = parse_line('{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"x"}')
    assert isinstance(result[0], ResultEvent) and result[0].is_error and result[0].api_error_status == 429


def test_unknown_and_broken_lines_are_kept() -> None:
    assert parse_line('{"type":"brand_new","x":1}') == [
        UnknownEvent(type="brand_new", raw={"type": "brand_new", "x": 1})
    ]
    assert isinstance(parse_line("[SandboxDebug] hi")[0], NonJsonLine)
    assert isinstance(parse_line('{"broken": ')[0], NonJsonLine)
    assert isinstance(parse_line("[1, 2]")[0], NonJsonLine)
    assert parse_line("   ") == []
