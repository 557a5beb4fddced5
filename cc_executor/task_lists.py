"""Task lists, the public entry points: validate a whole list into requests (``build_list_requests``), then run it
(``cc_execute_list`` in this process). The orchestration itself (order, parallelism, stop_on_error, skipping,
cancelling) is ``engine.task_list_runner.TaskList``; see that module for how a list runs and stops. Its
public names (``ListTask``, ``TaskListResult``) are re-exported here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from cc_executor.engine.slots import RunSlots
from cc_executor.engine.task_list_runner import (
    ExecuteFn,
    ListCounts,
    ListEntry,
    ListMember,
    ListProgressCallback,
    MemberState,
    TaskList,
    TaskListResult,
    UpdateCallback,
    context_preamble,
    run_task_list,
)
from cc_executor.models import CCExecutorConfig, Isolation, RunRequest
from cc_executor.registry.store import RunStore

__all__ = [
    "MAX_LIST_TASKS",
    "ExecuteFn",
    "ListCounts",
    "ListEntry",
    "ListMember",
    "ListProgressCallback",
    "ListTask",
    "MemberState",
    "TaskList",
    "TaskListResult",
    "UpdateCallback",
    "build_list_requests",
    "cc_execute_list",
    "context_preamble",
    "list_isolation",
    "run_task_list",
]

MAX_LIST_TASKS = 200


class ListTask(BaseModel):
    """One task of a list, with optional per-task overrides of the list's config."""

    task: str
    overrides: dict[str, Any] = Field(default_factory=dict, description="CCExecutorConfig fields for this task only.")
    json_schema: dict[str, Any] | None = None
    branch: str | None = Field(default=None, description="isolation 'worktree': this task's branch, exactly.")
    base_ref: str | None = Field(
        default=None,
        description="isolation 'worktree': this task's base (in a sequential list the default is the branch head "
        "of the task before it).",
    )


def build_list_requests(
    tasks: Sequence[str | ListTask | dict[str, Any]],
    *,
    config: CCExecutorConfig | None = None,
    cwd: str | Path | None = None,
    list_id: str | None = None,
    **fields: Any,
) -> list[RunRequest]:
    """Validate the whole list before anything runs (an InvalidRequestError names the task and field; the
    operator's policy is checked for every task too, so a list never stops halfway on a PolicyError)."""
    from cc_executor.api import build_request
    from cc_executor.errors import InvalidRequestError, PolicyError
    from cc_executor.policy import current_policy

    if not tasks:
        raise InvalidRequestError("tasks: the list is empty")
    if len(tasks) > MAX_LIST_TASKS:
        raise InvalidRequestError(f"tasks: {len(tasks)} tasks is more than the limit of {MAX_LIST_TASKS}")
    base = config or CCExecutorConfig()
    list_id = list_id or str(uuid.uuid4())
    requests = []
    policy = current_policy()
    for index, item in enumerate(tasks, start=1):
        spec = ListTask(task=item) if isinstance(item, str) else ListTask.model_validate(item)
        try:
            task_config = base.model_copy(update=spec.overrides) if spec.overrides else base
            task_config = CCExecutorConfig.model_validate(task_config.model_dump())
            request = build_request(
                spec.task,
                config=task_config,
                cwd=cwd,
                json_schema=spec.json_schema,
                list_id=list_id,
                **_with_own(fields, branch=spec.branch, base_ref=spec.base_ref),
            )
            policy.enforce(request)  # refuses here; prepare_run applies it again when the task runs
            requests.append(request)
        except PolicyError as exc:
            raise PolicyError(f"tasks[{index}]: {exc}", setting=exc.setting) from None
        except (InvalidRequestError, ValueError) as exc:
            raise InvalidRequestError(f"tasks[{index}]: {exc}") from None
    return requests


def _with_own(fields: dict[str, Any], **own: str | None) -> dict[str, Any]:
    """The list's fields with the ones a task gives itself on top."""
    return {**fields, **{k: v for k, v in own.items() if v is not None}}


