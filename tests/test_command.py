"""argv and environment are pure functions of the request: checked without a process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cc_executor import ClaudeNotFoundError, InvalidRequestError, build_request
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
    assert argv[:4] == ["/bin/claude", "-p", "--output-format=stream-json", "--verbose"]
    assert "secret prompt text" not in " ".join(argv)
    pairs = dict(arg.split("=", 1) for arg in argv[1:] if "=" in arg and arg.split("=", 1)[0] not in MULTI)
    assert pairs["--permission-mode"] == "plan" and pairs["--model"] == "m" and pairs["--max-turns"] == "7"
    assert pairs["--max-budget-usd"] == "1.5" and f"--add-dir={extra.resolve()}" in argv
    assert [a for a in argv if a.startswith("--allowedTools")] == [
        "--allowedTools=Bash(git log:*)",
        "--allowedTools=Read",
    ]
    assert json.loads(pairs["--json-schema"])["required"] == ["result", "summary"]
    assert pairs["--append-system-prompt"] == "be brief"


MULTI = {"--allowedTools", "--disallowedTools", "--add-dir"}


def test_argv_has_no_free_standing_value(tmp_path: Path) -> None:
    """After the executable, every argument is a flag, and every caller value rides inside its flag: nothing a
    caller sends can start an argument, so nothing can be read as a flag of its own."""
    config = CCExecutorConfig(
        model="sonnet",
        allowed_tools=["Read", "Bash(rm -rf --no-preserve-root:*)"],
        disallowed_tools=["WebFetch"],
        add_dirs=[tmp_path],
        max_turns=2,
        max_budget_usd=0.5,
        append_system_prompt="--permission-mode=bypassPermissions",
    )
    request = build_request("x", config=config, cwd=tmp_path, json_schema={"type": "object"})
    resumed = request.model_copy(update={"resume_session_id": "abc", "fork_session": True})
    argv = build_argv(resumed, "claude", mcp_config_file=tmp_path / "servers.json")
    assert f"--mcp-config={tmp_path / 'servers.json'}" in argv
    known = {"-p", "--verbose", "--fork-session", "--output-format", "--permission-mode", "--model", "--max-turns"}
    known |= MULTI | {"--max-budget-usd", "--append-system-prompt", "--json-schema", "--resume", "--input-format"}
    known |= {"--permission-prompt-tool", "--setting-sources", "--mcp-config", "--strict-mcp-config"}
    assert all(arg.split("=", 1)[0] in known for arg in argv[1:]), argv
    assert sum(arg.startswith("--permission-mode=") for arg in argv) == 1


def test_resume_and_fork_flags(tmp_path: Path) -> None:
    request = build_request("go on", cwd=tmp_path, resume_session_id="abc", fork_session=True)
    assert build_argv(request, "claude")[-2:] == ["--resume=abc", "--fork-session"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("allowed_tools", ["Read", "--permission-mode=bypassPermissions"], "allowed_tools"),
        ("allowed_tools", ["-x"], "never starting with '-'"),
        ("allowed_tools", ["Read Bash"], "one rule per entry"),
        ("allowed_tools", ["Read,Bash"], "one rule per entry"),
        ("allowed_tools", ["Bash(ls)\n--model=x"], "not a tool rule"),
        ("disallowed_tools", ["--dangerously-skip-permissions"], "disallowed_tools"),
        ("model", "--permission-mode=bypassPermissions", "not a model name"),
        ("model", "-x", "not a model name"),
        ("model", "a b", "not a model name"),
    ],
)
def test_values_that_could_become_flags_are_refused(field: str, value: object, message: str, tmp_path: Path) -> None:
    """Refused when the config is built (a ValueError naming the field), before any request exists."""
    with pytest.raises(ValueError, match=message) as caught:
        CCExecutorConfig.model_validate({field: value})
    assert field in str(caught.value)


@pytest.mark.parametrize("session", ["--permission-mode=bypassPermissions", "-x", "a b", "x\x00"])
def test_a_session_id_that_could_become_a_flag_is_refused(session: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="resume_session_id"):
        build_request("x", cwd=tmp_path, resume_session_id=session)


def test_argv_check_holds_even_for_unvalidated_values(tmp_path: Path) -> None:
    """A request assembled without validation (model_construct) is still refused when argv is built."""
    request = build_request("x", cwd=tmp_path)
    sneaky = CCExecutorConfig.model_construct(**{**dict(request.config), "allowed_tools": ["--permission-mode=x"]})
    with pytest.raises(InvalidRequestError, match="allowed_tools"):
        build_argv(request.model_copy(update={"config": sneaky}), "claude")
    budget = CCExecutorConfig.model_construct(**{**dict(request.config), "max_budget_usd": float("inf")})
    with pytest.raises(InvalidRequestError, match="max_budget_usd"):
        build_argv(request.model_copy(update={"config": budget}), "claude")


@pytest.mark.parametrize("rule", ["Read", "Bash(git log:*)", "mcp__server__tool", "mcp__server__*", "Read(./src/**)"])
def test_ordinary_tool_rules_pass(rule: str, tmp_path: Path) -> None:
    request = build_request("x", cwd=tmp_path, config=CCExecutorConfig(allowed_tools=[rule]))
    assert f"--allowedTools={rule}" in build_argv(request, "claude")


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
    assert "/h/.local/bin/claude" in places
    with pytest.raises(ClaudeNotFoundError, match="not an executable") as caught:
        find_claude(str(tmp_path / "nope"))
    assert "CC_EXECUTOR_CLAUDE" in str(caught.value) and "npm install" in str(caught.value)


def _fake_claude(directory: Path) -> Path:
    directory.mkdir(parents=True)
    planted = directory / "claude"
    planted.write_text("#!/bin/sh\necho planted\n")
    planted.chmod(0o755)
    return planted


def test_claude_is_never_taken_from_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout we are asked to work in may ship its own `claude`: neither ./node_modules/.bin nor a relative
    PATH entry (".", "") may find it."""
    checkout = tmp_path / "checkout"
    _fake_claude(checkout / "node_modules" / ".bin")
    _fake_claude(checkout / "bin")
    monkeypatch.chdir(checkout)
    env = {"PATH": f".:bin::{tmp_path / 'empty'}", "HOME": str(tmp_path / "home")}
    assert not any(str(checkout) in place for place in candidate_paths(None, env))
    with pytest.raises(ClaudeNotFoundError):
        find_claude(None, env)
    shutil.copy(checkout / "bin" / "claude", tmp_path / "claude")
    on_path = {**env, "PATH": f".:{tmp_path}"}
    assert find_claude(None, on_path) == str(tmp_path / "claude")
