"""``cc-executor doctor``: run the preflight checks and print each with its fix; exit 1 if any failed."""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from cc_executor import doctor
from cc_executor.cli.common import EXIT_FAILED, EXIT_OK, is_tty, out, seconds, write_json
from cc_executor.doctor import Check
from cc_executor.models import PERMISSION_MODES

_EPILOG = """\
checks: claude found (where), claude version (minimum 2.1.0), credentials (API key env or a logged-in CLI),
nested session (CLAUDECODE), root + bypass (IS_SANDBOX), the operator's policy in force (CC_EXECUTOR_ALLOWED_*,
CC_EXECUTOR_MAX_*, CC_EXECUTOR_ALWAYS_*), state dir writable, sqlite, git version, worktree engine (in-process
libgit2 or the git CLI; CC_EXECUTOR_WORKTREE_GIT), leftover worktrees of isolated runs, state size, node/npm,
mcp server;
--smoke adds a one-turn task through the library. Every check is bounded in time: doctor never hangs.
Exit codes: 0 nothing failed (warnings allowed), 1 at least one check failed."""

_MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "dim")}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check that runs can work here, with a fix for each problem",
        description="Check everything a headless run needs and print a precise fix for each problem.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="also run a one-turn task through claude (costs a little)")
    parser.add_argument("--model", help="model for the --smoke run")
    parser.add_argument(
        "--smoke-timeout",
        type=seconds,
        default=120.0,
        metavar="SECONDS",
        help="limit for the --smoke run (default 120)",
    )
    parser.add_argument("--claude", metavar="PATH", help="check this claude executable instead of the lookup")
    parser.add_argument(
        "--permission-mode",
        choices=PERMISSION_MODES,
        metavar="MODE",
        help="the mode you plan to use (bypassPermissions as root without IS_SANDBOX=1 then fails)",
    )
    parser.add_argument("--json", action="store_true", help='print {"ok": ..., "checks": [...]} as JSON')
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    explicit = os.path.abspath(os.path.expanduser(args.claude)) if args.claude else None
    checks = anyio.run(run_checks, args, explicit)
    failed = [c for c in checks if c.status == "fail"]
    if args.json:
        write_json({"ok": not failed, "checks": [c.to_dict() for c in checks]})
    elif is_tty(sys.stdout):
        _rich_report(checks)
    else:
        _plain_report(checks)
    return EXIT_FAILED if failed else EXIT_OK


async def run_checks(args: argparse.Namespace, explicit: str | None) -> list[Check]:
    env = dict(os.environ)
    found, claude = doctor.check_claude(explicit, env)
    version = await doctor.check_version(claude, env)
    state = doctor.check_state_dir()
    checks = [
        found,
        version,
        doctor.check_credentials(env),
        doctor.check_nested(env),
        doctor.check_root(env, args.permission_mode),
        doctor.check_policy(env),
        state,
        await doctor.check_sqlite(state.status == "ok"),
        await doctor.check_git(env),
        doctor.check_worktree_engine(),
        *await doctor.check_worktrees(state.status == "ok"),
        doctor.check_state_size(state.status == "ok"),
        *await doctor.check_node(env),
        doctor.check_mcp_server(),
    ]
    if args.smoke:
        usable = claude if version.status == "ok" else None
        checks.append(await doctor.check_smoke(usable, model=args.model, timeout_s=args.smoke_timeout))
    return checks


def _summary(checks: list[Check]) -> str:
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        return f"{failed} check{'s' if failed != 1 else ''} failed" + (f", {warned} warning(s)" if warned else "")
    return "all checks passed" + (f" ({warned} warning{'s' if warned != 1 else ''})" if warned else "")


def _plain_report(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for check in checks:
        out(f"{check.status.upper():<5} {check.name.ljust(width)}  {check.detail}")
        if check.fix and check.status in ("fail", "warn"):
            out(f"{'':<5} {''.ljust(width)}  fix: {check.fix}")
    out(_summary(checks))


def _rich_report(checks: list[Check]) -> None:
    from rich.table import Table
    from rich.text import Text

    from cc_executor.cli.common import console

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for check in checks:
        mark, style = _MARKS[check.status]
        detail = Text(check.detail)
        if check.fix and check.status in ("fail", "warn"):
            detail.append(f"\nfix: {check.fix}", style=style)
        grid.add_row(Text(mark, style=f"bold {style}"), check.name, detail)
    terminal = console(sys.stdout)
    terminal.print(grid)
    failed = any(c.status == "fail" for c in checks)
    terminal.print(Text(_summary(checks), style="bold red" if failed else "bold green"))
