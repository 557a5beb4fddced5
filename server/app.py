"""The MCP server: tools, resources and instructions over the cc_executor core.

``create_server(settings)`` builds an MCPServer; the tools are thin wrappers over run_tools.py,
task_list_tools.py and transcript_tools.py, which reach runs only through the backend seam. Importing this
module loads none of the core (api, backends) and not the modules only tool bodies use: they come in on the first
tool call, so the initialize answer costs little more than importing the SDK (server/startup.py, bench 4a).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer, Resolve
from mcp.types import InputRequiredResult, ListRootsResult, ToolAnnotations
from pydantic import Field

from . import worktree_tools as worktrees
from .errors import ToolErrorServer
from .progress_notifications import ProgressSink
from .resources import register_resources
from .roots import ask_host_roots, root_paths
from .schemas import (
    MAX_LIST_TASKS,
    MAX_PAGE_LINES,
    MAX_PARALLEL,
    Cwd,
    RunId,
    RunList,
    RunOptions,
    RunResult,
    RunStatusName,
    Task,
    TaskListOutput,
    TaskSpec,
    TranscriptPageOutput,
)
from .settings import MAX_RETURN_AFTER_S, MAX_WAIT_S, ServerSettings
from .startup import LazyModule, ToolSpec, build_tools, sdk_logging_setup
from .state import AppState, Ctx, lifespan_for, peer_cancel_check

if TYPE_CHECKING:
    from . import approval_tools
    from . import run_tools as runs
    from . import task_list_tools as lists
    from . import transcript_tools as transcripts
else:  # only the tool bodies use these: they load with the first tool call, not before the initialize answer
    approval_tools = LazyModule(".approval_tools", __package__)
    runs = LazyModule(".run_tools", __package__)
    lists = LazyModule(".task_list_tools", __package__)
    transcripts = LazyModule(".transcript_tools", __package__)

SERVER_NAME = "cc-executor"

INSTRUCTIONS = """\
cc-executor runs Claude Code (the `claude` CLI) as a supervised subprocess: it does real work in a directory you
name — reads and edits files, runs commands — and reports back. Every run gets a run_id and is recorded.

How to use it:
- execute_task(task, cwd) runs one task and returns its result. It waits at most return_after_s (server default
  {return_after}s) so your host's tool-call timeout is never hit; if the task is still going then, you get
  status "running" and a run_id: call wait_run(run_id) (repeat while status is "running") to get the result.
  The run keeps going on the server in the meantime. Progress notifications are sent while a call waits.
- For work you know is long, or several runs at once: start_task returns a run_id at once; then wait_run,
  get_run (status + latest progress, no waiting), cancel_run, list_runs.
- execute_task_list runs several tasks under one list_id: sequential by default, where each later task sees a
  summary of the earlier results; or parallel with max_parallel.
- Permissions: by default Claude Code may edit files in cwd (permission_mode "acceptEdits") but other tools such
  as Bash need allowed_tools, e.g. ["Bash"] or ["Bash(npm test:*)"]. If a result lists permission_denials, run
  again with those tools in allowed_tools. permission_mode "plan" is read-only; "bypassPermissions" allows
  everything and belongs only in a trusted or sandboxed directory. With permission_prompts "ask", such a tool is
  asked about instead: the user may get a form; otherwise the call returns status "waiting_for_approval" with
  pending_approvals, and you answer with approve_run(run_id, request_id, decision) (ask the user if unsure).
- Without cwd, the run works in your root (your working directory); a cwd outside your roots is refused.
- Results are trimmed to about {max_chars} characters. When result_truncated is true, read the rest with
  get_transcript(run_id, format="text", tail=1) or the resource cc-executor://runs/{{run_id}}/result.
- json_schema makes the final answer structured (returned as structured_output). resume_run_id continues the
  Claude conversation of an earlier run in the same directory.
- files_created / files_modified come from a diff of cwd, not from what the model claims.
- isolation "worktree" runs a task in its own git worktree and branch (cwd must be in a git repository), so
  parallel tasks cannot overwrite each other; the result names the branch and its commits. Merge the work back
  with merge_run (checks for conflicts first, never touches a dirty checkout) or drop it with discard_run.
