"""One attempt of a run: drive ONE claude CLI process from spawn to reaped, and record what it produced.

``AttemptDriver.run`` spawns the CLI (``process.spawn``), speaks the control protocol on its stdin (``control``:
the prompt as a user message, answers to permission prompts, stdin closed once the result is in), drains stderr
into a bounded tail, frames stdout into the transcript and typed events (progress and the caller's callbacks), enforces
the wall-clock and idle timeouts and the heartbeat, and always ends with the tree dead (shielded). Everything it
learns lands in an ``Attempt``; deciding what that means (retry, status, result) is the runner's job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import anyio

from cc_executor.engine import process
from cc_executor.engine.control import (
    ControlChannel,
    ElicitationHandler,
    PermissionHandler,
    cancel_elicitation,
    control_message,
    deny_all,
)
from cc_executor.engine.emit import Emitter
from cc_executor.engine.events import (
    AssistantText,
    Event,
    InitEvent,
    NonJsonLine,
    OversizedLine,
    PermissionDenied,
    ResultEvent,
    UnknownEvent,
    parse_line,
)
from cc_executor.engine.outcome import classify
from cc_executor.engine.progress_text import ProgressTracker, shorten
from cc_executor.engine.stream import Line, LineFramer, SpillPiece
from cc_executor.errors import IdleTimeoutError, RunError, RunTimeoutError
from cc_executor.models import CCExecutorConfig, RunRequest
from cc_executor.registry.store import RunStore
from cc_executor.registry.transcripts import TranscriptWriter

log = logging.getLogger(__name__)

_PARTIAL_TEXT_BYTES = 64 * 1024
_STDERR_TAIL_BYTES = 8 * 1024


@dataclass(slots=True)
class Attempt:
    """What one CLI process produced."""

    n: int
    started_at: str
    result: ResultEvent | None = None
    session_id: str | None = None
    texts: list[str] = field(default_factory=list)
    text_bytes: int = 0
    denials: list[dict[str, object]] = field(default_factory=list)
    oversized_lines: int = 0
    stderr_tail: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    stopped: RunError | None = None
    pid: int | None = None
    last_line_at: float = field(default_factory=time.monotonic)

    def keep_text(self, text: str) -> None:
        self.texts.append(text)
        self.text_bytes += len(text)
        while self.text_bytes > _PARTIAL_TEXT_BYTES and len(self.texts) > 1:
            self.text_bytes -= len(self.texts.pop(0))

    def error(self) -> RunError | None:
        if self.stopped is not None:
            return self.stopped
        tail = self.stderr_tail.decode("utf-8", "replace")
        return classify(self.result, exit_code=self.exit_code, stderr_tail=tail, oversized_lines=self.oversized_lines)


@dataclass(slots=True, kw_only=True)
class AttemptDriver:
    """Runs the CLI once for a prepared run and fills an ``Attempt``; the process tree is dead when ``run``
    returns or raises."""

    request: RunRequest
    argv: list[str]
    env: dict[str, str]
    store: RunStore
    emitter: Emitter
    tracker: ProgressTracker
    writer: TranscriptWriter | None
    deadline: float  # the run's wall-clock deadline (time.monotonic), shared by its attempts
    on_permission: PermissionHandler = deny_all
    on_elicitation: ElicitationHandler = cancel_elicitation
    channel: ControlChannel | None = None
    marker: str | None = None  # the CC_EXECUTOR_RUN_ID its processes carry (env) and sweeps match; default run id

    @property
    def config(self) -> CCExecutorConfig:
        return self.request.config

    async def run(self, attempt: Attempt) -> None:
        marker = self.marker or self.request.run_id
        child = await process.spawn(self.argv, cwd=self.request.cwd, env=self.env, marker=marker)
        attempt.pid = child.pid
        try:
            await self.store.mark_started(self.request.run_id, pid=child.pid, pgid=child.pgid)
            await self.emitter.progress(self.tracker.update("started", f"claude started (pid {child.pid})"))
            async with anyio.create_task_group() as group:
                assert child.process.stdin is not None
                self.channel = ControlChannel(
                    child.process.stdin, group, on_permission=self.on_permission, on_elicitation=self.on_elicitation
                )
                group.start_soon(self.channel.open, self.request.prompt)
                group.start_soon(self._drain_stderr, child, attempt)
                group.start_soon(self._watch, child, attempt)
                reader_done = anyio.Event()
                group.start_soon(self._read_stdout, child, attempt, reader_done)
                await child.process.wait()
                await self._await_reader(child, reader_done)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if self.channel is not None:
                    await self.channel.close()
                if child.returncode is None:
                    await process.terminate_tree(child, grace_s=self.config.kill_grace_s)
                await process.sweep_marked(child.marker)
                process.forget(child)
                attempt.exit_code = child.returncode

    async def _drain_stderr(self, child: process.ChildProcess, attempt: Attempt) -> None:
        stream = child.process.stderr
        assert stream is not None
        async for chunk in stream:
            attempt.stderr_tail += chunk
            del attempt.stderr_tail[:-_STDERR_TAIL_BYTES]
            if self.writer is not None:
                self.writer.write_stderr(chunk)

    async def _await_reader(self, child: process.ChildProcess, reader_done: anyio.Event) -> None:
        """After claude exits its stdout should close; leftovers that inherited the pipe are killed."""
        with anyio.move_on_after(2.0):
            await reader_done.wait()
        if not reader_done.is_set():
            await process.sweep_marked(child.marker)
            with anyio.move_on_after(2.0):
                await reader_done.wait()

    async def _read_stdout(self, child: process.ChildProcess, attempt: Attempt, done: anyio.Event) -> None:
        stream = child.process.stdout
        assert stream is not None
        framer = LineFramer(self.config.max_line_bytes)
        try:
            async for chunk in stream:
                attempt.last_line_at = time.monotonic()
                for item in framer.push(chunk):
                    await self._handle_framed(item, attempt)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.debug("claude's stdout closed abruptly")
        for item in framer.flush():
            await self._handle_framed(item, attempt)
        done.set()

    async def _handle_framed(self, item: Line | SpillPiece, attempt: Attempt) -> None:
        if isinstance(item, SpillPiece):
            if self.writer is not None:
                self.writer.write_piece(item.data)
                if item.last:
                    self.writer.end_piece()
            if item.last:
                attempt.oversized_lines += 1
                oversized = OversizedLine(size=item.total, head=item.head.decode("utf-8", "replace"))
                await self._handle_event(oversized, attempt)
            return
        message = control_message(item.data)
        if message is not None and self.channel is not None:
            if self.writer is not None and message.get("type") != "control_response":
                self.writer.write_line(item.data)  # the CLI's questions are kept; answers to our requests are noise
            self.channel.handle(message)
            return
        if self.writer is not None:
            self.writer.write_line(item.data)
        for event in parse_line(item.data):
            await self._handle_event(event, attempt)

    async def _handle_event(self, event: Event, attempt: Attempt) -> None:
        match event:
            case InitEvent(session_id=session_id):
                attempt.session_id = session_id
            case AssistantText(text=text):
                attempt.keep_text(text)
            case PermissionDenied():
                attempt.denials.append(dict(event.raw))
            case ResultEvent(session_id=session_id):
                attempt.result = event
                attempt.session_id = session_id or attempt.session_id
            case NonJsonLine(text=text):
                log.debug("non-JSON stdout line kept in transcript: %s", shorten(text, 200))
        await self.emitter.event(event)
        if self.tracker.feed(event):
            await self.emitter.progress(self.tracker.update("event"))
        if self.channel is not None:
            if isinstance(event, ResultEvent | UnknownEvent):
                await self.channel.observe(event.raw)  # a result (and no background task) closes stdin
            elif isinstance(event, OversizedLine) and '"type":"result"' in event.head[:40].replace(" ", ""):
                await self.channel.observe({"type": "result"})  # a result too long to parse still ends the run

    async def _watch(self, child: process.ChildProcess, attempt: Attempt) -> None:
        """Wall-clock and idle timeouts, and the heartbeat that keeps hosts' progress alive."""
        idle = self.config.idle_timeout
        while True:
            await anyio.sleep(0.25)
            now = time.monotonic()
            if self.channel is not None and self.channel.pending:
                attempt.last_line_at = now  # silence while someone decides a prompt is not idleness
            if now >= self.deadline:
                attempt.stopped = RunTimeoutError(f"timed out after {self.request.timeout_s:g}s; process tree killed")
            elif idle is not None and now - attempt.last_line_at >= idle:
                attempt.stopped = IdleTimeoutError(f"no output from claude for {idle:g}s; process tree killed")
            if attempt.stopped is not None:
                with anyio.CancelScope(shield=True):
                    await process.terminate_tree(child, grace_s=self.config.kill_grace_s)
                return
            if now - self.emitter.last_emit >= self.config.heartbeat_s - 0.25:
                await self.emitter.progress(self.tracker.update("heartbeat"))
