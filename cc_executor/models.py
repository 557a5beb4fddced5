"""Boundary models: what a caller passes in (config, request) and gets back (result, progress)."""

from __future__ import annotations

import json
import re
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from cc_executor.ids import RUN_ID_PATTERN as RUN_ID_PATTERN

PermissionMode = Literal["acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "manual", "plan"]
PERMISSION_MODES: tuple[str, ...] = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "manual", "plan")

SettingSource = Literal["user", "project", "local"]
# The isolated nested profile: the project's settings and CLAUDE.md apply; the user's own hooks and MCP servers
# (user settings, ~/.claude.json) stay out of nested runs (docs/host-interaction.md has what each switch loads).
DEFAULT_SETTING_SOURCES: tuple[SettingSource, ...] = ("project", "local")
PermissionPrompts = Literal["deny", "ask"]
_MCP_SERVER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

MAX_TASK_BYTES = 4 * 1024 * 1024
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# Values that reach the CLI's argv (docs/security.md). A permission rule is a tool name (letters, digits, _ - and *
# for MCP wildcards such as mcp__server__*), optionally with one parenthesised specifier ("Bash(git log:*)"); no
# spaces or commas outside the parentheses, since the CLI splits one argument on those into several rules.
TOOL_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_*-]*(\([^\x00-\x1f\x7f]*\))?")
# Model names and aliases ("sonnet", "claude-sonnet-4-5", "claude-opus-4-1[1m]", Bedrock ARNs with ':' and '/').
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@\[\]+-]{0,199}")
# The CLI's session ids are UUIDs (it also takes titles, which we never produce).
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def tool_rule_problem(rule: str) -> str:
    """Why ``rule`` is not a permission rule (one sentence)."""
    return (
        f"{rule!r} is not a tool rule; expected a tool name such as 'Read', 'mcp__server__tool' or "
        "'Bash(git log:*)', one rule per entry, never starting with '-'"
    )


Isolation = Literal["none", "worktree"]
ISOLATIONS: tuple[str, ...] = ("none", "worktree")


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    IDLE_TIMEOUT = "idle_timeout"
    CANCELLED = "cancelled"
    LOST = "lost"
    SKIPPED = "skipped"
    WAITING_FOR_APPROVAL = "waiting_for_approval"  # running, with a permission prompt nobody has answered yet
    PENDING = "pending"  # a task its list has not started yet: no row, reported from the list (never stored)

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_FOR_APPROVAL, RunStatus.PENDING)


