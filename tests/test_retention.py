"""Retention: `cc-executor prune` and CC_EXECUTOR_RETENTION_DAYS delete old finished runs (rows, attempts and
transcripts together) and never a live one; doctor shows the state dir's size; the server forgets finished runs."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from cc_executor_mcp import run_tools
from cc_executor_mcp.app import create_server
from cc_executor_mcp.schemas import RunOptions
from cc_executor_mcp.settings import ServerSettings, SettingsError
from cc_executor_mcp.state import lifespan_for
from mcp import Client

from cc_executor.api import build_request, cc_execute, open_store, prune_runs
from cc_executor.errors import InvalidRequestError
from cc_executor.models import CCExecutorConfig, RunStatus
from cc_executor.retention import state_size
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]


async def finished_runs(config: CCExecutorConfig, workdir: Path, fake_api: FakeAnthropic) -> dict[str, str]:
    """One successful and one failed run through the real CLI: {status: run_id}; both have transcripts."""
    fake_api.routes = {"fails": scenarios.api_error(400)}
    good = await cc_execute("works", cwd=workdir, config=config)
    bad = await cc_execute("fails", cwd=workdir, config=config, check=False)
    assert (good.status, bad.status) == (RunStatus.SUCCESS, RunStatus.FAILED)
    return {"success": good.run_id, "failed": bad.run_id}


def transcript_names(state_home: Path) -> set[str]:
    folder = state_home / "transcripts"
    return {p.name.split(".")[0] for p in folder.iterdir()} if folder.is_dir() else set()


async def queued_run(workdir: Path) -> str:
    """A row whose owner (this process) is alive: it must survive every prune."""
    request = build_request("still queued", cwd=workdir)
    async with open_store() as store:
        await store.create_run(request, argv=[], owner_pid=os.getpid())
    return request.run_id


async def test_prune_deletes_rows_attempts_and_transcripts_but_never_a_live_run(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    ids = await finished_runs(config, workdir, fake_api)
    live = await queued_run(workdir)
    assert set(ids.values()) <= transcript_names(state_home)

    dry = await prune_runs("0s", dry_run=True)
    assert sorted(dry.run_ids) == sorted(ids.values()) and dry.bytes_freed > 0
    async with open_store() as store:
        assert len(await store.list_runs()) == 3  # a dry run deletes nothing

    failed_only = await prune_runs(timedelta(0), statuses=["failed"])
    assert failed_only.run_ids == [ids["failed"]] and failed_only.statuses == {"failed": 1}
    rest = await prune_runs("0s")
    assert rest.run_ids == [ids["success"]] and rest.bytes_freed > 0

    async with open_store() as store:
        assert [r.run_id for r in await store.list_runs()] == [live]
        assert await store.list_attempts(ids["success"]) == []
    assert transcript_names(state_home) & set(ids.values()) == set()
    assert (await prune_runs("30d")).count == 0  # nothing that old


async def test_prune_refuses_what_it_must_not_do(workdir: Path) -> None:
    with pytest.raises(InvalidRequestError, match="status: running runs are never pruned"):
        await prune_runs("1d", statuses=["running"])
    with pytest.raises(InvalidRequestError, match="status: 'exploded' is not a run status"):
        await prune_runs("1d", statuses=["exploded"])
    with pytest.raises(InvalidRequestError, match="older_than: '99999999999d' is too far back"):
        await prune_runs("99999999999d")


async def test_cli_prune_dry_run_then_prune(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    ids = await finished_runs(config, workdir, fake_api)
    env = {**os.environ, "CC_EXECUTOR_HOME": str(state_home)}

    dry = await anyio.run_process([*CLI, "prune", "--older-than", "0s", "--dry-run"], env=env, check=False)
    assert dry.returncode == 0 and set(dry.stdout.decode().split()) == set(ids.values())
    assert "would delete 2 run(s) (1 failed, 1 success)" in dry.stderr.decode()
    assert set(ids.values()) <= transcript_names(state_home)

    done = await anyio.run_process([*CLI, "prune", "--older-than", "0s", "--status", "success"], env=env, check=False)
    assert done.returncode == 0 and "deleted 1 run(s) (1 success)" in done.stderr.decode()
    listed = await anyio.run_process([*CLI, "runs", "--json"], env=env, check=False)
    assert [ids["failed"]] == [r["run_id"] for r in json.loads(listed.stdout)]
    assert ids["success"] not in transcript_names(state_home)


async def test_the_server_prunes_at_start_when_retention_is_set(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    ids = await finished_runs(config, workdir, fake_api)
    live = await queued_run(workdir)
    await anyio.sleep(0.2)
    tiny = ServerSettings.from_env({"CC_EXECUTOR_RETENTION_DAYS": "0.000001"})  # 86 ms
    assert tiny.retention_days == 0.000001
    async with Client(create_server(tiny)) as client:
        with anyio.fail_after(15):
            while True:
                listed = await client.call_tool("list_runs", {})
                assert listed.structured_content is not None
                if [r["run_id"] for r in listed.structured_content["runs"]] == [live]:
                    break
                await anyio.sleep(0.1)
    assert transcript_names(state_home) & set(ids.values()) == set()
    with pytest.raises(SettingsError, match="CC_EXECUTOR_RETENTION_DAYS"):
        ServerSettings.from_env({"CC_EXECUTOR_RETENTION_DAYS": "forever"})
    with pytest.raises(SettingsError, match="CC_EXECUTOR_RETENTION_DAYS"):
        ServerSettings.from_env({"CC_EXECUTOR_RETENTION_DAYS": "-3"})


async def test_doctor_shows_the_state_dirs_size(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    await finished_runs(config, workdir, fake_api)
    size = state_size(state_home)
    assert size.transcript_files >= 2 and size.transcript_bytes > 0 and size.database_bytes > 0
    env = {**os.environ, "CC_EXECUTOR_HOME": str(state_home), "CC_EXECUTOR_RETENTION_DAYS": "30"}
    done = await anyio.run_process([*CLI, "doctor", "--json"], env=env, check=False)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    line = checks["state size"]["detail"]
    assert checks["state size"]["status"] == "ok" and str(state_home) in line
    assert f"{size.transcript_files} transcript file(s)" in line and "older than 30 days" in line


async def test_the_server_forgets_finished_runs_it_started(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path
) -> None:
    settings = ServerSettings(cli_env=config.env, claude_path=config.claude_path, model=config.model)
    async with lifespan_for(settings)(None) as state:
        submission = await run_tools.make_request(state, "hi", RunOptions(cwd=str(workdir)))
        run_id = await run_tools.submit(state, submission)
        assert run_id in state.submitted
        assert await (await state.backend()).wait(run_id, 60) is not None
        for _ in range(200):  # the forgetting happens in a task of its own, right after the run ends
            if run_id not in state.submitted:
                break
            await anyio.sleep(0.05)
        assert run_id not in state.submitted
