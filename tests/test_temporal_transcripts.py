"""Transcripts longer than what a result ships (1 MiB): the front end completes its copy from the worker when the
run ends; when the worker is gone by then, it keeps the shipped end and says so on the first line and in
get_transcript. Real dev server, real workers, the real `claude` against the fake API."""

from __future__ import annotations

from pathlib import Path

import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client

from cc_executor.backends.protocol import TranscriptQuery
from cc_executor.backends.temporal.activity import SHIP_TRANSCRIPT_BYTES
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.models import CCExecutorConfig, RunRequest
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.temporal_cluster import Workers

pytestmark = pytest.mark.anyio

LONG_ANSWER = "".join(f"line {i:06d} of a long answer. " for i in range(24_000))  # ~720 kB, twice in the transcript


@pytest.fixture
def backend(temporal_backend: TemporalBackend) -> TemporalBackend:
    return temporal_backend


async def test_a_long_transcript_is_completed_from_the_worker(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    fake_api.scenario = scenarios.text(LONG_ANSWER)
    run_id = await backend.submit(RunRequest(task="answer at length", cwd=workdir, config=config))
    result = await backend.wait(run_id, 120)
    assert result is not None and result.ok and result.result == LONG_ANSWER and result.worker, result

    on_worker = temporal_workers.directory / result.worker / "worker" / "transcripts" / f"{run_id}.jsonl"
    assert on_worker.stat().st_size > SHIP_TRANSCRIPT_BYTES  # longer than the result ships
    assert result.transcript_path is not None
    assert Path(result.transcript_path).read_bytes() == on_worker.read_bytes()  # the whole of it, here
    first = await backend.transcript(run_id, TranscriptQuery(limit=1))
    assert '"type":"system"' in first.lines[0].replace(" ", "")  # the CLI's own first line, no note


async def test_when_the_worker_is_gone_the_shipped_end_is_kept_and_said_so(
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = temporal_workers.dedicated("long")
    fake_api.scenario = scenarios.text(LONG_ANSWER)
    # Not entered: no sweep records the end before the worker is gone.
    front_end = TemporalBackend(settings, page_timeout_s=2.0)
    try:
        run_id = await front_end.submit(RunRequest(task="answer at length", cwd=workdir, config=config))
        await (await front_end.client()).get_workflow_handle(run_id).result()  # ended; not yet recorded here
        assert temporal_workers.kill("long")
        result = await front_end.wait(run_id, 60)
        assert result is not None and result.ok and result.transcript_path is not None
        kept = Path(result.transcript_path).read_text().splitlines()
        page = await front_end.transcript(run_id, TranscriptQuery(limit=1))
    finally:
        await front_end.aclose()
    assert "incomplete transcript" in kept[0] and "worker long" in kept[0] and page.lines == kept[:1]
    assert len(kept) > 1 and "long answer" in kept[-1]  # the end it shipped

    monkeypatch.setenv("CC_EXECUTOR_TEMPORAL_ADDRESS", settings.address)
    monkeypatch.setenv("CC_EXECUTOR_TEMPORAL_TASK_QUEUE", settings.task_queue)
    server = ServerSettings(cli_env=config.env, claude_path=config.claude_path, model=config.model, backend="temporal")
    async with Client(create_server(server)) as client:
        answer = await client.call_tool("get_transcript", {"run_id": run_id, "tail": 1})
    content = answer.structured_content
    assert not answer.is_error and content is not None, answer
    assert content["message"].startswith("incomplete transcript: its first") and "worker long" in content["message"]
    assert content["lines"][0].startswith("[result: success]")