class CCExecutorConfig(BaseModel):
    """How a run is executed. Every field has a safe default; the seed's names are kept."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_S, description="Wall-clock limit in seconds; None = the default (1800 s)."
    )
    idle_timeout: float | None = Field(
        default=300.0, gt=0, le=MAX_TIMEOUT_S, description="Kill the run after this many seconds without a stream line."
    )
    stream_output: bool = Field(default=False, description="Print live progress lines on stderr.")
    save_transcript: bool = Field(default=True, description="Keep the raw stream-json transcript of each run.")
    transcript_dir: Path | None = Field(
        default=None, description="Where transcripts go; default <state dir>/transcripts."
    )
    model: str | None = None
    permission_mode: PermissionMode = "acceptEdits"
    allowed_tools: list[str] = Field(default_factory=list)
    disallowed_tools: list[str] = Field(default_factory=list)
    add_dirs: list[Path] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, ge=1, le=10_000)
    max_budget_usd: float | None = Field(default=None, gt=0)
    append_system_prompt: str | None = None
    claude_path: str | None = Field(
        default=None, description="Explicit `claude` executable; else CC_EXECUTOR_CLAUDE, PATH, ..."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the CLI (never recorded).")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts for retryable failures (429, 529, 5xx).")
    retry_base_delay_s: float = Field(default=2.0, ge=0)
    retry_max_wait_s: float = Field(default=300.0, ge=0, description="Never wait longer than this before a retry.")
    kill_grace_s: float = Field(default=2.0, ge=0, le=60, description="Seconds between SIGINT, SIGTERM and SIGKILL.")
    heartbeat_s: float = Field(default=5.0, gt=0, le=5.0, description="Progress at least this often, even when silent.")
    track_files: bool = Field(default=True, description="Diff the working directory to list files created/modified.")
    max_line_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Longer stream lines are spilled to the transcript unparsed."
    )
    agent_predict_timeout: bool = Field(
        default=False,
        description="With no timeout given, also ask a cheap model for an estimate (recorded beside history).",
    )
    prediction_model: str | None = Field(default=None, description="Model for agent_predict_timeout; default: `model`.")
    worktree_dir: Path | None = Field(
        default=None, description="Where isolated runs' git worktrees are made; default <state dir>/worktrees."
    )

    setting_sources: list[SettingSource] | None = Field(
        default_factory=lambda: list(DEFAULT_SETTING_SOURCES),
        description="Which settings the nested CLI loads (user, project, local); default project+local keeps the "
        "user's own hooks and MCP servers out; None = the CLI's default (all).",
    )
    mcp_config: dict[str, Any] | None = Field(
        default=None, description='MCP servers for the run, as {"mcpServers": {name: {...}}} (passed via a file).'
    )
    strict_mcp_config: bool = Field(default=False, description="Use only the servers in mcp_config.")
    permission_prompts: PermissionPrompts = Field(
        default="deny",
        description="deny: what would prompt a person is denied (listed in permission_denials); ask: the policy, "
        "then the caller's can_use_tool / the host's person / approve_run decide, within approval_timeout_s.",
    )
    approval_timeout_s: float = Field(
        default=300.0, gt=0, le=24 * 3600, description="A prompt nobody answers is denied after this long."
    )

    @field_validator("allowed_tools", "disallowed_tools")
    @classmethod
    def _tool_names(cls, tools: list[str]) -> list[str]:
        for name in tools:
            if not TOOL_RULE.fullmatch(name):
                raise ValueError(tool_rule_problem(name))
        return tools

    @field_validator("model")
    @classmethod
    def _model(cls, model: str | None) -> str | None:
        if model is not None and not MODEL_NAME.fullmatch(model):
            raise ValueError(f"{model!r} is not a model name (letters, digits and . _ - : / [ ], e.g. 'sonnet')")
        return model

    @field_validator("setting_sources")
    @classmethod
    def _sources(cls, sources: list[SettingSource] | None) -> list[SettingSource] | None:
        return None if sources is None else sorted(set(sources), key=("user", "project", "local").index)

    @field_validator("mcp_config")
    @classmethod
    def _mcp_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        servers = value.get("mcpServers")
        if set(value) != {"mcpServers"} or not isinstance(servers, dict):
            raise ValueError('mcp_config must be {"mcpServers": {"<name>": {...}, ...}} and nothing else')
        for name, server in servers.items():
            if not _MCP_SERVER_NAME.fullmatch(name):
                raise ValueError(f"mcp_config: server name {name[:80]!r} is not a plain name (letters, digits, _.-)")
            if not isinstance(server, dict) or not (isinstance(server.get("command"), str) or "url" in server):
                raise ValueError(f'mcp_config: server {name!r} needs a "command" (stdio) or a "url"')
        return value

    def profile(self) -> dict[str, Any]:
        """What the run record keeps of the nested profile (server names only: a config may hold secrets)."""
        servers = sorted((self.mcp_config or {}).get("mcpServers", {}))
        return {
            "setting_sources": self.setting_sources,
            "mcp_servers": servers,
            "strict_mcp_config": self.strict_mcp_config,
            "permission_prompts": self.permission_prompts,
        }


DEFAULT_TIMEOUT_S = 1800.0


def task_limit_text() -> str:
    """How the one prompt-size limit (library, CLI and MCP alike) is explained to whoever hit it."""
    return f"{MAX_TASK_BYTES // (1024 * 1024)} MiB: put large inputs in files and name them in the task"


def expand_user_path(path: Path, *, field: str | None = None) -> Path:
    """``~`` and ``~user`` expanded; a NUL character or an unknown user is a ValueError naming the path (pathlib
    raises RuntimeError and ValueError('embedded null byte') there, which would escape validation)."""
    where = f"{field} entry " if field else ""
    if "\x00" in str(path):
        raise ValueError(f"{where}must not contain a NUL character")
    try:
        return path.expanduser()
    except RuntimeError:
        user = str(path).split("/", 1)[0]
        raise ValueError(f"{where}{str(path)!r}: {user} is not the home directory of a known user") from None


class RunRequest(BaseModel):
    """One run to execute: the task plus everything that shapes it. Validated before anything starts."""

    model_config = ConfigDict(extra="forbid")

    task: str
    cwd: Path
    config: CCExecutorConfig = Field(default_factory=CCExecutorConfig)
    json_schema: dict[str, Any] | None = None
    return_json: bool = False
    run_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    list_id: str | None = None
    parent_run_id: str | None = None
    resume_session_id: str | None = None
    fork_session: bool = False
    timeout_basis: str | None = None
    context: str | None = Field(
        default=None, description="Sent before the task, e.g. a task list's summary of the earlier tasks."
    )
    isolation: Isolation = Field(
        default="none", description="'worktree': run in a new git worktree on its own branch (see worktrees.py)."
    )
    base_ref: str | None = Field(
        default=None, description="Isolated runs start from this commit-ish; default the commit checked out in cwd."
    )
    branch: str | None = Field(
        default=None, description="Isolated runs' branch, exactly; refused if it exists. Default cc-executor/<id8>."
    )
    setup: list[str] | None = Field(
        default=None, description="Isolated runs: a command (argv, no shell) run in the worktree before the task."
    )

    @property
    def prompt(self) -> str:
        """What goes to the CLI on stdin: the context (if any), then the task."""
        return f"{self.context}\n\nYour task now:\n{self.task}" if self.context else self.task

    @field_validator("task")
    @classmethod
    def _task(cls, task: str) -> str:
        if not task.strip():
            raise ValueError("must not be empty")
        size = len(task.encode("utf-8", "surrogatepass"))
        if size > MAX_TASK_BYTES:
            raise ValueError(f"is {size} bytes; the limit is {MAX_TASK_BYTES} bytes ({task_limit_text()})")
        if "\x00" in task:
            raise ValueError("must not contain a NUL character")
        return task

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, cwd: Path) -> Path:
        resolved = expand_user_path(cwd).resolve()
        if not resolved.exists():
            raise ValueError(f"{str(cwd)!r} does not exist")
        if not resolved.is_dir():
            raise ValueError(f"{str(cwd)!r} is not a directory")
        return resolved

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, run_id: str) -> str:
        if not RUN_ID_PATTERN.fullmatch(run_id):
            raise ValueError(f"run_id {run_id!r} is not a lowercase UUID")
        return run_id

    @field_validator("resume_session_id")
    @classmethod
    def _session_id(cls, session: str | None) -> str | None:
        if session is not None and not SESSION_ID.fullmatch(session):
            raise ValueError(f"{session!r} is not a Claude session id (expected a UUID)")
        return session

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        from cc_executor.engine.structured_output import check_schema

        check_schema(schema)
        return schema

    @model_validator(mode="after")
    def _dirs_exist(self) -> RunRequest:
        for directory in self.config.add_dirs:
            if not expand_user_path(directory, field="add_dirs").is_dir():
                raise ValueError(f"add_dirs entry {str(directory)!r} is not a directory")
        return self

    @model_validator(mode="after")
    def _worktree_fields(self) -> RunRequest:
        given = [name for name in ("base_ref", "branch", "setup") if getattr(self, name) is not None]
        if self.isolation != "worktree" and given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ValueError(f"{', '.join(given)} {verb} only with isolation='worktree' (isolation is 'none')")
        for name in ("base_ref", "branch"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or value.startswith("-") or any(c in value for c in "\0\n\r")):
                raise ValueError(f"{name} {value[:80]!r} is not a git ref name")
        if self.setup is not None and (not self.setup or any(not a or "\0" in a for a in self.setup)):
            raise ValueError("setup must be a non-empty argv list of non-empty strings, e.g. ['npm', 'ci']")
        return self

    @property
    def timeout_s(self) -> float:
        return self.config.timeout or DEFAULT_TIMEOUT_S


class WorktreeCommit(BaseModel):
    sha: str
    subject: str


class ExecutionResult(BaseModel):
    """What a run produced. ``files_*`` come from a diff of ``cwd``, never from the model's claims."""

    run_id: str = Field(description="Harness-owned UUID of the run (the seed's execution_uuid).")
    status: RunStatus
    task: str = ""
    cwd: str = ""
    result: str | None = Field(default=None, description="The final text (partial output for failed runs).")
    structured_output: Any = None
    summary: str | None = None
    files_created: list[str] = Field(default_factory=list)
    files_modified: list[str] = Field(default_factory=list)
    files_deleted: list[str] = Field(default_factory=list)
    files_truncated: bool = Field(default=False, description="True when the tree was too big to diff fully.")
    session_id: str | None = None
    cost_usd: float | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    num_turns: int | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    error_class: str | None = None
    error: str | None = None
    permission_denials: list[dict[str, Any]] = Field(default_factory=list)
    transcript_path: str | None = None
    stderr_path: str | None = None
    attempts: int = 1
    timeout_s: float | None = None
    timeout_basis: str | None = None
    list_id: str | None = None
    parent_run_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    worker: str | None = Field(default=None, description="The worker that ran it (remote backends only).")
    isolation: Isolation = "none"
    branch: str | None = Field(default=None, description="Isolated runs: the branch holding the run's work.")
    base_sha: str | None = Field(default=None, description="Isolated runs: the commit the worktree started from.")
    head_sha: str | None = Field(default=None, description="Isolated runs: the branch's commit when the run ended.")
    commits: list[WorktreeCommit] = Field(default_factory=list, description="Isolated runs: base..head, oldest first.")
    diffstat: str | None = Field(default=None, description="Isolated runs: `git diff --stat` base..head.")
    uncommitted_changes_not_carried: bool = Field(
        default=False, description="The caller's checkout had uncommitted changes; the worktree did not get them."
    )
    worktree_path: str | None = Field(
        default=None,
        description="Isolated runs: the worktree directory while it exists (removed when the run ends, unless that "
        "could lose work: HEAD moved off the branch, an initialised submodule).",
    )
    _exception: Exception | None = PrivateAttr(default=None)  # the typed RunError, when this run produced it

    def __str__(self) -> str:
        """The result text, so seed-style ``print(await cc_execute(...))`` keeps working."""
        return self.result or ""

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCESS

    @property
    def execution_uuid(self) -> str:
        return self.run_id

    def seed_dict(self) -> dict[str, Any]:
        """The seed's return_json shape: result and summary from structured output, files from the diff."""
        structured = self.structured_output if isinstance(self.structured_output, dict) else {}
        return {
            "result": structured.get("result", self.result),
            "summary": structured.get("summary", self.summary),
            "files_created": self.files_created,
            "files_modified": self.files_modified,
            "execution_uuid": self.run_id,
        }