"""

_RUNNING = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
_READING = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_WAITING = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_CANCELLING = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

ReturnAfter = Annotated[
    float | None,
    Field(
        ge=0,
        le=MAX_RETURN_AFTER_S,
        description=(
            "Return after this many seconds even if the task is still running (status 'running' + run_id; "
            "then call wait_run). Default: the server's CC_EXECUTOR_RETURN_AFTER_S (50 s). 0 = like start_task."
        ),
    ),
]
ResumeRunId = Annotated[
    RunId | None,
    Field(description="Continue the Claude conversation of this earlier run (same cwd; the new run gets its own id)."),
]


def _state(ctx: Ctx) -> AppState:
    return ctx.request_context.lifespan_context


def _sink(ctx: Ctx, total: float | None = None) -> ProgressSink:
    return ProgressSink(ctx.report_progress, total=total)


# Filled by the SDK before the tool body runs (never by the caller): the host's roots, both eras (server/roots.py).
HostRoots = Annotated[ListRootsResult | None, Resolve(ask_host_roots)]
NO_OPTIONS = RunOptions()  # placeholder default: with_run_options always passes the call's options
ToolFn = TypeVar("ToolFn", bound=Callable[..., Awaitable[Any]])


def with_run_options(*, exclude: tuple[str, ...] = ()) -> Callable[[ToolFn], ToolFn]:
    """Expand a tool's ``options: RunOptions`` parameter into one top-level parameter per RunOptions field.

    RunOptions is the one definition of the run options (types, limits, descriptions); the SDK derives each tool's
    input schema from its signature, so the signature is rewritten here and the call gathers the values back
    into a RunOptions."""
    fields = {name: info for name, info in RunOptions.model_fields.items() if name not in exclude}
    expanded = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[info.rebuild_annotation(), Field(description=info.description)],
        )
        for name, info in fields.items()
    ]

    def decorate(fn: ToolFn) -> ToolFn:
        signature = inspect.signature(fn, eval_str=True)
        params: list[inspect.Parameter] = []
        for param in signature.parameters.values():
            if param.name == "options":
                params.extend(expanded)
            else:
                kind = inspect.Parameter.KEYWORD_ONLY if param.default is not inspect.Parameter.empty else param.kind
                params.append(param.replace(kind=kind))

        @functools.wraps(fn)
        async def tool(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name, None) for name in fields}
            options = RunOptions(**{name: value for name, value in values.items() if value is not None})
            return await fn(*args, options=options, **kwargs)

        tool.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return tool  # type: ignore[return-value]

    return decorate


# --- tools ---------------------------------------------------------------------------------------------------------


@with_run_options()
async def execute_task(
    task: Task,
    ctx: Ctx,
    roots: HostRoots,
    options: RunOptions,
    resume_run_id: ResumeRunId = None,
    return_after_s: ReturnAfter = None,
) -> RunResult:
    """Run one task with Claude Code in `cwd` and return its result: the final answer (trimmed; see
    result_truncated), structured_output when json_schema is given, files created/modified (from a diff), cost,
    duration and turns. Sends progress notifications while it runs. If the task is still running after
    return_after_s (default 50 s) the call returns status "running" with the run_id: call wait_run(run_id) to get
    the result; the run keeps going meanwhile (also if the server restarts). Cancelling this call kills the run.
    Claude Code may edit files in cwd by default; pass allowed_tools (e.g. ["Bash"]) for commands."""
    state = _state(ctx)
    wait_s = state.settings.return_after_s if return_after_s is None else return_after_s
    with runs.tool_errors():
        submission = await runs.make_request(state, task, options, resume_run_id=resume_run_id, roots=root_paths(roots))
        person = approval_tools.HostPerson(ctx)
        return await runs.execute(state, submission, _sink(ctx), wait_s, person, peer_cancel_check(ctx))


@with_run_options()
async def start_task(
    task: Task,
    ctx: Ctx,
    roots: HostRoots,
    options: RunOptions,
    resume_run_id: ResumeRunId = None,
) -> RunResult:
    """Start a task in the background and return its run_id at once (status "queued" or "running"). Follow it
    with wait_run(run_id) (long-poll), get_run(run_id) (snapshot) and cancel_run(run_id). Use this for work you
    expect to take long, or to run several tasks side by side. Same options as execute_task."""
    state = _state(ctx)
    with runs.tool_errors():
        submission = await runs.make_request(state, task, options, resume_run_id=resume_run_id, roots=root_paths(roots))
        run_id = await runs.submit(state, submission)
        return await runs.describe(state, run_id)


@with_run_options(exclude=("json_schema", "branch"))
async def execute_task_list(
    tasks: Annotated[
        list[TaskSpec],
        Field(
            min_length=1,
            max_length=MAX_LIST_TASKS,
            description="The tasks, each {task, and optionally any of the per-task options}; unset options "
            "fall back to the list-level ones below.",
        ),
    ],
    ctx: Ctx,
    roots: HostRoots,
    mode: Annotated[
        Literal["sequential", "parallel"],
        Field(
            description="sequential: one after another, each seeing a summary of the earlier results (with "
            "isolation 'worktree', each later task starts from the branch head of the task before it unless it "
            "gives base_ref); parallel: up to max_parallel at once."
        ),
    ] = "sequential",
    max_parallel: Annotated[
        int, Field(ge=1, le=MAX_PARALLEL, description="Parallel mode: at most this many at once.")
    ] = 4,
    stop_on_error: Annotated[
        bool, Field(description="Once a task fails, cancel the running ones and skip those not yet started.")
    ] = True,
    options: RunOptions = NO_OPTIONS,
    return_after_s: ReturnAfter = None,
) -> TaskListOutput:
    """Run several tasks under one list_id and return one result per task plus totals. sequential (default):
    each task starts after the previous one and its prompt begins with a short summary of the earlier results;
    parallel: up to max_parallel at once. Every task is its own run (own run_id). If the list is still running
    after return_after_s, the call returns status "running" with every task's run_id: wait_run each of them."""
    state = _state(ctx)
    wait_s = state.settings.return_after_s if return_after_s is None else return_after_s
    with runs.tool_errors():
        return await lists.execute_list(
            state,
            tasks,
            options,
            mode=mode,
            max_parallel=max_parallel,
            stop_on_error=stop_on_error,
            sink=_sink(ctx, len(tasks)),
            wait_s=wait_s,
            roots=root_paths(roots),
            by_peer=peer_cancel_check(ctx),
        )


