"""``cc-executor runs`` (the table of recorded runs) and ``cc-executor cancel`` (stop a run another process owns)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from cc_executor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    err,
    format_cost,
    format_duration,
    format_time,
    home_relative,
    is_tty,
    out,
    parse_time,
    positive_int,
    record_json,
    registry_backend,
    remote_backend,
    resolve_run,
    run_duration,
    seam_query,
    seconds,
    short_id,
    write_json,
)
from cc_executor.errors import InvalidRequestError, RunNotFoundError
from cc_executor.models import RunRecord, RunStatus
from cc_executor.text import one_line
from cc_executor.timeparse import GRAMMAR, parse_since

if TYPE_CHECKING:
    from cc_executor.backends import CancelReport

_COLUMNS = ("ID", "STATUS", "STARTED", "DURATION", "COST", "TASK", "CWD")
_BRANCH = "BRANCH"  # shown (before TASK) when any listed run is isolated: where its work is
_TASK_WIDTH = 48


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cc_executor.cli import show as cli_show

    _add_runs(commands)
    cli_show.add_parser(commands)
    _add_cancel(commands)


# --- runs -------------------------------------------------------------------------------------------------------


def _add_runs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "runs",
        help="list recorded runs, newest first",
        description="List recorded runs, newest first: id, status, start time, duration, cost, task, cwd "
        "(and the branch of isolated runs, when any is listed). Give any unique id prefix to `show` or `cancel`.",
    )
    parser.add_argument("--status", choices=[s.value for s in RunStatus], help="only runs with this status")
    parser.add_argument("--cwd", metavar="DIR", help="only runs whose working directory is DIR")
    parser.add_argument("--since", metavar="TIME", help=f"only runs created since TIME ({GRAMMAR})")
    parser.add_argument("--list", dest="list_id", metavar="LIST_ID", help="only the runs of one task list")
    parser.add_argument(
        "-n",
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show at most N runs (default 20, at most 500)",
    )
    parser.add_argument("--json", action="store_true", help="print the full run records as a JSON array")
    parser.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="a live table of the runs in flight (queued, running) with each one's latest progress line, until "
        "Ctrl-C (the runs go on); one line per change when stdout is not a terminal",
    )
    parser.set_defaults(handler=_runs)


def _runs(args: argparse.Namespace) -> int:
    cwd = str(Path(args.cwd).expanduser().resolve()) if args.cwd else None
    if args.watch:
        return _watch(args, cwd)
    records = anyio.run(_list_runs, args, cwd)
    if args.json:
        write_json([record_json(r) for r in records])
    elif not records:
        err("no runs match" if _filtered(args) else "no runs recorded yet")
    elif is_tty(sys.stdout):
        _rich_table(records)
    else:
        _plain_table(records)
    return EXIT_OK


def _watch(args: argparse.Namespace, cwd: str | None) -> int:
    from cc_executor.cli.watch import watch

    if args.json or args.status or args.since:
        raise InvalidRequestError("--watch shows the runs in flight live: it takes --cwd, --list and --limit only")
    try:
        return anyio.run(partial(watch, cwd=cwd, list_id=args.list_id, limit=args.limit))
    except KeyboardInterrupt:
        return EXIT_OK  # stopping the watch is the normal way out; the runs go on


def _filtered(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.status, args.cwd, args.since, args.list_id))


async def _list_runs(args: argparse.Namespace, cwd: str | None) -> list[RunRecord]:
    from cc_executor.backends import RunFilter
    from cc_executor.backends.pending_members import newest_first

    since = parse_since(args.since, field="--since") if args.since else None
    status = RunStatus(args.status) if args.status else None
    query = seam_query(RunFilter, status=status, cwd=cwd, since=since, list_id=args.list_id, limit=args.limit)
    async with registry_backend() as backend:
        records = await backend.list_runs(query)
    async with remote_backend() as remote:  # Temporal: the tasks its lists have not started have no row here
        if remote is None:
            return records
        pending = [r for r in await remote.list_runs(query) if r.status is RunStatus.PENDING]
    return newest_first(records, pending, query.limit)


def columns(records: list[RunRecord]) -> tuple[str, ...]:
    if not any(r.branch for r in records):
        return _COLUMNS
    at = _COLUMNS.index("TASK")
    return (*_COLUMNS[:at], _BRANCH, *_COLUMNS[at:])


def table_row(record: RunRecord, *, branch: bool = False) -> tuple[str, ...]:
    return (
        short_id(record.run_id),
        record.status.value,
        format_time(record.started_at or record.created_at),
        format_duration(run_duration(record)),
        format_cost(record.cost_usd),
        *((record.branch or "-",) if branch else ()),
        one_line(record.task, _TASK_WIDTH),
        home_relative(record.cwd),
    )


def _plain_table(records: list[RunRecord]) -> None:
    names = columns(records)
    rows = [names, *(table_row(r, branch=_BRANCH in names) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(names) - 1)]
    for row in rows:
        out("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip())


def compact_time(value: str | None) -> str:
    """A start time for a narrow table: HH:MM:SS today, else MM-DD HH:MM (local time)."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    local = moment.astimezone()
    return local.strftime("%H:%M:%S" if local.date() == datetime.now().astimezone().date() else "%m-%d %H:%M")