ProgressKind = Literal["queued", "started", "event", "heartbeat", "finished"]


class ProgressUpdate(BaseModel):
    """A human-readable progress snapshot of one run."""

    run_id: str
    kind: ProgressKind
    message: str
    elapsed_s: float = 0.0
    turn: int = 0
    last_tool: str | None = None
    files_touched: list[str] = Field(default_factory=list)
    tokens: int = 0
    cost_usd: float | None = None
    queue_position: int | None = None
    list_index: int | None = Field(default=None, description="1-based position in a task list.")
    list_total: int | None = None


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


ApprovalDecision = Literal["allow", "allow_for_run", "deny"]


class Approval(BaseModel):
    """A question the nested CLI asked (a permission prompt, or an MCP server's elicitation) and its answer.
    ``decision`` None: still pending. ``decided_by``: policy, person, caller, deadline or withdrawn (the CLI no
    longer needed it)."""

    run_id: str
    request_id: str
    kind: Literal["permission", "elicitation"] = "permission"
    tool: str | None = None
    summary: str = Field(default="", description="A short, safe rendering of the tool input (command, path).")
    reason: str | None = None
    can_allow_for_run: bool = Field(default=False, description="The CLI offered a rule for allow_for_run.")
    requested_schema: dict[str, Any] | None = Field(
        default=None, description="An elicitation's form (JSON Schema); its answer travels as JSON in message."
    )
    created_at: str
    deadline_at: str
    decision: str | None = None
    decided_by: str | None = None
    message: str | None = None
    decided_at: str | None = None

    @property
    def pending(self) -> bool:
        return self.decision is None