async def get_run(run_id: RunId, ctx: Ctx) -> RunResult:
    """A run's status, latest progress message and — once finished — its result. Returns at once."""
    state = _state(ctx)
    with runs.tool_errors():
        list_id = await lists.find_list(state, run_id)
        if list_id is not None:
            return await lists.describe_entry(state, list_id, run_id)
        return await runs.describe(state, run_id)


async def wait_run(
    run_id: RunId,
    ctx: Ctx,
    timeout_s: Annotated[
        float | None,
        Field(ge=0, le=MAX_WAIT_S, description="Wait at most this long (default: the server's return_after_s, 50 s)."),
    ] = None,
) -> RunResult | InputRequiredResult:
    """Wait for a run to finish and return its result; after timeout_s it returns the current state instead
    (status "running": call wait_run again). Sends progress notifications while it waits. If the run waits for
    approval (status waiting_for_approval), the user is asked where the host can show a form; otherwise answer
    with approve_run."""
    state = _state(ctx)
    wait_s = state.settings.return_after_s if timeout_s is None else timeout_s
    sink = _sink(ctx)
    person = approval_tools.HostPerson(ctx)
    with runs.tool_errors():
        async with runs.cancelling_on_peer_cancel(state, run_id, peer_cancel_check(ctx)):
            list_id = await lists.find_list(state, run_id)
            if list_id is not None:
                return await lists.wait_entry(state, list_id, run_id, sink=sink, timeout_s=wait_s)
            if person.via_input_required:
                backend = await state.backend()
                if await approval_tools.take_input_responses(backend, run_id, ctx, state.handed_over):
                    return await runs.describe(state, run_id)  # nobody at the host: the caller decides (approve_run)
            out = await runs.wait(state, run_id, wait_s, sink, person)
            if person.via_input_required and out.status == "waiting_for_approval":
                return approval_tools.input_required(run_id, out, state.handed_over) or out
            return out


async def cancel_run(
    run_id: RunId,
    ctx: Ctx,
    reason: Annotated[str | None, Field(max_length=500, description="Recorded with the run.")] = None,
) -> RunResult:
    """Cancel a queued or running run: its whole process tree is killed and the run is recorded as cancelled
    (the reason is kept). A pending task of a list is skipped (it never starts; the list goes on). Cancelling a
    finished run changes nothing and says so."""
    state = _state(ctx)
    with runs.tool_errors():
        list_id = await lists.find_list(state, run_id)
        if list_id is not None:
            return await lists.cancel_entry(state, list_id, run_id, reason)
        return await runs.cancel(state, run_id, reason)


async def approve_run(
    run_id: RunId,
    request_id: Annotated[str, Field(min_length=1, max_length=200, description="From pending_approvals.")],
    decision: Annotated[
        Literal["allow", "allow_for_run", "deny"],
        Field(description="allow: once; allow_for_run: also the same again for the rest of this run; deny."),
    ],
    ctx: Ctx,
    message: Annotated[
        str | None, Field(max_length=2000, description="Recorded; with deny, also shown to the nested Claude.")
    ] = None,
) -> RunResult:
    """Answer a question a run waits on (status waiting_for_approval, see pending_approvals): a tool call the
    nested Claude Code needs permission for. Ask the user when you are not sure. The first answer wins (the
    person at the host may have answered already); unanswered questions are denied at their deadline."""
    state = _state(ctx)
    with runs.tool_errors():
        return await runs.approve(state, run_id, request_id, decision, message)


