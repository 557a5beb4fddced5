"""`cc-executor demo`: the whole pipeline offline (fake API, real claude, MCP stdio server), with no API key."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]


@pytest.mark.slow
async def test_demo_completes_offline_without_an_api_key(claude_bin: Path, tmp_path: Path, state_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_"))}
    env |= {"CC_EXECUTOR_CLAUDE": str(claude_bin), "TMPDIR": str(tmp_path)}

    assert env["CC_EXECUTOR_HOME"] == str(state_home)
    done = await anyio.run_process([*CLI, "demo"], env=env, check=False)

    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "turn 2 · Write: " in out and "fizzbuzz.py" in out  # progress arrived over MCP
    assert '"summary": "Wrote fizzbuzz.py and ran it."' in out  # the structured result
    assert "status           success" in out and '["fizzbuzz.py"]' in out  # the SQLite row
    assert "[tool] Bash: sleep 1 && python3 fizzbuzz.py" in out and "[result: success]" in out  # get_transcript
    assert "done: the run succeeded" in out
    assert list(tmp_path.glob("cc-executor-demo-*")) == []  # the work dir was cleaned up
    # The run stays in the user's history (CC_EXECUTOR_HOME is this test's state dir): listed, and replayable.
    listed = await anyio.run_process([*CLI, "runs", "--json"], env=env, check=False)
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["success"] and runs[0]["files_created"] == ["fizzbuzz.py"]
    short = runs[0]["run_id"][:8]
    assert f"`cc-executor show {short} --transcript` replays it" in out.splitlines()[-2] + out.splitlines()[-1]
    shown = await anyio.run_process([*CLI, "show", short, "--transcript"], env=env, check=False)
    assert shown.returncode == 0 and "fizzbuzz.py" in shown.stdout.decode()


async def test_demo_without_claude_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "CC_EXECUTOR_CLAUDE": "", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    done = await anyio.run_process(
        [sys.executable, "-m", "cc_executor.cli", "demo", "--claude", str(tmp_path / "nope")], env=env, check=False
    )

    assert done.returncode == 1
    assert "was not found" in done.stderr.decode() and "npm install" in done.stderr.decode()