class RunRecord(ExecutionResult):
    """A run's row in the store: the result plus bookkeeping (argv, pids, timestamps, latest progress)."""

    argv: list[str] = Field(default_factory=list)
    model: str | None = None
    permission_mode: str | None = None
    idle_timeout_s: float | None = None
    context: str | None = None
    pid: int | None = None
    pgid: int | None = None
    owner_pid: int | None = None
    owner_start: int | None = Field(default=None, description="The owner's start time (clock ticks after boot).")
    owner_boot: str | None = Field(default=None, description="The kernel boot id when the owner wrote the row.")
    created_at: str | None = None
    last_progress: str | None = None
    backend: str | None = Field(default=None, description="A remote owner (``temporal``); None: this machine.")
    base_branch: str | None = Field(default=None, description="Isolated runs: the branch checked out at the start.")
    profile: dict[str, Any] | None = Field(default=None, description="setting_sources, mcp_servers, strict_mcp_config")
    approvals: list[Approval] = Field(default_factory=list, description="Prompts asked in ask mode, and answers.")
    list_index: int | None = Field(
        default=None, description="1-based position in its task list (``list_id``), where the backend knows it."
    )

    @property
    def pending_approvals(self) -> list[Approval]:
        return [a for a in self.approvals if a.pending]

    def to_result(self) -> ExecutionResult:
        return ExecutionResult.model_validate(self.model_dump(include=set(ExecutionResult.model_fields)))
