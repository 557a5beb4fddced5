"""The root-only cases (bypassPermissions refused as root without IS_SANDBOX=1) seen from the other side: as an
ordinary user (nobody, through `setpriv`) the library, the CLI and doctor accept bypassPermissions without
IS_SANDBOX once the operator's policy allows it, and the real CLI runs in that mode. Skipped unless the suite runs
as root (only root can switch to another user) with setpriv available."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor.engine.process import marked_processes
from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic


def private_ancestor(*paths: Path) -> Path | None:
    """The first directory above ``paths`` that other users cannot enter (e.g. a checkout cloned into a 0700
    ``mktemp -d`` or under /root): nobody could not load this interpreter's packages from there."""
    for path in paths:
        for folder in [path, *path.parents]:
            if folder.is_dir() and not folder.stat().st_mode & 0o001:
                return folder
    return None


_PRIVATE = private_ancestor(Path(sys.prefix), Path(__file__).resolve().parent.parent)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
        reason="needs root (to become another user) and setpriv",
    ),
    pytest.mark.skipif(
        _PRIVATE is not None,
        reason=f"nobody cannot enter {_PRIVATE} (a private directory above the checkout or its venv)",
    ),
]

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
ALLOW_BYPASS = {"CC_EXECUTOR_ALLOWED_PERMISSION_MODES": "acceptEdits,bypassPermissions"}


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory nobody owns, outside pytest's root-only (0700) tmp tree."""
    top = Path(tempfile.mkdtemp(prefix="cc-executor-nonroot-"))
    top.chmod(0o755)
    base = top / "nobody"
    base.mkdir()
    os.chown(base, NOBODY, NOBODY)
    try:
        yield base
    finally:
        shutil.rmtree(top, ignore_errors=True)


def chown_tree(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), NOBODY, NOBODY)
    os.chown(path, NOBODY, NOBODY)


def nobody_env(fake_api: FakeAnthropic, base: Path, claude_bin: Path) -> dict[str, str]:
    """The offline CLI environment, for nobody: its own HOME and state dir, no IS_SANDBOX."""
    env = offline_env(fake_api.base_url, base / "home")
    chown_tree(base / "home")
    env |= {"CC_EXECUTOR_HOME": str(base / "state"), "CC_EXECUTOR_CLAUDE": str(claude_bin), **ALLOW_BYPASS}
    env.pop("IS_SANDBOX", None)
    return env


def workdir_of(base: Path) -> Path:
    work = base / "work"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    return work


async def as_nobody(env: dict[str, str], *args: str, cwd: Path) -> Any:
    return await anyio.run_process([*AS_NOBODY, *args], env=env, cwd=cwd, check=False)


async def test_the_cli_runs_bypass_as_a_normal_user_without_is_sandbox(
    fake_api: FakeAnthropic, nobody_dir: Path, claude_bin: Path
) -> None:
    """The counterpart of test_cli's root case: no IS_SANDBOX, yet claude really runs in bypassPermissions."""
    fake_api.scenario = scenarios.write_file("by-nobody.txt", "hi\n")
    env, work = nobody_env(fake_api, nobody_dir, claude_bin), workdir_of(nobody_dir)
    cli = [sys.executable, "-m", "cc_executor.cli", "run", "write it", "--cwd", str(work), "--json"]
    done = await as_nobody(env, *cli, "--permission-mode", "bypassPermissions", cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["status"] == "success" and result["files_created"] == ["by-nobody.txt"]
    assert (work / "by-nobody.txt").stat().st_uid == NOBODY
    transcript = Path(result["transcript_path"]).read_text().splitlines()
    assert json.loads(transcript[0])["permissionMode"] == "bypassPermissions"
    assert (nobody_dir / "state").stat().st_uid == NOBODY and (nobody_dir / "state").stat().st_mode & 0o777 == 0o700
    assert marked_processes(result["run_id"]) == []


async def test_the_library_runs_bypass_as_a_normal_user_without_is_sandbox(
    fake_api: FakeAnthropic, nobody_dir: Path, claude_bin: Path
) -> None:
    """The counterpart of test_api's root case, through cc_execute."""
    fake_api.scenario = scenarios.text("bypassed")
    env, work = nobody_env(fake_api, nobody_dir, claude_bin), workdir_of(nobody_dir)
    script = (
        "import anyio, json, os, sys\n"
        "from cc_executor import CCExecutorConfig, cc_execute\n"
        "async def main() -> None:\n"
        "    config = CCExecutorConfig(permission_mode='bypassPermissions', model='claude-sonnet-4-5')\n"
        "    result = await cc_execute('hi', cwd=sys.argv[1], config=config)\n"
        "    print(json.dumps({'uid': os.geteuid(), 'status': result.status, 'run_id': result.run_id,\n"
        "                      'transcript': result.transcript_path}))\n"
        "anyio.run(main)\n"
    )
    done = await as_nobody(env, sys.executable, "-c", script, str(work), cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    assert out["uid"] == NOBODY and out["status"] == "success"
    first = json.loads(Path(out["transcript"]).read_text().splitlines()[0])
    assert first["permissionMode"] == "bypassPermissions"
    assert marked_processes(out["run_id"]) == []


async def test_doctor_says_every_mode_is_available_to_a_normal_user(
    fake_api: FakeAnthropic, nobody_dir: Path, claude_bin: Path
) -> None:
    """The counterpart of test_cli_doctor's root case."""
    env, work = nobody_env(fake_api, nobody_dir, claude_bin), workdir_of(nobody_dir)
    cli = [sys.executable, "-m", "cc_executor.cli", "doctor", "--json", "--permission-mode", "bypassPermissions"]
    done = await as_nobody(env, *cli, cwd=work)
    checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
    assert checks["root + bypass"]["status"] == "ok" and "not running as root" in checks["root + bypass"]["detail"]
    assert checks["state dir"]["status"] == "ok" and checks["policy"]["status"] == "ok"
    assert "bypassPermissions" in checks["policy"]["detail"]
