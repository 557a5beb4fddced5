"""`cc-executor demo`: the whole pipeline offline (fake API, real claude, MCP stdio server), with no API key."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_demo_completes_offline_without_an_api_key(claude_bin: Path, tmp_path: Path, state_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_"))}
    env |= {"CC_EXECUTOR_CLAUDE": str(claude_bin), "TMPDIR": str(tmp_path)}

    done = await anyio.run_process([sys.executable, "-m", "cc_executor.cli", "demo"], env=env, check=False)

    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "turn 2 · Write: " in out and "fizzbuzz.py" in out  # progress arrived over MCP
    assert '"summary": "Wrote fizzbuzz.py and ran it."' in out  # the structured result
    assert "status           success" in out and '["fizzbuzz.py"]' in out  # the SQLite row
    assert "[tool] Bash: sleep 1 && python3 fizzbuzz.py" in out and "[result: success]" in out  # get_transcript
    assert "done: the run succeeded" in out
    assert list(tmp_path.glob("cc-executor-demo-*")) == []  # cleaned up
    assert not (state_home / "runs.db").exists()  # the user's own run history was not touched


async def test_demo_without_claude_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "CC_EXECUTOR_CLAUDE": "", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    done = await anyio.run_process(
        [sys.executable, "-m", "cc_executor.cli", "demo", "--claude", str(tmp_path / "nope")], env=env, check=False
    )

    assert done.returncode == 1
    assert "was not found" in done.stderr.decode() and "npm install" in done.stderr.decode()