def _first_with_base(item: str | ListTask | dict[str, Any], base_ref: str) -> ListTask:
    spec = ListTask(task=item) if isinstance(item, str) else ListTask.model_validate(item)
    return spec if spec.base_ref is not None else spec.model_copy(update={"base_ref": base_ref})


async def cc_execute_list(
    tasks: Sequence[str | ListTask | dict[str, Any]],
    *,
    sequential: bool = True,
    max_parallel: int = 2,
    stop_on_error: bool | None = None,
    config: CCExecutorConfig | None = None,
    cwd: str | Path | None = None,
    on_progress: ListProgressCallback | None = None,
    store: RunStore | None = None,
    slots: RunSlots | None = None,
    isolation: Isolation | None = None,
    base_ref: str | None = None,
    setup: list[str] | None = None,
) -> TaskListResult:
    """Run several tasks in one cwd. Sequential (default): each later task is told the earlier results and
    the list stops at the first failure. ``sequential=False``: at most ``max_parallel`` at once.

    ``isolation``: "worktree" runs each task in its own git worktree and branch (see ``cc_executor.worktrees``);
    by default a parallel list whose cwd is inside a git repository does so, and its result's ``note`` says so.
    In a sequential list of worktrees ``base_ref`` is the first task's base, and each later task (unless its
    ``ListTask.base_ref`` says otherwise) starts from the branch head of the task before it: it sees the earlier
    work, and the last task's branch holds all of it (the ``note`` says so)."""
    from cc_executor.api import open_store

    chosen, note = await list_isolation(isolation, sequential=sequential, cwd=cwd)
    extra: dict[str, Any] = {"isolation": chosen}
    if chosen == "worktree":
        extra.update({k: v for k, v in (("base_ref", base_ref), ("setup", setup)) if v is not None})
    if sequential and chosen == "worktree":  # the list's base is the first task's; the others chain (TaskList)
        extra.pop("base_ref", None)
        tasks = [_first_with_base(tasks[0], base_ref), *tasks[1:]] if base_ref is not None and tasks else tasks
    requests = build_list_requests(tasks, config=config, cwd=cwd, **extra)
    if chosen == "worktree":
        from cc_executor.worktrees import check_requests

        await check_requests(requests)  # a bad base or a taken branch stops the list before any task starts
    kwargs: dict[str, Any] = {
        "sequential": sequential,
        "max_parallel": max_parallel,
        "stop_on_error": stop_on_error,
        "on_progress": on_progress,
        "slots": slots,
    }
    if store is not None:
        result = await run_task_list(requests, store, **kwargs)
    else:
        async with open_store() as own:
            result = await run_task_list(requests, own, **kwargs)
    return result.model_copy(update={"isolation": chosen, "note": note})


SEQUENTIAL_WORKTREES_NOTE = (
    "sequential tasks in worktrees: each task after the first started from the branch head of the task before it "
    "(unless it gave its own base_ref), so it saw the earlier work and the last task's branch holds all of it: "
    "merge that one (merge_run / `cc-executor merge`)"
)


async def list_isolation(
    isolation: Isolation | None, *, sequential: bool, cwd: str | Path | None
) -> tuple[Isolation, str | None]:
    """The isolation a list runs with, and a note when it was chosen for the caller: parallel tasks in a git
    repository get worktrees, so they cannot overwrite each other's files."""
    if sequential and isolation == "worktree":
        return "worktree", SEQUENTIAL_WORKTREES_NOTE
    if isolation is not None or sequential:
        return isolation or "none", None
    from cc_executor.engine.git import git

    where = Path(cwd) if cwd is not None else Path.cwd()
    inside = await git(["rev-parse", "--is-inside-work-tree"], cwd=where.expanduser(), check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return "none", None
    note = (
        f"parallel tasks in the git repository at {where} ran in their own worktrees (isolation 'worktree'), each "
        "on its own branch: merge the ones you want (merge_run / `cc-executor merge`); pass isolation 'none' to "
        "share the checkout instead"
    )
    return "worktree", note
