"""The CLI's control protocol: our half of ``--input-format stream-json --permission-prompt-tool stdio``.

stdin carries NDJSON from us (the ``initialize`` request, the prompt as a user message, answers to the CLI's
requests, our own requests such as ``interrupt``); stdout carries the usual events plus the CLI's
``control_request`` / ``control_response`` / ``control_cancel_request`` lines. Facts: ../shared/notes
control-protocol.md; the shape follows claude-agent-sdk-python ``_internal/query.py``.

The one rule that matters most (the stdin-hang class): in this mode the CLI exits only on stdin EOF, and closing
stdin early silently disables the permission channel. So stdin stays open until a ``result`` has arrived and no
background task is running, then it is closed at once; ``ControlChannel.close`` is also called on every way out
of an attempt. Every question the CLI asks gets an answer (a handler's, or a deny/cancel when the handler fails),
except those the CLI withdraws with ``control_cancel_request``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc

log = logging.getLogger(__name__)

Behavior = Literal["allow", "deny"]
DecidedBy = Literal["policy", "person", "caller", "deadline", "default", "error"]

# Background-task statuses that mean "still running" (system task_started / task_updated / task_notification).
_LIVE_TASK_STATUSES = frozenset({"running", "pending", "in_progress", "started"})


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A ``can_use_tool`` request: the CLI would prompt a person for this tool call."""

    request_id: str
    tool_name: str
    input: dict[str, Any]
    reason: str | None
    suggestions: list[dict[str, Any]]
    tool_use_id: str | None = None
    blocked_path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self, width: int = 200) -> str:
        """A short, safe one-line rendering of what the tool would do (the command, the path; no control chars)."""
        from cc_executor.engine.progress_text import shorten, summarize_tool_input

        text = summarize_tool_input(self.tool_name, self.input, width=width)
        if not text:
            text = shorten(json.dumps(self.input, ensure_ascii=False), width)
        return "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)

    @classmethod
    def from_wire(cls, request_id: str, body: dict[str, Any]) -> PermissionRequest:
        tool_input = body.get("input")
        suggestions = body.get("permission_suggestions")
        reason = body.get("decision_reason") or body.get("title") or body.get("description")
        return cls(
            request_id=request_id,
            tool_name=str(body.get("tool_name") or body.get("display_name") or "?"),
            input=tool_input if isinstance(tool_input, dict) else {},
            reason=str(reason) if reason else None,
            suggestions=[s for s in suggestions if isinstance(s, dict)] if isinstance(suggestions, list) else [],
            tool_use_id=body.get("tool_use_id") if isinstance(body.get("tool_use_id"), str) else None,
            blocked_path=body.get("blocked_path") if isinstance(body.get("blocked_path"), str) else None,
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class PermissionDecision:
    """An answer to a ``PermissionRequest``. ``for_run`` (allow only) also sends the CLI's suggestions back as
    ``updatedPermissions`` scoped to this session, so the same rule is not asked again in this run."""

    behavior: Behavior
    decided_by: DecidedBy
    message: str = ""
    for_run: bool = False
    updated_input: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """allow / allow_for_run / deny: the vocabulary of approve_run and the recorded decisions."""
        if self.behavior == "deny":
            return "deny"
        return "allow_for_run" if self.for_run else "allow"

    def to_wire(self, request: PermissionRequest) -> dict[str, Any]:
        if self.behavior == "deny":
            return {"behavior": "deny", "message": self.message or f"permission to use {request.tool_name} was denied"}
        body: dict[str, Any] = {
            "behavior": "allow",
            "updatedInput": self.updated_input if self.updated_input is not None else request.input,
        }
        if self.for_run and request.suggestions:
            # The CLI suggests destination "localSettings", which would write a lasting rule into the project's
            # .claude/settings.local.json (seen with 2.1.331); "session" keeps it to this run.
            body["updatedPermissions"] = [{**s, "destination": "session"} for s in request.suggestions]
        return body


@dataclass(frozen=True, slots=True)
class ElicitationRequest:
    """The nested CLI relays an elicitation from one of its own MCP servers (``control_request`` subtype
    ``elicitation``). The answer is ``{"action": "accept"|"decline"|"cancel", "content": {...}?}``."""

    request_id: str
    server_name: str | None
    message: str
    requested_schema: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, request_id: str, body: dict[str, Any]) -> ElicitationRequest:
        schema = body.get("requested_schema") or body.get("requestedSchema")
        server = body.get("mcp_server_name") or body.get("server_name")
        return cls(
            request_id=request_id,
            server_name=str(server) if server else None,
            message=str(body.get("message") or ""),
            requested_schema=schema if isinstance(schema, dict) else {},
            raw=body,
        )


