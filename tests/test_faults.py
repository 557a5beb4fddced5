"""Faults the real CLI can't be made to show, through tests/fake_claude.py: giant lines, garbage,
crashes, a child that ignores SIGTERM, grandchildren in other sessions and a double-forked daemon.
Every test ends by counting processes: none may be left."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from cc_executor import CCExecutorConfig, CLICrashError, RunStatus, RunTimeoutError, StreamCorruptionError, cc_execute
from cc_executor.engine.events import AssistantText, Event, NonJsonLine, OversizedLine, UnknownEvent
from cc_executor.engine.process import marked_processes, pid_alive

pytestmark = pytest.mark.anyio

FAKE_CLAUDE = Path(__file__).parent / "fake_claude.py"


def with_mode(config: CCExecutorConfig, mode: str, **env: str) -> CCExecutorConfig:
    return config.model_copy(update={"env": {"FAKE_CLAUDE_MODE": mode, **env}})


async def test_a_100_mb_line_is_spilled_to_the_transcript_not_held(
    fake_config: CCExecutorConfig, workdir: Path
) -> None:
    events: list[Event] = []
    config = with_mode(fake_config, "huge_line", FAKE_CLAUDE_LINE_MB="100")
    result = await cc_execute("big", config=config, cwd=workdir, on_event=events.append)

    assert result.ok and result.result == "fake huge line done"
    oversized = [e for e in events if isinstance(e, OversizedLine)]
    assert len(oversized) == 1 and oversized[0].size > 100 * 1024 * 1024
    assert oversized[0].head.startswith('{"type":"assistant"') or oversized[0].head.startswith('{"type": "assistant"')
    transcript = Path(result.transcript_path or "")
    assert transcript.stat().st_size > 100 * 1024 * 1024
    assert marked_processes(result.run_id) == []


async def test_a_line_under_the_limit_parses_whole(fake_config: CCExecutorConfig, workdir: Path) -> None:
    events: list[Event] = []
    config = with_mode(fake_config, "huge_line", FAKE_CLAUDE_LINE_MB="3")
    result = await cc_execute("big", config=config, cwd=workdir, on_event=events.append)
    texts = [e for e in events if isinstance(e, AssistantText)]
    assert result.ok and len(texts[0].text) == 3 * 1024 * 1024


async def test_an_oversized_result_line_is_a_stream_error(fake_config: CCExecutorConfig, workdir: Path) -> None:
    config = with_mode(fake_config, "huge_result", FAKE_CLAUDE_LINE_MB="2").model_copy(
        update={"max_line_bytes": 1024 * 1024}
    )
    with pytest.raises(StreamCorruptionError, match="oversized") as caught:
        await cc_execute("big result", config=config, cwd=workdir)
    result = caught.value.result
    assert result is not None and result.status is RunStatus.FAILED
    assert Path(result.transcript_path or "").stat().st_size > 2 * 1024 * 1024


async def test_garbage_lines_are_kept_not_fatal(fake_config: CCExecutorConfig, workdir: Path) -> None:
    events: list[Event] = []
    result = await cc_execute("x", config=with_mode(fake_config, "garbage"), cwd=workdir, on_event=events.append)
    assert result.ok
    junk = [e.text for e in events if isinstance(e, NonJsonLine)]
    assert junk == ["this is not json {{{", "[SandboxDebug] something", '{"broken":']
    assert any(isinstance(e, UnknownEvent) and e.type == "future_event" for e in events)
    transcript = Path(result.transcript_path or "").read_text()
    assert "this is not json {{{" in transcript and "future_event" in transcript


async def test_a_crash_mid_stream_keeps_partial_output_and_stderr(fake_config: CCExecutorConfig, workdir: Path) -> None:
    with pytest.raises(CLICrashError, match="simulated crash") as caught:
        await cc_execute("x", config=with_mode(fake_config, "crash"), cwd=workdir)
    assert caught.value.exit_code == 3
    result = caught.value.result
    assert result is not None and result.exit_code == 3 and result.result
    assert "simulated crash" in Path(result.stderr_path or "").read_text()


async def test_prompt_reaches_eof_on_stdin(fake_config: CCExecutorConfig, workdir: Path) -> None:
    task = "line one\nline two with ünïcode and 'quotes' \"and\" $vars `ticks` \\ backslash"
    result = await cc_execute(task, config=with_mode(fake_config, "stdin_echo"), cwd=workdir)
    assert result.result == task


async def test_a_child_that_ignores_sigterm_is_killed_on_timeout(fake_config: CCExecutorConfig, workdir: Path) -> None:
    config = with_mode(fake_config, "ignore_term").model_copy(update={"timeout": 1.5})
    with pytest.raises(RunTimeoutError) as caught:
        await cc_execute("x", config=config, cwd=workdir)
    result = caught.value.result
    assert result is not None and result.status is RunStatus.TIMEOUT
    assert result.exit_code == -9  # it took the SIGKILL
    assert marked_processes(result.run_id) == []


async def test_grandchildren_and_daemons_die_with_the_run(
    fake_config: CCExecutorConfig, workdir: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids.json"
    config = with_mode(
        fake_config, "grandchildren", FAKE_CLAUDE_PIDFILE=str(pidfile), FAKE_CLAUDE_IGNORE_TERM="1"
    ).model_copy(update={"timeout": 2.0})
    with pytest.raises(RunTimeoutError) as caught:
        await cc_execute("x", config=config, cwd=workdir)
    pids = json.loads(pidfile.read_text())
    assert len(pids) == 3
    for _ in range(20):  # reaping by init can lag a moment
        if not any(pid_alive(p) for p in pids):
            break
        await anyio.sleep(0.1)
    assert [p for p in pids if pid_alive(p)] == []
    assert caught.value.result is not None and marked_processes(caught.value.result.run_id) == []


async def test_cancel_kills_grandchildren_too(fake_config: CCExecutorConfig, workdir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids.json"
    config = with_mode(
        fake_config, "grandchildren", FAKE_CLAUDE_PIDFILE=str(pidfile), FAKE_CLAUDE_GRANDCHILD_STDIO="devnull"
    )
    with anyio.move_on_after(1.5):
        await cc_execute("x", config=config, cwd=workdir)
    pids = json.loads(pidfile.read_text())
    for _ in range(20):
        if not any(pid_alive(p) for p in pids):
            break
        await anyio.sleep(0.1)
    assert [p for p in pids if pid_alive(p)] == []


async def test_silence_is_an_idle_timeout(fake_config: CCExecutorConfig, workdir: Path) -> None:
    config = with_mode(fake_config, "silent").model_copy(update={"idle_timeout": 1.0})
    with pytest.raises(RunTimeoutError) as caught:
        await cc_execute("x", config=config, cwd=workdir)
    assert caught.value.result is not None and caught.value.result.status is RunStatus.IDLE_TIMEOUT


async def test_killing_the_owner_with_sigkill_stops_the_cli(tmp_path: Path, workdir: Path) -> None:
    """pdeathsig: the owner dies abruptly (no finally, no atexit) and the CLI still gets its SIGTERM."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import anyio\n"
        "from cc_executor import cc_execute, CCExecutorConfig\n"
        "async def main():\n"
        "    async def show(update):\n"
        "        if update.kind == 'started':\n"
        "            print(update.run_id, flush=True)\n"
        f"    cfg = CCExecutorConfig(claude_path={str(FAKE_CLAUDE)!r}, env={{'FAKE_CLAUDE_MODE': 'slow_lines',\n"
        "        'FAKE_CLAUDE_LINES': '1000', 'FAKE_CLAUDE_INTERVAL': '0.2'})\n"
        f"    await cc_execute('x', config=cfg, cwd={str(workdir)!r}, on_progress=show)\n"
        "anyio.run(main)\n"
    )
    async with await anyio.open_process([sys.executable, str(script)]) as owner:
        assert owner.stdout is not None
        with anyio.fail_after(30):  # the owner prints its run id once the CLI has started
            run_id = (await owner.stdout.receive()).decode().split()[0]
        assert marked_processes(run_id)  # the CLI is running
        owner.kill()
        await owner.wait()
    for _ in range(50):
        if not marked_processes(run_id):
            break
        await anyio.sleep(0.1)
    assert marked_processes(run_id) == []


