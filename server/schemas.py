"""The tools' input types and output models: what a client sees in inputSchema / outputSchema.

This module must stay cheap to import (no cc_executor imports): it is loaded before the initialize answer.
The few constants duplicated from the core are checked against it by the tests.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from cc_executor.ids import RUN_ID_REGEX, check_run_id

# Mirrors of cc_executor.models, kept here so the initialize answer never imports the core
# (tests/test_server.py::test_mirrored_constants_match_the_core asserts they match).
PermissionMode = Literal["acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "manual", "plan"]
RunStatusName = Literal[
    "queued",
    "running",
    "success",
    "failed",
    "timeout",
    "idle_timeout",
    "cancelled",
    "lost",
    "skipped",
    "waiting_for_approval",
    "pending",
]
MAX_TIMEOUT_S = 7 * 24 * 3600.0

# The prompt-size limit is the core's (cc_executor.models.MAX_TASK_BYTES, one limit for library, CLI and MCP).
MAX_TASK_BYTES = 4 * 1024 * 1024
# Server-side limits, tighter than the core's: an argument this large is a mistake, not a task.
MAX_LIST_TASKS = 100
MAX_PARALLEL = 16
MAX_TOOL_NAMES = 100
MAX_BUDGET_USD = 1000.0
MAX_TURNS = 10_000
MAX_PAGE_LINES = 1000

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\[\]/@-]{0,127}$")


def _check_task(task: str) -> str:
    if not task.strip():
        raise ValueError("must not be empty")
    size = len(task.encode("utf-8", "surrogatepass"))
    if size > MAX_TASK_BYTES:
        raise ValueError(
            f"is {size} bytes; the limit is {MAX_TASK_BYTES} bytes ({MAX_TASK_BYTES // 1024 // 1024} MiB: "
            "put large inputs in files and name them in the task)"
        )
    if "\x00" in task:
        raise ValueError("must not contain a NUL character")
    return task


def _check_cwd(cwd: str) -> str:
    if "\x00" in cwd:
        raise ValueError("must not contain a NUL character")
    if not cwd.startswith(("/", "~")):
        raise ValueError(f"{_shown(cwd)} is not an absolute path")
    if cwd.startswith("~") and os.path.expanduser(cwd).startswith("~"):
        user = cwd.split("/", 1)[0]
        raise ValueError(f"{_shown(cwd)}: {user} is not the home directory of a known user")
    return cwd


def _check_model(model: str) -> str:
    if not _MODEL_NAME.fullmatch(model):
        raise ValueError(f"{_shown(model)} is not a model name or alias (e.g. 'sonnet', 'claude-sonnet-4-5')")
    return model


def _check_tool_name(name: str) -> str:
    if not name.strip() or len(name) > 500 or any(c in name for c in "\n\r\x00"):
        raise ValueError(f"{_shown(name)} is not a tool name (e.g. 'Bash', 'Bash(git diff:*)', 'WebFetch')")
    return name


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "…")


Task = Annotated[
    str,
    AfterValidator(_check_task),
    Field(
        description="What Claude Code should do, as a self-contained prompt "
        f"(at most {MAX_TASK_BYTES // 1024 // 1024} MiB; put large inputs in files and name them)."
    ),
]
RunId = Annotated[
    str,
    AfterValidator(check_run_id),
    WithJsonSchema(
        {"type": "string", "pattern": RUN_ID_REGEX, "description": "A run id from execute_task/start_task."}
    ),
]
Cwd = Annotated[str, AfterValidator(_check_cwd)]
ToolName = Annotated[str, AfterValidator(_check_tool_name)]
ModelName = Annotated[str, AfterValidator(_check_model)]
TimeoutS = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)]
GitRef = Annotated[str, Field(min_length=1, max_length=250, pattern=r"^[^-\s][^\s]*$")]
SetupArg = Annotated[str, Field(min_length=1, max_length=4096)]


CwdParam = Annotated[
    Cwd | None,
    Field(description="Absolute path of the directory Claude Code works in (default: CC_EXECUTOR_DEFAULT_CWD)."),
]
TimeoutParam = Annotated[
    TimeoutS | None,
    Field(
        description="Wall-clock limit in seconds (default: learned from similar past runs, else 1800); "
        "then the tree is killed."
    ),
]
IdleTimeoutParam = Annotated[
    TimeoutS | None,
    Field(description="Kill the run after this many seconds without any output from the CLI (default 300)."),
]
ModelParam = Annotated[ModelName | None, Field(description="Claude model or alias, e.g. 'sonnet' or 'opus'.")]
PermissionModeParam = Annotated[
    PermissionMode | None,
    Field(
        description=(
            "Claude Code permission mode. Default 'acceptEdits': file edits are allowed, other tools such as Bash "
            "need allowed_tools. 'plan' = read-only; 'bypassPermissions' = everything, only in a trusted or "
            "sandboxed directory."
        )
    ),
]
AllowedToolsParam = Annotated[
    list[ToolName] | None,
    Field(
        max_length=MAX_TOOL_NAMES,
        description="Tools Claude Code may use without asking, e.g. ['Bash', 'Bash(git:*)', 'WebFetch'].",
    ),
]
DisallowedToolsParam = Annotated[
    list[ToolName] | None,
    Field(max_length=MAX_TOOL_NAMES, description="Tools Claude Code may not use, e.g. ['WebSearch']."),
]
MaxTurnsParam = Annotated[int | None, Field(ge=1, le=MAX_TURNS, description="Stop after this many agent turns.")]
BudgetParam = Annotated[
    float | None, Field(gt=0, le=MAX_BUDGET_USD, description="Stop once the run has cost this many US dollars.")
]
SettingSource = Literal["user", "project", "local"]
SettingSourcesParam = Annotated[
    list[SettingSource] | None,
    Field(
        max_length=3,
        description="Which settings the nested Claude Code loads: 'user' (the user's own hooks and MCP servers), "
        "'project', 'local'. Default (server setting): project and local; CLAUDE.md applies either way.",
    ),
]
McpConfigParam = Annotated[
    dict[str, Any] | None,
    Field(
        description='MCP servers for the nested run: {"mcpServers": {"<name>": {"command": "...", "args": [...]}}}. '
        "The user's own servers are not loaded by default. Refused unless the operator set "
        "CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG=1 on this server (each server is a command)."
    ),
]
StrictMcpConfigParam = Annotated[
    bool | None, Field(description="Use only the servers in mcp_config (also ignores the project's .mcp.json).")
]
PermissionPromptsParam = Annotated[
    Literal["deny", "ask"] | None,
    Field(
        description="What happens when the nested run wants a tool that needs permission: 'deny' (listed in "
        "permission_denials) or 'ask' (the person at the host is asked, else the run waits for approve_run)."
    ),
]
JsonSchemaParam = Annotated[
    dict[str, Any] | None,
    Field(description="JSON Schema the final answer must match; the parsed answer comes back as structured_output."),
]

IsolationParam = Annotated[
    Literal["none", "worktree"] | None,
    Field(
        description="'worktree': run in a new git worktree on its own branch (cwd must be in a git repository); the "
        "work is committed there when the run ends, then merge_run or discard_run. Default 'none'; a parallel "
        "task list in a git repository defaults to 'worktree'."
    ),
]
BaseRefParam = Annotated[
    GitRef | None,
    Field(
        description="isolation 'worktree': start from this branch, tag or sha (default: the commit checked out; in a "
        "sequential task list, a list-level base_ref is the first task's and later tasks start from the branch head "
        "of the task before)."
    ),
]
BranchParam = Annotated[
    GitRef | None,
    Field(
        description="isolation 'worktree': the run's branch name, exactly (refused if it exists; default "
        "cc-executor/<first 8 of the run id>)."
    ),
]
SetupParam = Annotated[
    list[SetupArg] | None,
    Field(
        max_length=100,
        description="isolation 'worktree': a command run in the worktree before the task, as an argv list "
        '(no shell), e.g. ["npm", "ci"]; its output goes into the transcript.',
    ),
]


class RunOptions(BaseModel):
    """Options shared by every way of starting a run (and by each entry of a task list)."""

    model_config = ConfigDict(extra="forbid")

    cwd: CwdParam = None
    timeout_s: TimeoutParam = None
    idle_timeout_s: IdleTimeoutParam = None
    model: ModelParam = None
    permission_mode: PermissionModeParam = None
    allowed_tools: AllowedToolsParam = None
    disallowed_tools: DisallowedToolsParam = None
    max_turns: MaxTurnsParam = None
    max_budget_usd: BudgetParam = None
    json_schema: JsonSchemaParam = None
    setting_sources: SettingSourcesParam = None
    mcp_config: McpConfigParam = None
    strict_mcp_config: StrictMcpConfigParam = None
    permission_prompts: PermissionPromptsParam = None
    isolation: IsolationParam = None
    base_ref: BaseRefParam = None
    branch: BranchParam = None
    setup: SetupParam = None

    def merged_over(self, defaults: RunOptions) -> RunOptions:
        """These options, with unset ones taken from ``defaults`` (a task list's shared options)."""
        mine = self.model_dump(exclude_none=True)
        return RunOptions(**{**defaults.model_dump(exclude_none=True), **mine})


class TaskSpec(RunOptions):
    """One entry of execute_task_list; unset options fall back to the list-level ones."""

    task: Task


# --- outputs -------------------------------------------------------------------------------------------------------

ResultStatus = Literal[
    "queued",
    "running",
    "success",
    "failed",
    "timeout",
    "idle_timeout",
    "cancelled",
    "lost",
    "pending",
    "skipped",
    "waiting_for_approval",
]


class Commit(BaseModel):
    sha: str
    subject: str


class PendingApproval(BaseModel):
    """A question the nested Claude Code is waiting on: answer it with approve_run(run_id, request_id, ...)."""

    request_id: str
    kind: Literal["permission", "elicitation"] = Field(
        description="permission: a tool call needs approval; elicitation: one of the run's MCP servers asks."
    )
    tool: str | None = Field(default=None, description="The tool (or, for an elicitation, the MCP server).")
    summary: str = Field(description="What it would do: the command, the file path, the question.")
    reason: str | None = Field(default=None, description="Why Claude Code asks.")
    can_allow_for_run: bool = Field(description="allow_for_run is offered (a rule for the rest of the run).")
    deadline_at: str = Field(description="Denied automatically at this time if nobody answers.")
    requested_schema: dict[str, Any] | None = Field(
        default=None,
        description="For an elicitation: the form (JSON Schema). Answer with decision 'allow' and the filled form "
        "as a JSON object in message; 'deny' declines.",
    )


class RunResult(BaseModel):
    """A run's state or outcome. ``status`` 'running' means: call wait_run(run_id) for the result."""

    run_id: str
    status: ResultStatus = Field(
        description="success | failed | timeout | idle_timeout | cancelled | lost | running | queued | "
        "waiting_for_approval (see pending_approvals) …"
    )
    done: bool = Field(description="True once the run has finished (whatever its status).")
    message: str = Field(description="What happened and what to do next.")
    result: str | None = Field(default=None, description="Claude's final answer (trimmed; see result_truncated).")
    result_truncated: bool = False
    result_chars: int | None = Field(default=None, description="Length of the full result text.")
    structured_output: Any = Field(default=None, description="The parsed answer when json_schema was given.")
    summary: str | None = None
    files_created: list[str] = Field(
        default_factory=list,
        description="From a diff of cwd (isolation 'worktree': base..head, repository paths), not Claude's claims.",
    )
    files_modified: list[str] = Field(default_factory=list)
    files_deleted: list[str] = Field(default_factory=list)
    cost_usd: float | None = None
    duration_s: float | None = None
    num_turns: int | None = None
    session_id: str | None = None
    error_class: str | None = None
    error: str | None = None
    permission_denials: list[str] = Field(default_factory=list, description="Tools that were denied during the run.")
    last_progress: str | None = Field(default=None, description="The latest progress message of a live run.")
    attempts: int | None = Field(default=None, description="Attempts it took (API retries, or a lost worker's rerun).")
    worker: str | None = Field(default=None, description="The worker that ran it (Temporal backend only).")
    pending_approvals: list[PendingApproval] = Field(
        default_factory=list, description="Questions the run waits on; answer with approve_run."
    )
    task: str | None = Field(default=None, description="The task (shortened).")
    cwd: str | None = None
    list_id: str | None = None
    parent_run_id: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    transcript_uri: str | None = None
    result_uri: str | None = None
    isolation: Literal["none", "worktree"] = "none"
    branch: str | None = Field(default=None, description="isolation 'worktree': the branch holding the run's work.")
    base_sha: str | None = None
    head_sha: str | None = None
    commits: list[Commit] = Field(default_factory=list, description="base..head, oldest first.")
    diffstat: str | None = None
    uncommitted_changes_not_carried: bool = Field(
        default=False, description="The checkout had uncommitted changes; the worktree started without them."
    )
    worktree_path: str | None = Field(default=None, description="Set only while the run's worktree exists.")


class ListTotals(BaseModel):
    tasks: int
    succeeded: int = 0
    failed: int = Field(default=0, description="Finished without success (failed, timeout, cancelled, lost).")
    skipped: int = 0
    unfinished: int = Field(default=0, description="Still queued, running or pending after hand-off.")
    cost_usd: float = 0.0
    duration_s: float = Field(default=0.0, description="Wall-clock time of this call.")


class TaskListOutput(BaseModel):
    """execute_task_list's answer: one result per task, the totals, and how the list ended."""

    list_id: str
    status: Literal["success", "failed", "running", "cancelled"]
    done: bool
    message: str
    mode: Literal["sequential", "parallel"]
    tasks: list[RunResult]
    totals: ListTotals
    isolation: Literal["none", "worktree"] = "none"
    note: str | None = Field(default=None, description="Set when the list's isolation was chosen for you.")


class TranscriptPageOutput(BaseModel):
    """get_transcript's answer: one page of readable or raw lines and the cursor of the next."""

    run_id: str
    format: Literal["text", "raw"]
    cursor: str
    next_cursor: str | None = Field(description="Pass as cursor to get the next page; null when nothing is left.")
    lines: list[str]
    line_truncated: bool = Field(default=False, description="The last line continues on the next page.")
    total_bytes: int = Field(description="Size of the raw transcript file so far.")
    run_status: str
    message: str


class RunSummary(BaseModel):
    run_id: str
    status: str
    task: str
    cwd: str
    created_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    cost_usd: float | None = None
    error_class: str | None = None
    list_id: str | None = None
    list_index: int | None = Field(default=None, description="1-based position in its task list.")
    last_progress: str | None = None
    branch: str | None = None
    commits: int = 0


class RunList(BaseModel):
    runs: list[RunSummary]
    count: int
    message: str