PermissionHandler = Callable[[PermissionRequest], Awaitable[PermissionDecision]]
ElicitationHandler = Callable[[ElicitationRequest], Awaitable[dict[str, Any]]]

DENY_MESSAGE = (
    "Permission to use {tool} was denied: this nested run does not prompt anyone (permission_prompts=deny). "
    "Use an allowed tool or report what you would need."
)


async def deny_all(request: PermissionRequest) -> PermissionDecision:
    """``permission_prompts="deny"``: whatever would prompt is denied (and so listed in permission_denials)."""
    return PermissionDecision("deny", "default", DENY_MESSAGE.format(tool=request.tool_name))


async def cancel_elicitation(request: ElicitationRequest) -> dict[str, Any]:
    """Nobody to ask: an elicitation is cancelled (the MCP meaning of "no answer"), never accepted."""
    return {"action": "cancel"}


def control_message(line: bytes) -> dict[str, Any] | None:
    """The parsed line when it is a control message (they are routed here, not to the event stream)."""
    if b'"control_' not in line[:64]:  # cheap pre-check: the CLI writes "type" first
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and str(data.get("type", "")).startswith("control_"):
        return data
    return None


class ControlChannel:
    """Our end of one CLI process's control protocol. Start it with ``open``; feed it every stdout control
    message (``handle``) and every parsed event dict (``observe``); ``close`` ends stdin (idempotent)."""

    def __init__(
        self,
        stdin: anyio.abc.ByteSendStream,
        group: anyio.abc.TaskGroup,
        *,
        on_permission: PermissionHandler = deny_all,
        on_elicitation: ElicitationHandler = cancel_elicitation,
    ) -> None:
        self._stdin = stdin
        self._group = group
        self._on_permission = on_permission
        self._on_elicitation = on_elicitation
        self._lock = anyio.Lock()
        self._closed = False
        self._counter = 0
        self._inflight: dict[str, anyio.CancelScope] = {}
        self._waiting: dict[str, anyio.Event] = {}
        self._responses: dict[str, dict[str, Any]] = {}
        self._tasks: set[str] = set()
        self.result_seen = False

    @property
    def pending(self) -> int:
        """Questions from the CLI not answered yet (the idle timeout pauses while someone is being asked)."""
        return len(self._inflight)

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self, prompt: str) -> None:
        """The handshake, then the prompt. The ``initialize`` answer is not awaited: the CLI handles its input
        in order, so waiting would only add its ~0.3 s start-up to every run."""
        await self._send_request({"subtype": "initialize", "hooks": None})
        message = {"role": "user", "content": prompt}
        await self._write({"type": "user", "session_id": "", "message": message, "parent_tool_use_id": None})

    async def interrupt(self, timeout_s: float = 5.0) -> bool:
        """Ask the CLI to stop the current turn (it then ends with a result and stays resumable)."""
        return await self.request({"subtype": "interrupt"}, timeout_s=timeout_s) is not None

    async def request(self, body: dict[str, Any], *, timeout_s: float) -> dict[str, Any] | None:
        """Send one of our requests and wait for its response; None on error, timeout or a closed channel."""
        request_id = await self._send_request(body)
        if request_id is None:
            return None
        event = self._waiting[request_id]
        with anyio.move_on_after(timeout_s):
            await event.wait()
        self._waiting.pop(request_id, None)
        response = self._responses.pop(request_id, None)
        if response is None or response.get("subtype") == "error":
            return None
        inner = response.get("response")
        return inner if isinstance(inner, dict) else {}

    def handle(self, message: dict[str, Any]) -> None:
        """Route one control message from the CLI."""
        kind = message.get("type")
        if kind == "control_request":
            self._start_handler(message)
        elif kind == "control_response":
            response = message.get("response")
            if isinstance(response, dict):
                request_id = str(response.get("request_id"))
                if request_id in self._waiting:
                    self._responses[request_id] = response
                    self._waiting[request_id].set()
        elif kind == "control_cancel_request":
            scope = self._inflight.pop(str(message.get("request_id")), None)
            if scope is not None:
                scope.cancel()  # the CLI no longer needs the answer: withdraw the question, send nothing

    async def observe(self, data: dict[str, Any]) -> None:
        """Track what decides when stdin may close: a result, and background tasks starting and ending."""
        kind = data.get("type")
        if kind == "result":
            self.result_seen = True
        elif kind == "system":
            self._track_task(data)
        if self.result_seen and not self._tasks:
            await self.close()

    async def close(self) -> None:
        """End stdin (EOF makes the CLI exit). Idempotent; never raises."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await self._stdin.aclose()
        for scope in self._inflight.values():
            scope.cancel()
        for event in self._waiting.values():
            event.set()

    def _track_task(self, data: dict[str, Any]) -> None:
        subtype = data.get("subtype")
        task_id = data.get("task_id")
        if not isinstance(task_id, str):
            return
        if subtype == "task_started":
            self._tasks.add(task_id)
            return
        if subtype == "task_notification":
            status = data.get("status")
        elif subtype == "task_updated":
            patch = data.get("patch")
            status = patch.get("status") if isinstance(patch, dict) else None
        else:
            return
        if isinstance(status, str) and status not in _LIVE_TASK_STATUSES:
            self._tasks.discard(task_id)

    def _start_handler(self, message: dict[str, Any]) -> None:
        request_id = str(message.get("request_id", ""))
        body = message.get("request")
        if not request_id or not isinstance(body, dict):
            log.debug("malformed control_request ignored: %.200s", message)
            return
        scope = anyio.CancelScope()
        self._inflight[request_id] = scope
        self._group.start_soon(self._answer, request_id, body, scope)

    async def _answer(self, request_id: str, body: dict[str, Any], scope: anyio.CancelScope) -> None:
        subtype = body.get("subtype")
        reply: dict[str, Any] | None = None
        with scope:
            try:
                reply = await self._dispatch(request_id, subtype, body)
            except Exception as exc:  # a failing handler must not leave the CLI waiting: answer with an error
                log.exception("answering the CLI's %s request failed", subtype)
                reply = {"subtype": "error", "request_id": request_id, "error": f"{type(exc).__name__}: {exc}"}
        if self._inflight.pop(request_id, None) is None or scope.cancel_called:
            return  # withdrawn by control_cancel_request (or the channel closed): the CLI wants no answer
        if reply is not None:
            await self._write({"type": "control_response", "response": reply})

    async def _dispatch(self, request_id: str, subtype: object, body: dict[str, Any]) -> dict[str, Any]:
        if subtype == "can_use_tool":
            request = PermissionRequest.from_wire(request_id, body)
            try:
                decision = await self._on_permission(request)
            except Exception:
                log.exception("permission handler failed; denying %s", request.tool_name)
                decision = PermissionDecision("deny", "error", f"permission check for {request.tool_name} failed")
            return _success(request_id, decision.to_wire(request))
        if subtype == "elicitation":
            answer = await self._on_elicitation(ElicitationRequest.from_wire(request_id, body))
            return _success(request_id, answer)
        return {"subtype": "error", "request_id": request_id, "error": f"unsupported control request {subtype!r}"}

    async def _send_request(self, body: dict[str, Any]) -> str | None:
        self._counter += 1
        request_id = f"req_{self._counter}_cc_executor"
        self._waiting[request_id] = anyio.Event()
        if not await self._write({"type": "control_request", "request_id": request_id, "request": body}):
            self._waiting.pop(request_id, None)
            return None
        return request_id

    async def _write(self, message: dict[str, Any]) -> bool:
        """One NDJSON line to stdin; False when stdin is closed or broken (the CLI is gone or done)."""
        line = (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")
        async with self._lock:
            if self._closed:
                return False
            try:
                await self._stdin.send(line)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                log.debug("claude's stdin is gone; dropped a %s", message.get("type"))
                return False
            return True


def _success(request_id: str, response: dict[str, Any]) -> dict[str, Any]:
    return {"subtype": "success", "request_id": request_id, "response": response}