async def list_runs(
    ctx: Ctx,
    status: Annotated[RunStatusName | None, Field(description="Only runs with this status.")] = None,
    cwd: Annotated[Cwd | None, Field(description="Only runs that worked in this directory (absolute path).")] = None,
    since: Annotated[
        str | None,
        Field(
            max_length=64, description="Only runs created since: ISO-8601 time, or an age such as '30m', '2h', '1d'."
        ),
    ] = None,
    list_id: Annotated[str | None, Field(max_length=64, description="Only the runs of this task list.")] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many runs.")] = 20,
) -> RunList:
    """Recorded runs, newest first, with status, task (shortened), cwd, times, cost and error class. Tasks of a
    running list that have not started yet come first, as status "pending" with their list_id and list_index."""
    with runs.tool_errors():
        return await runs.list_runs(_state(ctx), status=status, cwd=cwd, since=since, list_id=list_id, limit=limit)


async def get_transcript(
    run_id: RunId,
    ctx: Ctx,
    cursor: Annotated[
        str | None,
        Field(max_length=40, description="next_cursor of the previous page; omit to start at the beginning."),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_LINES, description="At most this many lines.")] = 200,
    format: Annotated[
        Literal["text", "raw"],
        Field(description="text: readable lines (assistant text, tool calls, results); raw: the stream-json events."),
    ] = "text",
    tail: Annotated[
        int | None,
        Field(ge=1, le=MAX_PAGE_LINES, description="Start this many lines before the end (tail=1: the final result)."),
    ] = None,
) -> TranscriptPageOutput:
    """Page through a run's transcript (also while it runs). Pages fit a tool result; a line longer than a page
    continues on the next one. Use it for results that were trimmed, or to see what Claude Code did."""
    with runs.tool_errors():
        return await transcripts.get_transcript(_state(ctx), run_id, cursor=cursor, limit=limit, fmt=format, tail=tail)


async def merge_run(
    run_id: RunId,
    ctx: Ctx,
    strategy: Annotated[
        worktrees.Strategy,
        Field(description="merge: a merge commit; squash: one new commit; ff-only: fast-forward or refuse."),
    ] = "merge",
    into: Annotated[
        str | None,
        Field(max_length=250, description="The branch to merge into (default: the one the run started from)."),
    ] = None,
) -> worktrees.MergeOutput:
    """Merge the branch of a finished run that had isolation 'worktree' into the checkout it started from (its
    cwd). Checks first and changes nothing when: the checkout is on another branch, has uncommitted changes, or
    the merge would conflict (conflicts lists the files; merged is false). Then merges with the strategy."""
    with runs.tool_errors():
        return await worktrees.merge(_state(ctx), run_id, strategy, into)


async def discard_run(run_id: RunId, ctx: Ctx) -> worktrees.DiscardOutput:
    """Delete the branch of a finished run that had isolation 'worktree' (and its worktree if a crash left one).
    Nothing is discarded without this call; the answer says how to restore the branch."""
    with runs.tool_errors():
        return await worktrees.discard(_state(ctx), run_id)


# --- assembly ------------------------------------------------------------------------------------------------------

TOOLS: list[ToolSpec] = [
    (execute_task, "Run a task with Claude Code", _RUNNING),
    (execute_task_list, "Run a list of tasks with Claude Code", _RUNNING),
    (start_task, "Start a task in the background", _RUNNING),
    (get_run, "Get a run's status and result", _READING),
    (wait_run, "Wait for a run to finish", _WAITING),
    (cancel_run, "Cancel a run", _CANCELLING),
    (approve_run, "Answer a run's permission prompt", _CANCELLING),
    (list_runs, "List recorded runs", _READING),
    (get_transcript, "Read a run's transcript", _READING),
    (merge_run, "Merge an isolated run's branch", _CANCELLING),
    (discard_run, "Discard an isolated run's branch", _CANCELLING),
]


def create_server(settings: ServerSettings | None = None) -> MCPServer[AppState]:
    """A ready MCPServer; ``settings`` default to the environment (ServerSettings.from_env())."""
    settings = settings or ServerSettings.from_env()
    tools = build_tools(TOOLS)  # each structured (outputSchema), as add_tool(fn, structured_output=True) builds it
    with sdk_logging_setup():
        server: MCPServer[AppState] = ToolErrorServer(
            SERVER_NAME,
            title="Claude Code executor",
            version=version("cc-executor"),  # one source: pyproject.toml
            instructions=INSTRUCTIONS.format(
                return_after=f"{settings.return_after_s:g}", max_chars=settings.max_result_chars
            ),
            lifespan=lifespan_for(settings),
            log_level="WARNING",
            tools=tools,
        )
    register_resources(server)
    return server


mcp: MCPServer[AppState]  # created on first access, see __getattr__


def __getattr__(name: str) -> Any:
    """``from cc_executor_mcp.app import mcp``: a server with settings from the environment, built on first use."""
    if name == "mcp":
        global mcp
        mcp = create_server()
        return mcp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
