"""argv and environment are pure functions of the request: checked without a process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cc_executor import ClaudeNotFoundError, build_request
from cc_executor.engine.command import build_argv, build_env, candidate_paths, find_claude, redact_argv
from cc_executor.models import CCExecutorConfig


def test_argv_carries_the_policy_but_never_the_prompt(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    config = CCExecutorConfig(
        model="m",
        permission_mode="plan",
        allowed_tools=["Bash(git log:*)", "Read"],
        disallowed_tools=["WebFetch"],
        add_dirs=[extra],
        max_turns=7,
        max_budget_usd=1.5,
        append_system_prompt="be brief",
    )
    request = build_request("secret prompt text", config=config, cwd=tmp_path, return_json=True)
    argv = build_argv(request, "/bin/claude")
    assert argv[:5] == ["/bin/claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert "secret prompt text" not in " ".join(argv)
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--permission-mode"] == "plan" and pairs["--model"] == "m" and pairs["--max-turns"] == "7"
    assert pairs["--max-budget-usd"] == "1.5" and pairs["--add-dir"] == str(extra.resolve())
    assert argv[argv.index("--allowedTools") + 1 : argv.index("--allowedTools") + 3] == ["Bash(git log:*)", "Read"]
    assert json.loads(pairs["--json-schema"])["required"] == ["result", "summary"]


def test_resume_and_fork_flags(tmp_path: Path) -> None:
    request = build_request("go on", cwd=tmp_path, resume_session_id="abc", fork_session=True)
    assert build_argv(request, "claude")[-3:] == ["--resume", "abc", "--fork-session"]


def test_env_strips_host_session_and_adds_the_marker(tmp_path: Path) -> None:
    request = build_request("x", cwd=tmp_path, config=CCExecutorConfig(env={"EXTRA": "1"}))
    env = build_env(request, {"PATH": "/bin", "CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": "s", "KEEP": "k"})
    assert env == {"PATH": "/bin", "KEEP": "k", "EXTRA": "1", "CC_EXECUTOR_RUN_ID": request.run_id}


def test_recorded_argv_masks_secrets() -> None:
    argv = ["claude", "--settings", '{"env":{"ANTHROPIC_API_KEY":"sk-ant-abcdef123456"}}', "token=hunter2", "plain"]
    masked = redact_argv(argv)
    assert "sk-ant-abcdef123456" not in " ".join(masked) and "hunter2" not in " ".join(masked)
    assert masked[0] == "claude" and masked[-1] == "plain"


def test_lookup_order_and_a_clear_error(tmp_path: Path) -> None:
    places = candidate_paths("/explicit/claude", {"CC_EXECUTOR_CLAUDE": "/env/claude", "PATH": "", "HOME": "/h"})
    assert places[:2] == ["/explicit/claude", "/env/claude"] and "/h/.claude/local/claude" in places
    with pytest.raises(ClaudeNotFoundError, match="not an executable") as caught:
        find_claude(str(tmp_path / "nope"))
    assert "CC_EXECUTOR_CLAUDE" in str(caught.value) and "npm install" in str(caught.value)
