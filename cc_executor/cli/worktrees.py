"""``cc-executor merge / discard / diff``: the explicit steps after a run isolated with ``run --worktree``."""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from cc_executor.cli.common import EXIT_FAILED, EXIT_OK, err, local_backend, out, resolve_run, write_json

_STRATEGIES = ("merge", "squash", "ff-only")


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    merge = commands.add_parser(
        "merge",
        help="merge an isolated run's branch into your checkout",
        description="Merge the branch of a run started with --worktree into the checkout it started from. "
        "Checked first, without touching anything: the run has ended, the checkout is on the branch the run "
        "started from (or --into), it has no uncommitted changes, and the merge has no conflicts (git merge-tree); "
        "a conflict lists the files and changes nothing.",
    )
    merge.add_argument("run_id", metavar="RUN", help="run id or unique prefix")
    merge.add_argument(
        "--strategy",
        choices=_STRATEGIES,
        default="merge",
        help="merge: a merge commit (default); squash: one new commit; ff-only: fast-forward or refuse",
    )
    merge.add_argument("--into", metavar="BRANCH", help="merge into this branch (must be checked out)")
    merge.add_argument("--json", action="store_true", help="print the outcome as JSON")
    merge.set_defaults(handler=_merge)

    discard = commands.add_parser(
        "discard",
        help="delete an isolated run's branch (and a worktree a crash left)",
        description="Delete the branch of a run started with --worktree, and its worktree if a crash left one. "
        "Nothing is ever discarded without this command; it prints how to restore the branch.",
    )
    discard.add_argument("run_id", metavar="RUN", help="run id or unique prefix")
    discard.add_argument("--json", action="store_true", help="print the outcome as JSON")
    discard.set_defaults(handler=_discard)

    diff = commands.add_parser(
        "diff",
        help="show an isolated run's changes against its base",
        description="Print the patch of a run started with --worktree against the commit it started from.",
    )
    diff.add_argument("run_id", metavar="RUN", help="run id or unique prefix")
    diff.add_argument("--stat", action="store_true", help="only the diffstat")
    diff.set_defaults(handler=_diff)


def _merge(args: argparse.Namespace) -> int:
    from cc_executor.errors import MergeConflictError
    from cc_executor.worktrees import merge_run

    async def go(store: Any, run_id: str) -> Any:
        return await merge_run(run_id, args.strategy, into=args.into, store=store)

    try:
        outcome = anyio.run(_with_run, args.run_id, go)
    except MergeConflictError as exc:
        if args.json:
            write_json({"merged": False, "conflicts": exc.files, "error": str(exc)})
        err(f"cc-executor merge: conflict: {exc}")
        return EXIT_FAILED
    if args.json:
        write_json({"merged": True, **outcome.to_dict()})
    elif outcome.already_merged:
        out(f"{outcome.branch} is already merged into {outcome.into}; nothing to do")
    else:
        out(
            f"merged {outcome.branch} into {outcome.into} ({outcome.strategy}): "
            f"{outcome.previous_head[:12]} -> {outcome.head_sha[:12]}, {len(outcome.files)} file(s)"
        )
    return EXIT_OK


def _discard(args: argparse.Namespace) -> int:
    from cc_executor.worktrees import discard_run

    async def go(store: Any, run_id: str) -> Any:
        return await discard_run(run_id, store=store)

    outcome = anyio.run(_with_run, args.run_id, go)
    if args.json:
        write_json(outcome.to_dict())
        return EXIT_OK
    if outcome.worktree_removed:
        out(f"removed the leftover worktree {outcome.worktree_removed}")
    if outcome.branch_deleted:
        out(f"deleted branch {outcome.branch} (was {(outcome.head_sha or '?')[:12]})")
    else:
        out(f"branch {outcome.branch} was already gone")
    if outcome.recover:
        err(f"to restore it while git still has the commit: {outcome.recover}")
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from cc_executor.worktrees import run_diff

    async def go(store: Any, run_id: str) -> Any:
        return await run_diff(run_id, store=store, stat=args.stat)

    patch: str = anyio.run(_with_run, args.run_id, go)
    if patch:
        out(patch.rstrip("\n"))
    else:
        err("no changes against the base")
    return EXIT_OK


async def _with_run(ref: str, use: Any) -> Any:
    """Resolve RUN (an id or a unique prefix) through the backend, then do the git step with the registry."""
    from cc_executor.api import open_store

    async with local_backend() as backend:
        run_id = (await resolve_run(backend, ref)).run_id
    async with open_store() as store:
        return await use(store, run_id)
