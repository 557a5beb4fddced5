"""A scripted fake of the Anthropic Messages API, enough for the real `claude` CLI to run offline.

The CLI needs one endpoint, ``POST /v1/messages`` with an SSE reply (see docs/fake-api.md). A scenario
is a list of steps; which step answers a request is derived from the request itself (the number of
assistant turns already in its history), so one server can serve many concurrent conversations.

    async with FakeAnthropic(scenarios.write_file("hello.py", "print(1)")) as fake:
        env = offline_env(fake.base_url, home=tmp_path / "home")
        ...  # run claude with env; inspect fake.requests afterwards
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

log = logging.getLogger(__name__)

_CWD_LINE = re.compile(r"Primary working directory:\s*(\S[^\n]*)")
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Text:
    """A final assistant text reply (ends the turn)."""

    text: str
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolUse:
    """An assistant tool call. String values in ``input`` may use ``{cwd}`` for the run's directory."""

    name: str
    input: Mapping[str, Any]
    delay_s: float = 0.0
    preamble: str = ""


@dataclass(frozen=True, slots=True)
class ApiError:
    """An HTTP error reply, e.g. 429 rate_limit_error or 529 overloaded_error."""

    status: int
    error_type: str
    message: str
    retry_after: float | None = None
    delay_s: float = 0.0


Step = Text | ToolUse | ApiError


@dataclass(slots=True)
class Scenario:
    """Steps answered by turn index; ``fail_first`` errors answer the first requests of the scenario."""

    steps: list[Step]
    fail_first: list[ApiError] = field(default_factory=list)
    calls: int = 0

    def next_step(self, turn_index: int, tools: set[str]) -> Step:
        self.calls += 1
        if self.calls <= len(self.fail_first):
            return self.fail_first[self.calls - 1]
        if turn_index >= len(self.steps):
            last = self.steps[-1] if self.steps else Text("done")
            return last if isinstance(last, Text) else Text("done")
        step = self.steps[turn_index]
        if isinstance(step, ToolUse) and step.name not in tools:
            return Text(f"(fake) tool {step.name} is not available in this session")
        return step


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """Every text fragment of the request, for assertions such as 'the earlier result was sent'."""
        return json.dumps(self.body.get("messages", []))


def _fill_cwd(value: Any, cwd: str) -> Any:
    if isinstance(value, str):
        return value.replace("{cwd}", cwd)
    if isinstance(value, Mapping):
        return {k: _fill_cwd(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_cwd(v, cwd) for v in value]
    return value


def _all_text(body: Mapping[str, Any]) -> str:
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        parts.extend(str(b.get("text", "")) for b in system if isinstance(b, dict))
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "\n".join(parts)


def first_user_text(body: Mapping[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [str(b.get("text", "")) for b in content or [] if isinstance(b, dict)]
        return "\n".join(t for t in texts if not t.startswith("<system-reminder>")) or "\n".join(texts)
    return ""


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _usage(output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": 100,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def sse_reply(step: Text | ToolUse, model: str, cwd: str) -> bytes:
    """The SSE body the CLI expects for one assistant message."""
    message_id = f"msg_fake_{uuid.uuid4().hex[:16]}"
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _usage(1),
                },
            },
        )
    ]
    blocks: list[tuple[dict[str, Any], dict[str, Any]]] = []
    text = step.text if isinstance(step, Text) else step.preamble
    if text:
        blocks.append(({"type": "text", "text": ""}, {"type": "text_delta", "text": text}))
    if isinstance(step, ToolUse):
        tool_input = _fill_cwd(step.input, cwd)
        start = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": step.name, "input": {}}
        blocks.append((start, {"type": "input_json_delta", "partial_json": json.dumps(tool_input)}))
    for index, (start_block, delta) in enumerate(blocks):
        out.append(
            _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start_block})
        )
        out.append(_sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop_reason = "tool_use" if isinstance(step, ToolUse) else "end_turn"
    output_tokens = max(1, len(text) // 4) + (20 if isinstance(step, ToolUse) else 0)
    out.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)


class FakeAnthropic:
    """An in-process HTTP/1.1 server on a free loopback port, serving scripted scenarios.

    ``routes`` maps a marker string to a scenario: a request whose first user message contains the
    marker gets that scenario (the marker found latest wins); every other request gets ``scenario``.
    """

    def __init__(
        self, scenario: Scenario | None = None, routes: Mapping[str, Scenario] | None = None, *, port: int = 0
    ) -> None:
        self.scenario = scenario or Scenario([Text("hello from fake")])
        self.routes: dict[str, Scenario] = dict(routes or {})
        self.requests: list[RecordedRequest] = []
        self.port = port
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith("/v1/messages")]

    async def __aenter__(self) -> FakeAnthropic:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        self._listener = listener
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._listener.serve, self._handle_connection)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task_group is not None and self._listener is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        await self._listener.aclose()

    def scenario_for(self, body: Mapping[str, Any]) -> Scenario:
        prompt = first_user_text(body)
        # The marker found latest in the prompt wins: a task list puts earlier tasks' text before the current task.
        found = [(prompt.rfind(marker), scenario) for marker, scenario in self.routes.items() if marker in prompt]
        return max(found, key=lambda pair: pair[0])[1] if found else self.scenario

    async def _handle_connection(self, stream: anyio.abc.SocketStream) -> None:
        from anyio.streams.buffered import BufferedByteReceiveStream

        reader = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while True:
                    head = await reader.receive_until(b"\r\n\r\n", _MAX_HEADER_BYTES)
                    request_line, *header_lines = head.decode("latin-1").split("\r\n")
                    method, target, _version = request_line.split(" ", 2)
                    headers = {}
                    for line in header_lines:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    length = int(headers.get("content-length", "0"))
                    raw = await reader.receive_exactly(length) if length else b""
                    await self._respond(stream, method, target, headers, raw)
                    if headers.get("connection", "").lower() == "close":
                        return
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    async def _respond(
        self, stream: anyio.abc.SocketStream, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> None:
        path = target.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_unparsed": raw[:2000].decode("utf-8", "replace")}
        self.requests.append(RecordedRequest(method, path, headers, body))
        if method == "HEAD" or path in ("/", "/api/hello"):
            await _send(stream, 200, "text/plain", b"")
            return
        if method != "POST" or not path.startswith("/v1/messages"):
            await _send(
                stream,
                404,
                "application/json",
                json.dumps({"type": "error", "error": {"type": "not_found_error", "message": path}}).encode(),
            )
            return
        turn_index = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        tools = {str(t.get("name")) for t in body.get("tools", []) if isinstance(t, dict)}
        step = self.scenario_for(body).next_step(turn_index, tools)
        if step.delay_s:
            await anyio.sleep(step.delay_s)
        if isinstance(step, ApiError):
            payload = {"type": "error", "error": {"type": step.error_type, "message": step.message}}
            extra = {"retry-after": f"{step.retry_after:g}"} if step.retry_after is not None else {}
            await _send(stream, step.status, "application/json", json.dumps(payload).encode(), extra)
            return
        cwd_match = _CWD_LINE.search(_all_text(body))
        cwd = cwd_match.group(1).strip() if cwd_match else "."
        model = str(body.get("model", "fake-model"))
        await _send(stream, 200, "text/event-stream", sse_reply(step, model, cwd))


async def _send(
    stream: anyio.abc.SocketStream,
    status: int,
    content_type: str,
    payload: bytes,
    extra: Mapping[str, str] | None = None,
) -> None:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 529: "Overloaded"}.get(status, "Error")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"content-type: {content_type}",
        f"content-length: {len(payload)}",
        "connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
