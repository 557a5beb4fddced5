"""``cc-executor prune``: forget finished runs older than an age (rows, attempts and transcripts together)."""

from __future__ import annotations

import argparse

import anyio

from cc_executor.cli.common import EXIT_OK, err, format_time, out, write_json
from cc_executor.models import RunStatus

_EPILOG = """\
examples:
  cc-executor prune --older-than 30d --dry-run        what would go
  cc-executor prune --older-than 30d                  every finished run that ended over 30 days ago
  cc-executor prune --older-than 12h --status failed --status cancelled

Queued and running runs are never pruned. The MCP server prunes at start when CC_EXECUTOR_RETENTION_DAYS is set.
`cc-executor doctor` shows how much room the state dir takes."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "prune",
        help="delete finished runs older than an age (rows and transcripts)",
        description="Delete finished runs that ended more than AGE ago: their rows, attempts and transcript "
        "files, together.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--older-than", required=True, metavar="AGE", help="an age: 30s, 15m, 1.5h, 2d, 1w (at most 100 years)"
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in RunStatus if s.finished],
        metavar="STATUS",
        help="only runs with this status (repeatable; default: every finished status)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.set_defaults(handler=_prune)


def _prune(args: argparse.Namespace) -> int:
    from cc_executor.api import prune_runs
    from cc_executor.retention import format_bytes
    from cc_executor.timeparse import parse_age

    age = parse_age(args.older_than, field="--older-than")  # a bad AGE is refused before the store is opened
    result = anyio.run(lambda: prune_runs(age, statuses=args.status, dry_run=args.dry_run))
    if args.json:
        write_json(
            {
                "dry_run": result.dry_run,
                "cutoff": result.cutoff,
                "count": result.count,
                "statuses": result.statuses,
                "bytes_freed": result.bytes_freed,
                "run_ids": result.run_ids,
            }
        )
        return EXIT_OK
    if args.dry_run:
        for run_id in result.run_ids:
            out(run_id)
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(result.statuses.items()))
    verb = "would delete" if args.dry_run else "deleted"
    what = f"{result.count} run(s)" + (f" ({by_status})" if by_status else "")
    room = f"{format_bytes(result.bytes_freed)} of transcripts"
    err(f"{verb} {what} that ended before {format_time(result.cutoff)}; {room}")
    return EXIT_OK