_STATUS_STYLE = {
    "success": "green",
    "running": "cyan",
    "queued": "cyan",
    "pending": "cyan",
    "cancelled": "yellow",
    "waiting_for_approval": "magenta",
}


def _rich_table(records: list[RunRecord]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cc_executor.cli.common import console

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold", expand=True)
    names = columns(records)
    for name in names:
        flexible = name in ("TASK", "CWD")
        table.add_column(
            name, no_wrap=True, overflow="ellipsis", ratio=(2 if name == "TASK" else 1) if flexible else None
        )
    for record in records:
        cells = [Text(cell) for cell in table_row(record, branch=_BRANCH in names)]
        cells[2] = Text(compact_time(record.started_at or record.created_at))
        cells[1].stylize(_STATUS_STYLE.get(record.status.value, "red"))
        table.add_row(*cells)
    console(sys.stdout).print(table)


# --- cancel -----------------------------------------------------------------------------------------------------


def _add_cancel(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "cancel",
        help="cancel a running run (owned by any process)",
        description="Cancel a queued or running run, even one started by another process (a `cc-executor run` "
        "elsewhere, the MCP server): the row is marked cancelled, then the run's process group gets SIGINT, "
        "SIGTERM, SIGKILL in turn until nothing carrying its marker (CC_EXECUTOR_RUN_ID=<id>) is left. "
        "A pending task of a list (not started yet) is skipped: it never starts, the list goes on. "
        "Exits 1 if the run had already finished.",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id or a unique prefix of it")
    parser.add_argument(
        "--grace", type=seconds, default=2.0, metavar="SECONDS", help="wait between signals (default 2)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.set_defaults(handler=_cancel)


def _cancel(args: argparse.Namespace) -> int:
    return anyio.run(_cancel_run, args)


async def _cancel_run(args: argparse.Namespace) -> int:
    reason = f"cancelled by `cc-executor cancel` (pid {os.getpid()}); process tree killed"
    async with registry_backend(kill_grace_s=max(args.grace, 0.1)) as backend:
        try:
            record = await resolve_run(backend, args.run_id)
            outcome = await backend.cancel(record.run_id, reason)
        except RunNotFoundError:
            async with remote_backend() as remote:  # Temporal: a task its list has not started is skipped there
                if remote is None:
                    raise
                record = await resolve_run(remote, args.run_id)
                outcome = await remote.cancel(record.run_id, reason)
    _cancel_report(outcome, json_output=args.json)
    return EXIT_OK if outcome.cancelled else EXIT_FAILED


def _cancel_report(outcome: CancelReport, *, json_output: bool) -> None:
    if json_output:
        payload = {"run_id": outcome.run_id, "status": outcome.status.value, "cancelled": outcome.cancelled}
        write_json({**payload, "signalled": outcome.signalled, "remaining_processes": outcome.remaining})
    elif outcome.cancelled and outcome.status is RunStatus.SKIPPED:
        err(f"skipped run {outcome.run_id}: a task its list had not started; it will not start (the list goes on)")
    elif outcome.cancelled:
        left = f"; {outcome.remaining} process(es) still alive" if outcome.remaining else ""
        err(f"cancelled run {outcome.run_id}: {outcome.signalled} process(es) stopped{left}")
    else:
        err(f"run {outcome.run_id} already finished ({outcome.status.value}); nothing to cancel")
