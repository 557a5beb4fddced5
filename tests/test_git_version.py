"""A git too old for what isolation uses: doctor says so, and a run or a merge is refused naming the minimum, with
nothing created or touched. (A stand-in ``git`` answers ``--version`` with an old number and hands every other
command to the real git: an old git is a fault this machine's git cannot show.)"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest

from cc_executor import CCExecutorConfig, InvalidRequestError, cc_execute
from cc_executor.errors import WorktreeError
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import branches, git, make_repo, status
from cc_executor.worktrees import merge_run

pytestmark = pytest.mark.anyio


def old_git(folder: Path, version: str) -> Path:
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "git"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "git version {version}"; exit 0; fi\nexec {real} "$@"\n'
    )
    script.chmod(0o755)
    return folder


async def test_doctor_names_what_an_old_git_cannot_do(
    cli_env: dict[str, str], claude_bin: Path, tmp_path: Path
) -> None:
    env = {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}
    for version, says in [("2.30.2", "isolation='worktree' needs git 2.31+"), ("2.35.1", "merge_run needs git 2.38+")]:
        bin_dir = old_git(tmp_path / version, version)
        path = f"{bin_dir}{os.pathsep}{env['PATH']}"
        done = await anyio.run_process(
            [sys.executable, "-m", "cc_executor.cli", "doctor", "--json"], env={**env, "PATH": path}, check=False
        )
        check = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "git")
        assert check["status"] == "warn" and f"git {version}" in check["detail"] and says in check["detail"]
        assert "newer git" in check["fix"]


async def test_an_isolated_run_and_a_merge_are_refused_by_a_too_old_git(
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    tmp_path: Path,
    state_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(tmp_path / "repo")
    real_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{old_git(tmp_path / 'v2.30', '2.30.2')}{os.pathsep}{real_path}")
    with pytest.raises(
        InvalidRequestError, match=r"isolation='worktree' needs git 2\.31 or newer; this git is 2\.30\.2"
    ):
        await cc_execute("task", config=config, cwd=repo, isolation="worktree")
    assert branches(repo) == ["main"] and not (state_home / "worktrees").exists()

    monkeypatch.setenv("PATH", real_path)
    fake_api.scenario = scenarios.bash("echo hi > hi.txt")
    done = await cc_execute(
        "write", config=config.model_copy(update={"allowed_tools": ["Bash"]}), cwd=repo, isolation="worktree"
    )
    monkeypatch.setenv("PATH", f"{old_git(tmp_path / 'v2.35', '2.35.1')}{os.pathsep}{real_path}")
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(WorktreeError, match=r"merge_run .* needs git 2\.38 or newer; this git is 2\.35\.1") as refused:
        await merge_run(done.run_id)
    assert f"git merge {done.branch}" in str(refused.value)
    assert git(repo, "rev-parse", "HEAD") == head and status(repo) == ""
