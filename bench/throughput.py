"""Benchmark 2: stream parser throughput, LineFramer alone and LineFramer + parse_line, on a recorded-shape stream.

The stream is built from the exact line shapes CLI 2.1.331 prints in stream-json mode (checked against a real run
on the fake API): an init line, assistant text and tool_use messages, user tool_result messages whose content is a
few KB (and which, like the real CLI, repeat it under ``tool_use_result``), permission denials and a result line.
Text is code- and log-like: newlines, quotes, tabs, backslashes and some non-ASCII (the CLI writes raw UTF-8).
It is fed in 256 KiB chunks (the runner gets up to 64 KiB per read from the pipe; bigger chunks only amortise the loop).
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import MIB, Options, Row, Section

from cc_executor.engine.events import parse_line
from cc_executor.engine.progress_text import ProgressTracker
from cc_executor.engine.stream import Line, LineFramer
from cc_executor.registry.transcripts import TranscriptWriter

CHUNK = 256 * 1024
TARGET_MB_S = 200.0
MB = 1_000_000

_PROSE = (
    "the run writes a file then reads it back and checks the result against the schema before it "
    "returns résumé naïve — ✓ error warning retry queue stream event token budget cache hit miss"
)
_WORDS = _PROSE.split()
_CODE = [
    "def handle(request: Request) -> Response:",
    '    """Return the cached answer when it is fresh."""',
    "    if request.path.startswith('/api/'):",
    '        return Response(json.dumps({"ok": True, "path": request.path}), status=200)',
    "\tfor i, line in enumerate(lines):  # tab-indented legacy code",
    '        raise ValueError(f"bad value {value!r} at C:\\\\temp\\\\x")',
    "-rw-r--r-- 1 user user  4096 Nov 24 22:21 fizzbuzz.py",
    "tests/test_run.py::test_timeout PASSED                                    [ 42%]",
    "npm WARN deprecated glob@7.2.3: Glob versions prior to v9 are no longer supported",
    "    return {k: v for k, v in sorted(items.items()) if v is not None}",
]


class StreamBuilder:
    """Lines shaped like the CLI's stream-json output, deterministic for a seed."""

    def __init__(self, seed: int = 1234) -> None:
        self.rng = random.Random(seed)
        self.session = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.cwd = "/home/user/projects/webapp"

    def _id(self, prefix: str, n: int = 20) -> str:
        return prefix + "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def prose(self, n_bytes: int) -> str:
        words: list[str] = []
        size = 0
        while size < n_bytes:
            word = self.rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        return " ".join(words)

    def code(self, n_bytes: int) -> str:
        lines: list[str] = []
        size = 0
        while size < n_bytes:
            line = self.rng.choice(_CODE)
            lines.append(line)
            size += len(line) + 1
        return "\n".join(lines)

    def _envelope(self, kind: str, message: dict[str, Any], **extra: Any) -> bytes:
        event = {
            "type": kind,
            "message": message,
            "parent_tool_use_id": None,
            "session_id": self.session,
            "uuid": str(uuid.UUID(int=self.rng.getrandbits(128))),
            **extra,
        }
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()

    def _assistant(self, message_id: str, block: dict[str, Any]) -> bytes:
        usage = {
            "input_tokens": 100,
            "output_tokens": 20,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [block],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
            "context_management": None,
        }
        return self._envelope("assistant", message)

    def init(self) -> bytes:
        tools = ["Task", "Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "TodoWrite", "WebFetch", "Write"]
        event = {
            "type": "system",
            "subtype": "init",
            "cwd": self.cwd,
            "session_id": self.session,
            "tools": tools * 4,
            "mcp_servers": [],
            "model": "claude-sonnet-4-5",
            "permissionMode": "acceptEdits",
            "slash_commands": ["compact", "context", "cost", "init", "review"] * 6,
            "apiKeySource": "ANTHROPIC_API_KEY",
            "claude_code_version": "2.1.331",
            "output_style": "default",
            "uuid": str(uuid.UUID(int=self.rng.getrandbits(128))),
        }
        return json.dumps(event, separators=(",", ":")).encode()

    def turn(self) -> list[bytes]:
        """One assistant turn: a text preamble, a tool call and its result (sometimes denied)."""
        message_id = self._id("msg_01", 22)
        tool_id = self._id("toolu_01", 22)
        out = [self._assistant(message_id, {"type": "text", "text": self.prose(self.rng.randint(60, 800))})]
        kind = self.rng.choice(("Bash", "Read", "Write", "Bash"))
        body = self.code(self.rng.randint(1024, 8192))
        if kind == "Bash":
            tool_input: dict[str, Any] = {"command": "pytest -q tests/ 2>&1 | tail -50", "description": "run tests"}
            extra: dict[str, Any] = {"stdout": body, "stderr": "", "interrupted": False, "isImage": False}
            content = body
        elif kind == "Read":
            tool_input = {"file_path": f"{self.cwd}/src/app/handlers.py"}
            numbered = "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(body.split("\n"), 1))
            extra = {"type": "text", "file": {"filePath": tool_input["file_path"], "content": body, "numLines": 40}}
            content = numbered
        else:
            tool_input = {"file_path": f"{self.cwd}/src/app/new_module.py", "content": body}
            extra = {"type": "create", "filePath": tool_input["file_path"], "content": body, "structuredPatch": []}
            content = f"File created successfully at: {tool_input['file_path']}"
        out.append(self._assistant(message_id, {"type": "tool_use", "id": tool_id, "name": kind, "input": tool_input}))
        is_error = self.rng.random() < 0.05
        result_block = {"tool_use_id": tool_id, "type": "tool_result", "content": content, "is_error": is_error}
        out.append(
            self._envelope(
                "user",
                {"role": "user", "content": [result_block]},
                timestamp="2026-11-24T22:21:38.837Z",
                tool_use_result=extra,
            )
        )
        return out

    def result(self, turns: int) -> bytes:
        event = {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "duration_ms": 123456,
            "num_turns": turns,
            "result": self.prose(600),
            "session_id": self.session,
            "total_cost_usd": 1.2345,
            "usage": {"input_tokens": 123456, "output_tokens": 9876},
            "permission_denials": [],
            "terminal_reason": "completed",
        }
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()

    def stream(self, total_bytes: int, pool_turns: int = 600) -> tuple[bytes, int]:
        """About ``total_bytes`` of NDJSON: a pool of distinct turns, repeated; returns (data, line count)."""
        pool = [line for _ in range(pool_turns) for line in self.turn()]
        lines = [self.init()]
        size = len(lines[0]) + 1
        i = 0
        while size < total_bytes:
            line = pool[i % len(pool)]
            lines.append(line)
            size += len(line) + 1
            i += 1
        lines.append(self.result(i // 3))
        return b"\n".join(lines) + b"\n", len(lines)


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def frame_only(chunks: list[bytes]) -> int:
    framer = LineFramer(32 * MIB)
    n = 0
    for chunk in chunks:
        n += len(framer.push(chunk))
    return n + len(framer.flush())


def frame_and_parse(chunks: list[bytes]) -> int:
    framer = LineFramer(32 * MIB)
    n = 0
    for chunk in chunks:
        for item in framer.push(chunk):
            if isinstance(item, Line):
                n += len(parse_line(item.data))
    for item in framer.flush():
        if isinstance(item, Line):
            n += len(parse_line(item.data))
    return n


def loads_only(lines: list[bytes]) -> int:
    """Reference ceiling: the stdlib JSON decoder alone on the same lines (already split, already bytes)."""
    loads = json.loads
    for line in lines:
        loads(line)
    return len(lines)


def reader_pipeline(chunks: list[bytes], transcript: Path) -> int:
    """What the runner does per line, minus the event loop: frame, write the transcript, parse, fold progress."""
    framer = LineFramer(32 * MIB)
    tracker = ProgressTracker("00000000-0000-4000-8000-000000000000")
    writer = TranscriptWriter.open(transcript, transcript.with_suffix(".stderr.log"))
    n = 0
    try:
        for chunk in chunks:
            for item in framer.push(chunk):
                if isinstance(item, Line):
                    writer.write_line(item.data)
                    for event in parse_line(item.data):
                        tracker.feed(event)
                        n += 1
    finally:
        writer.close()
        transcript.unlink(missing_ok=True)
    return n


async def run(options: Options) -> Section:
    section = Section("2. Stream parser throughput")
    total = (64 if options.quick else 200) * MB
    reps = 3 if options.quick else 5
    built = time.perf_counter()
    data, n_lines = StreamBuilder().stream(total)
    chunks = _chunks(data)
    size = len(data)
    lines = data[:-1].split(b"\n")
    del data
    built = time.perf_counter() - built

    transcript = options.tmp / "transcript.jsonl"
    passes: dict[str, Callable[[], int]] = {
        "frame": lambda: frame_only(chunks),
        "frame + parse": lambda: frame_and_parse(chunks),
        "json.loads alone": lambda: loads_only(lines),
        "runner per-line work": lambda: reader_pipeline(chunks, transcript),
    }
    frame_and_parse(chunks)  # a warm-up pass: first-touch page faults and allocator growth are not throughput
    results: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(reps):  # interleaved, so a slow spell of the machine hits every pass alike
        for name, fn in passes.items():
            start = time.perf_counter()
            fn()
            results[name].append(size / (time.perf_counter() - start) / MB)
    assert frame_only(chunks) == n_lines

    frame, parse, loads, pipeline = (statistics.median(v) for v in results.values())
    how = f"{size / MB:.0f} MB, {n_lines:,} lines, 256 KiB chunks, median of {reps} passes, MB = 10^6 B"
    section.rows.append(Row("2a. stream framing (LineFramer)", f"{frame:,.0f} MB/s", "≥ 200 MB/s", frame >= 200, how))
    section.rows.append(
        Row("2b. framing + parsing (LineFramer + parse_line)", f"{parse:,.0f} MB/s", "≥ 200 MB/s", parse >= 200, how)
    )
    section.rows.append(
        Row(
            "2c. runner's per-line work (2b + transcript write + progress fold)",
            f"{pipeline:,.0f} MB/s",
            "(info)",
            None,
            how + "; transcript on local disk",
        )
    )
    sizes = sorted(len(line) for line in lines)
    section.notes = [
        f"Stream: {size / MB:.0f} MB in {n_lines:,} lines (median line {sizes[len(sizes) // 2]:,} B, p90 "
        f"{sizes[int(len(sizes) * 0.9)]:,} B, max {sizes[-1]:,} B), built in {built:.1f} s from 600 distinct "
        "generated turns (text preamble, tool_use, tool_result of 1–8 KB) repeated.",
        "",
        "| pass | " + " | ".join(f"run {i + 1}" for i in range(reps)) + " |",
        "| --- | " + " | ".join("---" for _ in range(reps)) + " |",
        *(f"| {k} | " + " | ".join(f"{v:,.0f} MB/s" for v in results[k]) + " |" for k in results),
        "",
        f"Framing is `bytes.find` plus slicing, so it runs near memory speed. Parsing is bound by the stdlib "
        f"`json.loads` (C): alone, on the same pre-split lines, it does {loads:,.0f} MB/s, so `parse_line` "
        f"(UTF-8 decode, strip, loads, typed events) keeps {parse / loads:.0%} of the decoder's ceiling. The runner's "
        f"per-line work adds a flushed transcript write and the progress fold ({pipeline:,.0f} MB/s). For scale: at "
        f"that rate a 100 MB transcript takes {100 / pipeline:.1f} s of the executor's CPU.",
    ]
    return section
