#!/usr/bin/env python3
"""A tiny stand-in for the `claude` CLI in stream-json print mode, for faults the real CLI can't be made to show.

It ignores unknown argv flags, reads the prompt first (stdin to EOF; with `--input-format stream-json`, NDJSON
until the first user message, answering `initialize` like the real CLI), then behaves according to FAKE_CLAUDE_MODE
(default "ok"). `--version` prints the pinned version and exits 0. `--session-id <id>` sets the session id, otherwise
a fresh uuid4 is used. Standard library only.

Modes (FAKE_CLAUDE_MODE):
  ok            init, assistant "fake ok", result "fake ok"; exit 0.
  huge_line     init, ONE assistant event whose text is FAKE_CLAUDE_LINE_MB MiB (default 100) of 'x', written in
                1 MiB chunks, then a small result; exit 0.
  huge_result   init, then ONE result event whose "result" is FAKE_CLAUDE_LINE_MB MiB of 'x'; exit 0.
  garbage       init, `this is not json {{{`, `[SandboxDebug] something`, `{"broken": `, {"type":"future_event","x":1},
                then a normal result; exit 0.
  crash         init, one assistant text, "fatal: simulated crash" on stderr, exit 3 with no result line.
  silent        init, sleep FAKE_CLAUDE_SLEEP seconds (default 600) printing nothing, then result; exit 0.
  ignore_term   SIGTERM and SIGINT ignored, init, then sleep forever.
  grandchildren spawns `sleep` (FAKE_CLAUDE_CHILD_SLEEP seconds, default 600) three ways: a plain child, a child in a
                new session (start_new_session=True, like the real Bash tool), and a double-forked daemon (fork,
                setsid, fork, exec) reparented to PID 1. All inherit the environment. Their pids are written as a
                JSON list [plain, new_session, daemon] to FAKE_CLAUDE_PIDFILE if set. Then init, then sleep forever.
                FAKE_CLAUDE_IGNORE_TERM=1 also ignores SIGTERM/SIGINT. FAKE_CLAUDE_GRANDCHILD_STDIO=inherit (default:
                they hold the stdout/stderr pipes open, like real leaked background jobs) or devnull.
  slow_lines    init, FAKE_CLAUDE_LINES (default 10) assistant texts one every FAKE_CLAUDE_INTERVAL s (default 0.5),
                then result; exit 0.
  error_result  init, result with is_error true, api_error_status int(FAKE_CLAUDE_STATUS or 529),
                terminal_reason "api_error"; exit 1.
  stdin_echo    init, assistant and result whose text is exactly what was read from stdin; exit 0.
  background    init, system task_started, result, sleep FAKE_CLAUDE_SLEEP s (default 1), then exit 7 if stdin
                was already closed, else system task_notification (completed) and wait for stdin EOF; exit 0.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO, NoReturn

VERSION = "2.1.331"
MODEL = "fake-model"
MIB = 1024 * 1024
_HUGE_MARKER = "@@FAKE_CLAUDE_HUGE_TEXT@@"

_out: BinaryIO = sys.stdout.buffer


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def emit(event: dict[str, Any]) -> None:
    _out.write(json.dumps(event, ensure_ascii=False).encode("utf-8") + b"\n")
    _out.flush()


def emit_raw(line: str) -> None:
    _out.write(line.encode("utf-8") + b"\n")
    _out.flush()


class Fake:
    def __init__(self, session_id: str, stdin_text: str) -> None:
        self.session_id = session_id
        self.stdin_text = stdin_text
        self._msg_no = 0

    # --- event shapes -------------------------------------------------------------------------------------------

    def init_event(self) -> dict[str, Any]:
        return {
            "type": "system",
            "subtype": "init",
            "session_id": self.session_id,
            "cwd": os.getcwd(),
            "tools": ["Bash", "Write"],
            "model": MODEL,
            "permissionMode": "acceptEdits",
            "claude_code_version": VERSION,
        }

    def assistant_event(self, text: str) -> dict[str, Any]:
        self._msg_no += 1
        return {
            "type": "assistant",
            "message": {
                "id": f"msg_{self._msg_no}",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
        }

    def result_event(self, text: str, *, num_turns: int = 1) -> dict[str, Any]:
        return {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": num_turns,
            "result": text,
            "session_id": self.session_id,
            "total_cost_usd": 0.001,
            "usage": {"input_tokens": 10, "output_tokens": 5},
            "permission_denials": [],
            "terminal_reason": "completed",
        }

    # --- helpers ------------------------------------------------------------------------------------------------

    def init(self) -> None:
        emit(self.init_event())

    def emit_huge(self, event: dict[str, Any]) -> None:
        """Emit `event` with the marker string replaced by FAKE_CLAUDE_LINE_MB MiB of 'x', without building it."""
        total = int(_env_float("FAKE_CLAUDE_LINE_MB", 100.0) * MIB)
        encoded = json.dumps(event, ensure_ascii=False)
        prefix, suffix = encoded.split(_HUGE_MARKER)
        _out.write(prefix.encode("utf-8"))
        chunk = b"x" * MIB
        remaining = total
        while remaining > 0:
            n = min(remaining, MIB)
            _out.write(chunk if n == MIB else chunk[:n])
            remaining -= n
        _out.write(suffix.encode("utf-8") + b"\n")
        _out.flush()

    # --- modes --------------------------------------------------------------------------------------------------

    def mode_ok(self) -> int:
        self.init()
        emit(self.assistant_event("fake ok"))
        emit(self.result_event("fake ok"))
        return 0

    def mode_huge_line(self) -> int:
        self.init()
        self.emit_huge(self.assistant_event(_HUGE_MARKER))
        emit(self.result_event("fake huge line done"))
        return 0

    def mode_huge_result(self) -> int:
        self.init()
        self.emit_huge(self.result_event(_HUGE_MARKER))
        return 0

    def mode_garbage(self) -> int:
        self.init()
        emit_raw("this is not json {{{")
        emit_raw("[SandboxDebug] something")
        emit_raw('{"broken": ')
        emit({"type": "future_event", "x": 1})
        emit(self.result_event("fake after garbage"))
        return 0

    def mode_crash(self) -> int:
        self.init()
        emit(self.assistant_event("about to crash"))
        sys.stderr.write("fatal: simulated crash\n")
        sys.stderr.flush()
        return 3

    def mode_silent(self) -> int:
        self.init()
        time.sleep(_env_float("FAKE_CLAUDE_SLEEP", 600.0))
        emit(self.result_event("fake after silence"))
        return 0

    def mode_ignore_term(self) -> int:
        _ignore_term()
        self.init()
        _sleep_forever()

    def mode_grandchildren(self) -> int:
        if os.environ.get("FAKE_CLAUDE_IGNORE_TERM") == "1":
            _ignore_term()
        sleep_arg = os.environ.get("FAKE_CLAUDE_CHILD_SLEEP", "").strip() or "600"
        devnull = os.environ.get("FAKE_CLAUDE_GRANDCHILD_STDIO", "inherit") == "devnull"
        out = subprocess.DEVNULL if devnull else None
        argv = ["sleep", sleep_arg]
        plain = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        new_session = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        daemon = _double_fork_exec(argv, devnull=devnull)
        pids = [plain.pid, new_session.pid, daemon]
        pidfile = os.environ.get("FAKE_CLAUDE_PIDFILE")
        if pidfile:
            tmp = f"{pidfile}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(pids, fh)
            os.replace(tmp, pidfile)  # atomic: a polling reader never sees a half-written file
        self.init()
        _sleep_forever()

    def mode_slow_lines(self) -> int:
        self.init()
        count = _env_int("FAKE_CLAUDE_LINES", 10)
        interval = _env_float("FAKE_CLAUDE_INTERVAL", 0.5)
        for i in range(count):
            if i:
                time.sleep(interval)
            emit(self.assistant_event(f"line {i + 1} of {count}"))
        emit(self.result_event(f"fake {count} slow lines", num_turns=max(count, 1)))
        return 0

    def mode_error_result(self) -> int:
        self.init()
        event = self.result_event("API Error: Repeated 529 Overloaded errors")
        event["is_error"] = True
        event["api_error_status"] = _env_int("FAKE_CLAUDE_STATUS", 529)
        event["terminal_reason"] = "api_error"
        emit(event)
        return 1

    def mode_stdin_echo(self) -> int:
        self.init()
        emit(self.assistant_event(self.stdin_text))
        emit(self.result_event(self.stdin_text))
        return 0

    def mode_background(self) -> int:
        """A background task outlives the result: stdin must stay open until its task_notification (exit 7 if it
        was closed before: the real CLI would have lost its channel)."""
        self.init()
        emit({"type": "system", "subtype": "task_started", "task_id": "bg-1", "session_id": self.session_id})
        emit(self.result_event("result while a background task runs"))
        time.sleep(_env_float("FAKE_CLAUDE_SLEEP", 1.0))
        if select.select([sys.stdin], [], [], 0)[0] and not os.read(sys.stdin.fileno(), 1):
            sys.stderr.write("fake_claude: stdin was closed while a background task was running\n")
            return 7
        done = {"type": "system", "subtype": "task_notification", "task_id": "bg-1", "status": "completed"}
        emit({**done, "session_id": self.session_id})
        return 0


def _ignore_term() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _sleep_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def _double_fork_exec(argv: list[str], *, devnull: bool) -> int:
    """fork, setsid, fork, exec argv: the grandchild is reparented to PID 1 (or a subreaper). Returns its pid."""
    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:  # middle child
        try:
            os.close(read_fd)
            os.setsid()
            pid = os.fork()
            if pid == 0:  # the daemon
                try:
                    os.close(write_fd)
                    if devnull:
                        null = os.open(os.devnull, os.O_RDWR)
                        for fd in (0, 1, 2):
                            os.dup2(null, fd)
                    else:
                        null = os.open(os.devnull, os.O_RDONLY)
                        os.dup2(null, 0)
                    os.execvp(argv[0], argv)
                finally:
                    os._exit(127)
            os.write(write_fd, str(pid).encode())
            os.close(write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 64):
        data += chunk
    os.close(read_fd)
    os.waitpid(middle, 0)
    return int(data)


def _session_id_from_argv(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--session-id" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--session-id="):
            return arg.split("=", 1)[1]
    return str(uuid.uuid4())


MODES: dict[str, Callable[[Fake], int]] = {
    "ok": Fake.mode_ok,
    "huge_line": Fake.mode_huge_line,
    "huge_result": Fake.mode_huge_result,
    "garbage": Fake.mode_garbage,
    "crash": Fake.mode_crash,
    "silent": Fake.mode_silent,
    "ignore_term": Fake.mode_ignore_term,
    "grandchildren": Fake.mode_grandchildren,
    "slow_lines": Fake.mode_slow_lines,
    "error_result": Fake.mode_error_result,
    "stdin_echo": Fake.mode_stdin_echo,
    "background": Fake.mode_background,
}


def main(argv: list[str]) -> int:
    if "--version" in argv or "-v" in argv:
        sys.stdout.write(f"{VERSION} (Claude Code)\n")
        sys.stdout.flush()
        return 0
    mode = os.environ.get("FAKE_CLAUDE_MODE", "ok").strip() or "ok"
    handler = MODES.get(mode)
    if handler is None:
        sys.stderr.write(f"fake_claude: unknown FAKE_CLAUDE_MODE {mode!r}; known: {', '.join(MODES)}\n")
        return 2
    streaming = _streaming_input(argv)
    stdin_text = _read_stream_prompt() if streaming else sys.stdin.buffer.read().decode("utf-8", errors="replace")
    code = handler(Fake(_session_id_from_argv(argv), stdin_text))
    if streaming and code == 0:
        sys.stdin.buffer.read()  # like the real CLI in stream-json input mode: exit only on stdin EOF
    return code


def _streaming_input(argv: list[str]) -> bool:
    """`--input-format stream-json` or `--input-format=stream-json` (the form cc-executor passes)."""
    joined = "--input-format=stream-json" in argv
    return joined or any(a == "--input-format" and b == "stream-json" for a, b in itertools.pairwise(argv))


def _read_stream_prompt() -> str:
    """NDJSON until the first user message (its content is the prompt); `initialize` requests are answered."""
    for raw in sys.stdin.buffer:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if message.get("type") == "control_request":
            response = {"subtype": "success", "request_id": message.get("request_id"), "response": {"commands": []}}
            emit({"type": "control_response", "response": response})
        elif message.get("type") == "user":
            content = message.get("message", {}).get("content", "")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BrokenPipeError:
        # The reader went away. Point stdout at /dev/null so the interpreter's final flush doesn't raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