async def test_the_first_cancel_reason_is_the_one_recorded(fake_config: CCExecutorConfig, workdir: Path) -> None:
    from cc_executor.api import build_request, open_store
    from cc_executor.backends.local import LocalBackend

    config = with_mode(fake_config, "silent")
    async with open_store() as store, LocalBackend(store) as backend:
        first = await backend.submit(build_request("a", config=config, cwd=workdir))
        second = await backend.submit(build_request("b", config=config, cwd=workdir))
        with anyio.fail_after(10):
            for run_id in (first, second):
                async for event in backend.events(run_id):
                    if event.progress is not None and event.progress.kind == "started":
                        break
        async with anyio.create_task_group() as group:  # a client's cancel, then a shutdown's while it still stops
            group.start_soon(backend.cancel, first, "cancelled: the client asked")
            group.start_soon(backend.cancel, first, "cancelled: the server shut down")
        assert await store.mark_cancelled(second, "cancelled by another process")  # `cc-executor cancel`
        await backend.cancel(second, "cancelled: the server shut down")
        rows = [await store.get(run_id) for run_id in (first, second)]
    assert [(r.status, r.error) for r in rows] == [
        (RunStatus.CANCELLED, "cancelled: the client asked"),
        (RunStatus.CANCELLED, "cancelled by another process"),
    ]
    assert all(marked_processes(r.run_id) == [] for r in rows)
