"""``cc-executor runs --watch``: a live table of the runs in flight, each with its latest progress line.

In the style of ``gh run watch`` and ``pueue status``: on a terminal a rich table redrawn in place (twice a second);
otherwise one line per change (``HH:MM:SS  ID  STATUS  PROGRESS``). Runs of every front end on the state dir are
shown (durable runs, `cc-executor run`s, MCP servers'); a run that ends stays a few seconds with how it ended.
Ctrl-C stops watching; the runs go on.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from cc_executor.cli.common import (
    EXIT_OK,
    console,
    format_duration,
    home_relative,
    is_tty,
    out,
    registry_backend,
    run_duration,
    seam_query,
    short_id,
)
from cc_executor.models import RunRecord, RunStatus
from cc_executor.text import one_line

if TYPE_CHECKING:
    from rich.table import Table

    from cc_executor.backends import LocalBackend

REFRESH_S = 0.5
KEEP_ENDED_S = 5.0  # a run that ended stays on the table this long, with how it ended
_STYLE = {"success": "green", "running": "cyan", "queued": "cyan", "cancelled": "yellow"}


@dataclass
class Board:
    """The runs on the table: in flight, plus those that ended in the last KEEP_ENDED_S seconds."""

    rows: dict[str, RunRecord] = field(default_factory=dict)
    ended_at: dict[str, float] = field(default_factory=dict)

    async def refresh(self, backend: LocalBackend, *, cwd: str | None, list_id: str | None, limit: int) -> None:
        from cc_executor.backends import RunFilter

        live: dict[str, RunRecord] = {}
        for status in (RunStatus.RUNNING, RunStatus.QUEUED):
            query = seam_query(RunFilter, status=status, cwd=cwd, list_id=list_id, limit=limit)
            for record in await backend.list_runs(query):
                live[record.run_id] = await backend.status(record.run_id)  # with its latest progress event
        now = time.monotonic()
        for run_id in [r for r in self.rows if r not in live and r not in self.ended_at]:
            self.rows[run_id] = await backend.status(run_id)  # how it ended
            self.ended_at[run_id] = now
        for run_id in [r for r, at in self.ended_at.items() if now - at > KEEP_ENDED_S]:
            del self.rows[run_id], self.ended_at[run_id]
        self.rows.update(live)

    def ordered(self) -> list[RunRecord]:
        return sorted(self.rows.values(), key=lambda r: r.created_at or "")


def progress_line(record: RunRecord) -> str:
    if record.status.finished:
        return one_line(record.error or record.result or "", 80)
    return one_line(record.last_progress or "", 80)


def render(records: list[RunRecord]) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    stamp = datetime.now().strftime("%H:%M:%S")
    title = f"runs in flight: {sum(not r.status.finished for r in records)} · {stamp} · Ctrl-C stops watching"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold", expand=True, title=title)
    table.add_column("ID", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("ELAPSED", no_wrap=True, justify="right")
    table.add_column("TASK", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("PROGRESS", no_wrap=True, overflow="ellipsis", ratio=2)
    table.add_column("CWD", no_wrap=True, overflow="ellipsis", ratio=1)
    for record in records:
        status = Text(record.status.value, style=_STYLE.get(record.status.value, "red"))
        table.add_row(
            short_id(record.run_id),
            status,
            format_duration(run_duration(record)),
            one_line(record.task, 60),
            progress_line(record),
            home_relative(record.cwd),
        )
    if not records:
        table.add_row("-", "", "", "(no runs in flight)", "", "")
    return table


async def watch(*, cwd: str | None, list_id: str | None, limit: int) -> int:
    """Until Ctrl-C (the runs go on)."""
    board = Board()
    async with registry_backend() as backend:
        if is_tty(sys.stdout):
            await _watch_live(backend, board, cwd=cwd, list_id=list_id, limit=limit)
        else:
            await _watch_lines(backend, board, cwd=cwd, list_id=list_id, limit=limit)
    return EXIT_OK


async def _watch_live(backend: LocalBackend, board: Board, *, cwd: str | None, list_id: str | None, limit: int) -> None:
    from rich.live import Live

    with Live(render([]), console=console(sys.stdout), auto_refresh=False, transient=False) as live:
        while True:
            await board.refresh(backend, cwd=cwd, list_id=list_id, limit=limit)
            live.update(render(board.ordered()), refresh=True)
            await anyio.sleep(REFRESH_S)


async def _watch_lines(
    backend: LocalBackend, board: Board, *, cwd: str | None, list_id: str | None, limit: int
) -> None:
    shown: dict[str, tuple[str, str]] = {}
    while True:
        await board.refresh(backend, cwd=cwd, list_id=list_id, limit=limit)
        for record in board.ordered():
            state = (record.status.value, progress_line(record))
            if shown.get(record.run_id) != state:
                shown[record.run_id] = state
                stamp = datetime.now().strftime("%H:%M:%S")
                out(f"{stamp}  {short_id(record.run_id)}  {state[0]:<9} {state[1]}")
        await anyio.sleep(REFRESH_S)
