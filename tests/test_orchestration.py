"""Task lists, learned and agent-predicted timeouts, and resume — on the real CLI behind the fake API."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from cc_executor import (
    CCExecutorConfig,
    InvalidRequestError,
    RunStatus,
    cc_execute,
    cc_execute_list,
    open_store,
    resume,
)
from cc_executor.engine.process import marked_processes
from cc_executor.engine.timeouts import estimate_from_history
from cc_executor.models import ProgressUpdate
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


async def test_sequential_list_passes_context_forward(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.routes = {
        "write the parser": scenarios.text("PARSER-DONE: parse() handles quoted fields"),
        "write the tests": scenarios.text("tests written"),
    }
    updates: list[ProgressUpdate] = []
    result = await cc_execute_list(
        ["write the parser", "write the tests"], config=config, cwd=workdir, on_progress=updates.append
    )
    assert result.status == "success" and result.succeeded == 2 and result.mode == "sequential"
    second_prompt = fake_api.message_requests[-1].text
    assert "write the tests" in second_prompt and "PARSER-DONE: parse() handles quoted fields" in second_prompt
    assert any(u.message.startswith("[2/2]") and u.list_total == 2 for u in updates)
    async with open_store() as store:
        rows = await store.list_runs(list_id=result.list_id)
    assert len(rows) == 2 and {r.status for r in rows} == {RunStatus.SUCCESS}
    by_task = {r.task: r for r in rows}  # the task is recorded as given; the summary travels as its context
    assert set(by_task) == {"write the parser", "write the tests"}
    assert by_task["write the parser"].context is None
    assert "PARSER-DONE" in (by_task["write the tests"].context or "")
    assert result.cost_usd > 0


async def test_sequential_stop_on_error_skips_the_rest(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.routes = {"step two": scenarios.api_error(401)}
    result = await cc_execute_list(["step one", "step two", "step three"], config=config, cwd=workdir)
    assert [e.status for e in result.entries] == [RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED]
    assert result.status == "failed" and result.skipped == 1
    async with open_store() as store:
        skipped = await store.get(result.entries[2].run_id)
    assert skipped.status is RunStatus.SKIPPED and skipped.error and "stop_on_error" in skipped.error


@pytest.mark.slow
async def test_parallel_list_never_exceeds_max_parallel(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=1, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"]})
    peak = 0
    running: set[str] = set()

    async def watch() -> None:
        nonlocal peak
        while True:
            live = {p for p in os.listdir("/proc") if p.isdigit() and _is_claude(int(p))}
            running.update(live)
            peak = max(peak, len(live))
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        result = await cc_execute_list(
            [f"job {i}" for i in range(5)], sequential=False, max_parallel=2, config=config, cwd=workdir
        )
        group.cancel_scope.cancel()
    assert result.succeeded == 5
    assert 1 <= peak <= 2, peak
    assert len(running) >= 5


def _is_claude(pid: int) -> bool:
    """A live (not zombie) `claude` process started by this test process (other suites may run beside it)."""
    try:
        marked = b"CC_EXECUTOR_RUN_ID=" in Path(f"/proc/{pid}/environ").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state, ppid = stat[stat.rfind(")") + 2 :].split()[:2]
    return (
        marked
        and int(ppid) == os.getpid()
        and stat[stat.find("(") + 1 : stat.rfind(")")].startswith("claude")
        and state not in ("Z", "X")
    )


@pytest.mark.slow
async def test_cancelling_a_list_kills_members_and_records_the_rest(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"]})
    with anyio.move_on_after(2.5):
        await cc_execute_list(["a", "b", "c", "d"], sequential=False, max_parallel=2, config=config, cwd=workdir)
    async with open_store() as store:
        rows = await store.list_runs()
    assert sorted(r.status.value for r in rows) == ["cancelled", "cancelled", "skipped", "skipped"]
    assert all(marked_processes(r.run_id) == [] for r in rows)


@pytest.mark.slow
async def test_parallel_stop_on_error_cancels_running_members_and_skips_the_rest(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.routes = {"broken": scenarios.api_error(401)}
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"]})
    started = anyio.current_time()
    result = await cc_execute_list(
        ["slow one", "broken", "slow two"],
        sequential=False,
        max_parallel=2,
        stop_on_error=True,
        config=config,
        cwd=workdir,
    )
    assert anyio.current_time() - started < 8  # the slow member did not run its ten seconds
    assert [e.status for e in result.entries] == [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SKIPPED]
    assert result.status == "failed" and (result.failed, result.skipped) == (2, 1)
    async with open_store() as store:
        rows = {r.run_id: r for r in await store.list_runs(list_id=result.list_id)}
    cancelled, skipped = rows[result.entries[0].run_id], rows[result.entries[2].run_id]
    assert cancelled.error == "cancelled: task 2 ended failed and stop_on_error is set"
    assert skipped.error == "skipped: task 2 ended failed and stop_on_error is set"
    assert all(marked_processes(run_id) == [] for run_id in rows)


async def test_bad_list_input_names_the_task(config: CCExecutorConfig, workdir: Path) -> None:
    with pytest.raises(InvalidRequestError, match=r"tasks\[2\].*empty"):
        await cc_execute_list(["fine", "  "], config=config, cwd=workdir)
    with pytest.raises(InvalidRequestError, match="more than the limit"):
        await cc_execute_list(["x"] * 1000, config=config, cwd=workdir)
    async with open_store() as store:
        assert await store.list_runs() == []


def test_prediction_needs_history_and_says_its_basis() -> None:
    fresh = estimate_from_history([], "refactor the parser module", "/repo")
    assert fresh.source == "default" and "too little history" in fresh.basis
    history = [(f"refactor the parser module part {i}", "/repo", 100.0 + i * 10) for i in range(10)]
    history += [("unrelated docs change", "/repo", 5.0)] * 5
    learned = estimate_from_history(history, "refactor the parser module again", "/repo")
    assert learned.source == "history" and learned.basis.startswith("p90 of 10 similar runs in this cwd")
    assert learned.seconds == pytest.approx(180.0 * 1.5)


async def test_learned_timeout_is_recorded_on_the_run(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    first = await cc_execute("format the readme", config=config, cwd=workdir)
    assert first.timeout_basis and first.timeout_basis.startswith("history: default")
    for _ in range(2):
        await cc_execute("format the readme", config=config, cwd=workdir)
    learned = await cc_execute("format the readme", config=config, cwd=workdir)
    assert learned.timeout_basis and "p90 of 3 similar runs in this cwd" in learned.timeout_basis
    assert learned.timeout_s == 60.0  # sub-second runs: clamped to the minimum
    given = await cc_execute("format the readme", config=config.model_copy(update={"timeout": 42.0}), cwd=workdir)
    assert given.timeout_s == 42.0 and given.timeout_basis == "given by the caller"


async def test_agent_prediction_is_used_and_recorded(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.routes = {
        "You estimate how long": scenarios.structured({"seconds": 420, "reasons": "two modules and tests"})
    }
    result = await cc_execute("build the thing", config=config, cwd=workdir, agent_predict_timeout=True)
    assert result.timeout_s == 420.0
    assert result.timeout_basis and result.timeout_basis.startswith("agent: 420s (two modules and tests)")
    async with open_store() as store:
        rows = await store.list_runs()
    predictor = next(r for r in rows if r.run_id != result.run_id)
    assert predictor.parent_run_id == result.run_id and predictor.permission_mode == "plan"


async def test_agent_prediction_failure_is_visible(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.routes = {"You estimate how long": scenarios.api_error(529)}
    config = config.model_copy(update={"agent_predict_timeout": True})
    result = await cc_execute("build the thing", config=config, cwd=workdir)
    assert result.ok and result.timeout_s == 1800.0
    assert result.timeout_basis and result.timeout_basis.startswith("agent prediction failed (OverloadedError")
    assert "using history: default" in result.timeout_basis


async def test_resume_continues_the_session_in_its_own_cwd(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.routes = {"remember the word": scenarios.text("I will remember PELICAN")}
    first = await cc_execute("remember the word pelican", config=config, cwd=workdir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the caller is somewhere else; the session lives under workdir
    fake_api.routes = {}
    fake_api.scenario = scenarios.text("the word was PELICAN")
    second = await resume(first.run_id, "what was the word?", config=config)
    assert second.ok and second.cwd == str(workdir) and second.parent_run_id == first.run_id
    history = fake_api.message_requests[-1].text
    assert "remember the word pelican" in history and "I will remember PELICAN" in history
    third = await resume(second.run_id, "and again?", config=config)
    assert third.ok and "what was the word?" in fake_api.message_requests[-1].text
    assert third.session_id  # whatever id the CLI gave this turn is the one recorded and resumed next
    forked = await resume(first.run_id, "branch off", config=config, fork=True)
    assert forked.ok and forked.session_id not in (first.session_id, second.session_id, third.session_id)
    assert "remember the word pelican" in fake_api.message_requests[-1].text
    async with open_store() as store:
        assert (await store.get(forked.run_id)).argv[-2:] == [f"--resume={first.session_id}", "--fork-session"]


async def test_resume_of_a_run_without_session_is_refused(config: CCExecutorConfig, workdir: Path) -> None:
    from cc_executor.api import build_request

    request = build_request("never ran", config=config, cwd=workdir)
    async with open_store() as store:
        await store.create_run(request, argv=[], owner_pid=os.getpid(), status=RunStatus.SKIPPED)
    with pytest.raises(InvalidRequestError, match="no Claude session"):
        await resume(request.run_id, "continue", config=config)
