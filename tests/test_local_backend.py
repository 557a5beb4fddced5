"""LocalBackend beyond the contract suite: what the command line relies on when it follows runs of other processes
(`cc-executor show --follow`, `cancel`) and when a submit is refused (`cc-executor run` exits 2 with a sentence)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from cc_executor.api import build_request
from cc_executor.backends import LocalBackend, RunEvent
from cc_executor.errors import ClaudeNotFoundError
from cc_executor.models import CCExecutorConfig, RunStatus
from cc_executor.registry.store import MEMORY, RunStore

pytestmark = pytest.mark.anyio


async def test_a_followed_run_whose_owner_dies_ends_lost(tmp_path: Path) -> None:
    owner = await anyio.open_process(["sleep", "60"])  # stands in for a `cc-executor run` in another terminal
    request = build_request("t", cwd=tmp_path)
    seen: list[RunEvent] = []

    async def follow(backend: LocalBackend) -> None:
        async for event in backend.events(request.run_id):
            seen.append(event)

    try:
        async with RunStore.open(MEMORY) as store, LocalBackend(store) as backend:
            await store.create_run(request, argv=[], owner_pid=owner.pid, status=RunStatus.RUNNING)
            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    group.start_soon(follow, backend)
                    assert await backend.wait(request.run_id, 1.0) is None  # a live owner: still running
                    owner.kill()
                    await owner.wait()
                    result = await backend.wait(request.run_id, 20.0)
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()

    assert result is not None and result.status is RunStatus.LOST and result.error_class == "RunLostError"
    assert [(e.kind, e.status) for e in seen] == [("finished", RunStatus.LOST)]


async def test_a_refused_submit_raises_its_own_error_and_records_nothing(tmp_path: Path) -> None:
    config = CCExecutorConfig(claude_path=str(tmp_path / "no-claude-here"))

    async with RunStore.open(MEMORY) as store:
        with pytest.raises(ClaudeNotFoundError, match="no-claude-here"):  # itself, not wrapped in an ExceptionGroup
            async with LocalBackend(store) as backend:
                await backend.submit(build_request("t", cwd=tmp_path, config=config))
        assert await store.list_runs() == []
