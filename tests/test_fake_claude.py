"""Self-tests for tests/fake_claude.py, the fake `claude` used for faults the real CLI can't be made to show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FAKE = Path(__file__).with_name("fake_claude.py")
ARGS = ["-p", "--output-format", "stream-json", "--verbose", "--model", "x", "--permission-mode", "acceptEdits"]


def run_fake(mode: str, stdin: str = "hello", **env: str) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "FAKE_CLAUDE_MODE": mode, **env}
    return subprocess.run(
        [sys.executable, str(FAKE), *ARGS],
        input=stdin.encode(),
        capture_output=True,
        env=full_env,
        timeout=20,
        check=False,
    )


def events(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_script_is_executable_and_reports_version() -> None:
    assert os.access(FAKE, os.X_OK)
    proc = subprocess.run([str(FAKE), "--version"], capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "2.1.331 (Claude Code)"


def test_ok_mode_stream_parses() -> None:
    proc = run_fake("ok")
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    assert [e["type"] for e in evs] == ["system", "assistant", "result"]
    init, assistant, result = evs
    assert init["subtype"] == "init"
    assert init["claude_code_version"] == "2.1.331"
    assert init["cwd"] == os.getcwd()
    assert assistant["message"]["content"] == [{"type": "text", "text": "fake ok"}]
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["result"] == "fake ok"
    assert result["terminal_reason"] == "completed"
    assert init["session_id"] == assistant["session_id"] == result["session_id"]


def test_session_id_flag_is_honoured() -> None:
    sid = "11111111-2222-3333-4444-555555555555"
    proc = subprocess.run(
        [sys.executable, str(FAKE), *ARGS, "--session-id", sid],
        input=b"",
        capture_output=True,
        env={**os.environ, "FAKE_CLAUDE_MODE": "ok"},
        timeout=20,
        check=False,
    )
    assert {e["session_id"] for e in events(proc.stdout)} == {sid}


def test_garbage_mode_has_garbage_lines() -> None:
    proc = run_fake("garbage")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert "this is not json {{{" in lines
    assert "[SandboxDebug] something" in lines
    assert '{"broken": ' in lines
    assert json.loads(lines[0])["subtype"] == "init"
    assert {"type": "future_event", "x": 1} in [json.loads(x) for x in lines if x.startswith('{"type"')]
    assert json.loads(lines[-1])["type"] == "result"


def test_crash_mode_exits_3_without_result() -> None:
    proc = run_fake("crash")
    assert proc.returncode == 3
    assert b"fatal: simulated crash" in proc.stderr
    assert [e["type"] for e in events(proc.stdout)] == ["system", "assistant"]


def test_stdin_echo_mode_echoes_the_prompt() -> None:
    prompt = "line one\nline two — ünïcode\n"
    proc = run_fake("stdin_echo", stdin=prompt)
    assert proc.returncode == 0, proc.stderr
    assert events(proc.stdout)[-1]["result"] == prompt


def test_huge_line_mode_emits_one_giant_line() -> None:
    proc = run_fake("huge_line", FAKE_CLAUDE_LINE_MB="2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert 2 * 1024 * 1024 < len(lines[1]) < 2 * 1024 * 1024 + 1024
    giant = json.loads(lines[1])
    assert giant["type"] == "assistant"
    assert giant["message"]["content"][0]["text"] == "x" * (2 * 1024 * 1024)
    assert json.loads(lines[2])["type"] == "result"


def test_huge_result_mode_giant_line_is_the_result() -> None:
    proc = run_fake("huge_result", FAKE_CLAUDE_LINE_MB="1")
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    assert [e["type"] for e in evs] == ["system", "result"]
    assert evs[-1]["result"] == "x" * (1024 * 1024)


def test_error_result_mode() -> None:
    proc = run_fake("error_result", FAKE_CLAUDE_STATUS="500")
    assert proc.returncode == 1
    result = events(proc.stdout)[-1]
    assert result["is_error"] is True
    assert result["api_error_status"] == 500
    assert result["terminal_reason"] == "api_error"


def test_slow_lines_mode() -> None:
    proc = run_fake("slow_lines", FAKE_CLAUDE_LINES="3", FAKE_CLAUDE_INTERVAL="0.01")
    assert proc.returncode == 0, proc.stderr
    assert [e["type"] for e in events(proc.stdout)] == ["system", "assistant", "assistant", "assistant", "result"]


def test_unknown_mode_fails_loudly() -> None:
    proc = run_fake("no_such_mode")
    assert proc.returncode == 2
    assert b"no_such_mode" in proc.stderr
