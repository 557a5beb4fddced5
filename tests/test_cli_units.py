"""The CLI's pure pieces, in-process (fast; the subprocess tests cover the wiring)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cc_executor.api import build_request
from cc_executor.backends import LocalBackend
from cc_executor.cli.common import resolve_run
from cc_executor.cli.live_display import status_text
from cc_executor.cli.main import build_parser
from cc_executor.cli.run import footer_lines, result_body, split_tools
from cc_executor.errors import InvalidRequestError, RunNotFoundError
from cc_executor.models import ExecutionResult, ProgressUpdate, RunStatus
from cc_executor.registry.store import MEMORY, RunStore
from cc_executor.timeparse import parse_since

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("values", "tools"),
    [
        (["Bash,Write"], ["Bash", "Write"]),
        (["Bash Write", "Edit"], ["Bash", "Write", "Edit"]),
        (["Bash(git diff:*),Write"], ["Bash(git diff:*)", "Write"]),
        (["Bash(npm run test, lint) Read"], ["Bash(npm run test, lint)", "Read"]),
        ([" , "], []),
    ],
)
def test_split_tools_keeps_parenthesised_patterns_whole(values: list[str], tools: list[str]) -> None:
    assert split_tools(values) == tools


def test_since_accepts_ages_and_iso_times() -> None:
    two_hours_ago = parse_since("2h", field="--since")
    assert abs(datetime.now(UTC) - timedelta(hours=2) - two_hours_ago) < timedelta(seconds=5)
    assert parse_since("2026-01-01T00:00:00", field="--since") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequestError, match=r"^--since: 'yesterday' is not an ISO-8601 time or an age"):
        parse_since("yesterday", field="--since")


async def test_run_ids_resolve_from_a_unique_prefix(tmp_path: Path) -> None:
    ids = ["aaaa1111-0000-4000-8000-000000000001", "aaaa2222-0000-4000-8000-000000000002"]
    async with RunStore.open(MEMORY) as store, LocalBackend(store) as backend:
        for run_id in ids:
            await store.create_run(build_request("t", cwd=tmp_path, run_id=run_id), argv=[], owner_pid=os.getpid())

        assert (await resolve_run(backend, "AAAA1")).run_id == ids[0]
        assert (await resolve_run(backend, ids[1])).run_id == ids[1]
        with pytest.raises(InvalidRequestError, match="ambiguous: it matches aaaa2222, aaaa1111"):
            await resolve_run(backend, "aaaa")
        with pytest.raises(RunNotFoundError):
            await resolve_run(backend, "bbbb")
        with pytest.raises(InvalidRequestError, match="invalid run id"):
            await resolve_run(backend, "../x")


def test_the_result_body_prefers_structured_output_and_the_footer_sums_up() -> None:
    result = ExecutionResult(
        run_id="r1",
        status=RunStatus.FAILED,
        result="partial",
        structured_output={"a": 1},
        num_turns=1,
        cost_usd=0.5,
        duration_s=61,
        files_created=["x.py"],
        error_class="MaxTurnsError",
        error="reached --max-turns",
    )
    assert result_body(result) == '{\n  "a": 1\n}'
    assert footer_lines(result) == [
        "✗ failed (MaxTurnsError) · run r1 · 1 turn · $0.5000 · 1m01s",
        "  files created: x.py",
        "  error: reached --max-turns",
        "  transcript: cc-executor show r1 --transcript",
    ]


def test_the_status_line_shows_elapsed_turn_tool_files_and_cost() -> None:
    update = ProgressUpdate(
        run_id="r",
        kind="event",
        message="m",
        turn=3,
        last_tool="Bash: ls",
        files_touched=["/w/a.py", "/w/b.py"],
        tokens=1500,
        cost_usd=0.01,
    )
    assert status_text(update, 12.0) == "12.0s · turn 3 · Bash: ls · 2 files: a.py, b.py · 1.5k tokens · $0.0100"
    assert status_text(None, 0.2) == "0.2s · starting"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from cc_executor import __version__

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"cc-executor {__version__}\n"


def test_every_command_has_accurate_help() -> None:
    parser = build_parser()
    text = parser.format_help()
    for command in ("run", "runs", "show", "cancel", "serve", "doctor", "demo"):
        assert f"    {command} " in text
    args = parser.parse_args(["run", "x", "--allowed-tools", "Bash", "--allowed-tools", "Write", "--idle-timeout", "0"])
    assert args.allowed_tools == ["Bash", "Write"] and args.idle_timeout == 0.0
