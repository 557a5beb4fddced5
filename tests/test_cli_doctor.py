"""`cc-executor doctor` as a user runs it: each check it can be made to fail, fails, with a fix; it never hangs."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor.doctor import run_bounded
from cc_executor.engine import process
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]
_CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


@pytest.fixture
def env(cli_env: dict[str, str], claude_bin: Path) -> dict[str, str]:
    return {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}


async def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    done = await anyio.run_process([*CLI, "doctor", "--json", *args], env=env, check=False)
    report = json.loads(done.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is (done.returncode == 0)
    return done.returncode, checks


async def test_a_working_setup_passes(env: dict[str, str], claude_bin: Path, state_home: Path) -> None:
    code, checks = await doctor(env)

    assert code == 0, checks
    assert checks["claude"]["status"] == "ok" and str(claude_bin) in checks["claude"]["detail"]
    assert checks["claude version"]["status"] == "ok" and "2.1." in checks["claude version"]["detail"]
    assert checks["credentials"] == {
        "name": "credentials",
        "status": "ok",
        "detail": "API key in $ANTHROPIC_API_KEY",
        "fix": None,
    }
    assert checks["nested session"]["status"] == "ok"
    assert checks["state dir"]["status"] == "ok" and str(state_home) in checks["state dir"]["detail"]
    assert checks["sqlite"]["status"] == "ok"
    assert checks["mcp server"]["status"] == "ok"
    assert checks["git"]["status"] == "ok" and checks["git"]["detail"].startswith("git 2.")
    assert checks["worktree engine"]["status"] == "ok" and "in-process: pygit2" in checks["worktree engine"]["detail"]


@pytest.mark.parametrize(
    ("setting", "status", "said"), [("cli", "ok", "git CLI for every step"), ("fast", "fail", "'fast'")]
)
async def test_the_worktree_engine_setting_is_shown_and_an_unknown_one_fails(
    env: dict[str, str], setting: str, status: str, said: str
) -> None:
    code, checks = await doctor({**env, "CC_EXECUTOR_WORKTREE_GIT": setting})
    assert checks["worktree engine"]["status"] == status and said in checks["worktree engine"]["detail"]
    assert (code == 0) is (status == "ok")


async def test_missing_cli_fails_with_where_it_looked_and_how_to_install(env: dict[str, str]) -> None:
    code, checks = await doctor({**env, "CC_EXECUTOR_CLAUDE": "/nonexistent", "PATH": ""})

    assert code == 1
    claude = checks["claude"]
    assert claude["status"] == "fail" and "CC_EXECUTOR_CLAUDE=/nonexistent" in claude["detail"]
    assert "npm install -g @anthropic-ai/claude-code" in claude["fix"]
    assert checks["node"]["status"] == "warn" and checks["npm"]["status"] == "warn"

    code, checks = await doctor(env, "--claude", "/nonexistent/claude")
    assert code == 1 and checks["claude"]["status"] == "fail" and "/nonexistent/claude" in checks["claude"]["detail"]
    assert checks["claude version"]["status"] == "skip"


async def test_an_unsupported_cli_version_fails(env: dict[str, str], tmp_path: Path) -> None:
    old = tmp_path / "claude"
    old.write_text("#!/bin/sh\necho '2.0.5 (Claude Code)'\n")
    old.chmod(0o755)

    code, checks = await doctor({**env, "CC_EXECUTOR_CLAUDE": str(old)})

    assert code == 1
    assert checks["claude version"]["status"] == "fail"
    assert "2.0.5 is older than the minimum supported 2.1.0" in checks["claude version"]["detail"]
    assert "npm install -g @anthropic-ai/claude-code@latest" in checks["claude version"]["fix"]


async def test_no_credentials_fails_and_a_logged_in_cli_passes(env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    bare = {k: v for k, v in env.items() if k not in _CREDENTIAL_VARS} | {"HOME": str(home)}

    code, checks = await doctor(bare)

    assert code == 1
    assert checks["credentials"]["status"] == "fail"
    assert f"{home}/.claude.json" in checks["credentials"]["detail"]
    assert "/login" in checks["credentials"]["fix"] and "ANTHROPIC_API_KEY" in checks["credentials"]["fix"]

    (home / ".claude.json").write_text(json.dumps({"oauthAccount": {"emailAddress": "dev@example.com"}}))
    code, checks = await doctor(bare)
    assert checks["credentials"]["status"] == "ok" and "dev@example.com" in checks["credentials"]["detail"]


async def test_a_nested_claude_code_session_is_a_warning_with_an_explanation(env: dict[str, str]) -> None:
    code, checks = await doctor({**env, "CLAUDECODE": "1"})

    assert code == 0  # a warning, not a failure: cc-executor strips it for its children
    nested = checks["nested session"]
    assert nested["status"] == "warn" and "CLAUDECODE=1" in nested["detail"]
    assert "strips CLAUDECODE" in nested["fix"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root is refused bypass mode")
async def test_bypass_as_root_without_is_sandbox_fails(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k != "IS_SANDBOX"}

    code, checks = await doctor(bare, "--permission-mode", "bypassPermissions")
    assert code == 1 and checks["root + bypass"]["status"] == "fail"
    assert "IS_SANDBOX=1" in checks["root + bypass"]["fix"]

    code, checks = await doctor({**bare, "IS_SANDBOX": "1"}, "--permission-mode", "bypassPermissions")
    assert checks["root + bypass"]["status"] == "ok"


async def test_an_unwritable_state_dir_fails_and_skips_sqlite(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    code, checks = await doctor({**env, "CC_EXECUTOR_HOME": str(blocker / "state")})

    assert code == 1
    assert checks["state dir"]["status"] == "fail" and "CC_EXECUTOR_HOME" in checks["state dir"]["fix"]
    assert checks["sqlite"]["status"] == "skip"


async def test_plain_output_lists_each_check_and_its_fix(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k not in _CREDENTIAL_VARS}
    bare["HOME"] = bare["CLAUDE_CODE_TMPDIR"]  # an existing dir without any login

    done = await anyio.run_process([*CLI, "doctor"], env=bare, check=False)

    lines = done.stdout.decode().splitlines()
    assert done.returncode == 1
    assert any(line.startswith("OK    claude ") for line in lines)
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAIL  credentials"))
    assert "fix: log in once" in lines[failed + 1]
    assert lines[-1] == "1 check failed"


async def test_smoke_runs_one_turn_through_the_library(fake_api: FakeAnthropic, env: dict[str, str]) -> None:
    fake_api.scenario = scenarios.text("pong")

    code, checks = await doctor(env, "--smoke", "--model", "claude-sonnet-4-5")

    assert code == 0, checks
    assert checks["smoke run"]["status"] == "ok" and "'pong'" in checks["smoke run"]["detail"]


async def test_bounded_commands_never_hang() -> None:
    started = time.monotonic()

    marked = {**os.environ, "CC_EXECUTOR_RUN_ID": "doctor-t"}
    output = await run_bounded(["sh", "-c", "sleep 30 & sleep 30"], env=marked, timeout_s=0.5)

    assert output.returncode is None and time.monotonic() - started < 5
    await anyio.sleep(0.2)
    assert process.marked_processes("doctor-t") == []  # the whole group was killed
