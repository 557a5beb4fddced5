"""The library's entry points as a caller sees them: the event stream, stderr progress, transcript options."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from cc_executor import (
    CCExecutorConfig,
    ExecutionResult,
    InvalidRequestError,
    RunStatus,
    cc_execute,
    open_store,
    run_stream,
)
from cc_executor.engine.events import InitEvent, ResultEvent, ToolUse
from cc_executor.engine.process import marked_processes
from cc_executor.models import ProgressUpdate
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


async def test_run_stream_yields_events_progress_then_the_result(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("notes.md", "# notes\n")
    items = []
    async with run_stream("write notes", config=config, cwd=workdir) as stream:
        async for item in stream:
            items.append(item)
    assert isinstance(items[-1], ExecutionResult) and items[-1].files_created == ["notes.md"]
    kinds = [type(i) for i in items]
    assert InitEvent in kinds and ToolUse in kinds and ResultEvent in kinds and ProgressUpdate in kinds
    assert kinds.index(InitEvent) < kinds.index(ToolUse) < kinds.index(ResultEvent)


async def test_leaving_run_stream_early_cancels_the_run(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    run_id = ""
    async with run_stream("long", config=config.model_copy(update={"allowed_tools": ["Bash"]}), cwd=workdir) as stream:
        async for item in stream:
            if isinstance(item, ToolUse):
                break
            if isinstance(item, ProgressUpdate):
                run_id = item.run_id
    assert run_id and marked_processes(run_id) == []
    async with open_store() as store:
        assert (await store.get(run_id)).status is RunStatus.CANCELLED


async def test_stream_true_prints_progress_on_stderr(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_api.scenario = scenarios.write_file("a.txt", "a\n")
    result = await cc_execute("write a", config=config, cwd=workdir, stream=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"[cc-executor {result.run_id[:8]}]" in captured.err and "Write:" in captured.err


async def test_transcripts_can_be_redirected_or_turned_off(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "my-transcripts"
    kept = await cc_execute("hi", config=config.model_copy(update={"transcript_dir": elsewhere}), cwd=workdir)
    assert kept.transcript_path == str(elsewhere / f"{kept.run_id}.jsonl") and Path(kept.transcript_path).stat().st_size
    dropped = await cc_execute("hi", config=config.model_copy(update={"save_transcript": False}), cwd=workdir)
    assert dropped.ok and dropped.transcript_path is None
    assert not list((tmp_path / "state").glob(f"transcripts/{dropped.run_id}*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the CLI only refuses bypass for root")
async def test_bypass_as_root_without_sandbox_is_refused_up_front(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    monkeypatch.setenv("CC_EXECUTOR_ALLOWED_PERMISSION_MODES", "bypassPermissions")  # the operator's policy allows it
    config = config.model_copy(update={"permission_mode": "bypassPermissions"})
    with pytest.raises(InvalidRequestError, match="IS_SANDBOX=1"):
        await cc_execute("anything", config=config, cwd=workdir)
    assert fake_api.message_requests == []
    async with open_store() as store:
        assert await store.list_runs() == []
    sandboxed = config.model_copy(update={"env": {**config.env, "IS_SANDBOX": "1"}})
    assert (await cc_execute("anything", config=sandboxed, cwd=workdir)).ok


async def test_concurrent_runs_share_one_registry(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    results: list[ExecutionResult] = []

    async def one(i: int) -> None:
        results.append(await cc_execute(f"task {i}", config=config, cwd=workdir))

    async with anyio.create_task_group() as group:
        for i in range(4):
            group.start_soon(one, i)
    assert len({r.session_id for r in results}) == 4 and all(r.ok for r in results)
    async with open_store() as store:
        assert {r.run_id for r in await store.list_runs()} == {r.run_id for r in results}
