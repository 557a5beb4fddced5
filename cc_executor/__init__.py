"""cc-executor: run the Claude Code CLI as a supervised subprocess.

from cc_executor import cc_execute
result = await cc_execute("Write fizzbuzz.py and run it", cwd="/tmp/work")
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str
    from cc_executor.api import (
        build_request,
        build_resume_request,
        cc_execute,
        open_store,
        raise_for_result,
        resume,
        run_stream,
    )
    from cc_executor.backends import Backend, DurableBackend, LocalBackend, RunHandle
    from cc_executor.engine.control import PermissionDecision, PermissionRequest
    from cc_executor.engine.runner import execute_run
    from cc_executor.errors import (
        ApiError,
        ApiServerError,
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        CCExecutorError,
        ClaudeNotFoundError,
        CLICrashError,
        ExecutorError,
        IdleTimeoutError,
        InvalidRequestError,
        MaxTurnsError,
        MergeConflictError,
        OverloadedError,
        PolicyError,
        RateLimitError,
        RunCancelledError,
        RunError,
        RunLostError,
        RunNotFoundError,
        RunTimeoutError,
        StreamCorruptionError,
        StructuredOutputError,
        TranscriptNotFoundError,
        UnsafeDirectoryError,
        UsageLimitError,
        WorktreeError,
        WorktreeSetupError,
    )
    from cc_executor.models import (
        Approval,
        CCExecutorConfig,
        ExecutionResult,
        ProgressUpdate,
        RunRecord,
        RunRequest,
        RunStatus,
    )
    from cc_executor.task_lists import ListTask, TaskListResult, cc_execute_list
    from cc_executor.worktrees import discard_run, merge_run, run_diff


# Where each public name lives. Imported on first access (PEP 562), so `import cc_executor.models` (the MCP
# server's schemas do this before the initialize answer) does not pull in the engine.
_LOCATIONS: dict[str, str] = {
    "ApiError": "cc_executor.errors",
    "Approval": "cc_executor.models",
    "ApiServerError": "cc_executor.errors",
    "AuthenticationError": "cc_executor.errors",
    "Backend": "cc_executor.backends",
    "BadRequestError": "cc_executor.errors",
    "BudgetExceededError": "cc_executor.errors",
    "CCExecutorConfig": "cc_executor.models",
    "CCExecutorError": "cc_executor.errors",
    "CLICrashError": "cc_executor.errors",
    "ClaudeNotFoundError": "cc_executor.errors",
    "DurableBackend": "cc_executor.backends",
    "ExecutionResult": "cc_executor.models",
    "ExecutorError": "cc_executor.errors",
    "IdleTimeoutError": "cc_executor.errors",
    "InvalidRequestError": "cc_executor.errors",
    "ListTask": "cc_executor.task_lists",
    "LocalBackend": "cc_executor.backends",
    "MaxTurnsError": "cc_executor.errors",
    "OverloadedError": "cc_executor.errors",
    "PermissionDecision": "cc_executor.engine.control",
    "PermissionRequest": "cc_executor.engine.control",
    "PolicyError": "cc_executor.errors",
    "ProgressUpdate": "cc_executor.models",
    "RateLimitError": "cc_executor.errors",
    "RunCancelledError": "cc_executor.errors",
    "RunError": "cc_executor.errors",
    "RunHandle": "cc_executor.backends",
    "RunLostError": "cc_executor.errors",
    "RunNotFoundError": "cc_executor.errors",
    "RunRecord": "cc_executor.models",
    "RunRequest": "cc_executor.models",
    "RunStatus": "cc_executor.models",
    "RunTimeoutError": "cc_executor.errors",
    "StreamCorruptionError": "cc_executor.errors",
    "StructuredOutputError": "cc_executor.errors",
    "TaskListResult": "cc_executor.task_lists",
    "TranscriptNotFoundError": "cc_executor.errors",
    "UnsafeDirectoryError": "cc_executor.errors",
    "UsageLimitError": "cc_executor.errors",
    "build_request": "cc_executor.api",
    "build_resume_request": "cc_executor.api",
    "cc_execute": "cc_executor.api",
    "cc_execute_list": "cc_executor.task_lists",
    "execute_run": "cc_executor.engine.runner",
    "open_store": "cc_executor.api",
    "raise_for_result": "cc_executor.api",
    "resume": "cc_executor.api",
    "run_stream": "cc_executor.api",
    "MergeConflictError": "cc_executor.errors",
    "WorktreeError": "cc_executor.errors",
    "WorktreeSetupError": "cc_executor.errors",
    "discard_run": "cc_executor.worktrees",
    "merge_run": "cc_executor.worktrees",
    "run_diff": "cc_executor.worktrees",
}


def _version() -> str:
    """One source: pyproject.toml, through the installed metadata (read on first use: it costs ~15 ms)."""
    try:
        return version("cc-executor")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ApiError",
    "ApiServerError",
    "Approval",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "BudgetExceededError",
    "CCExecutorConfig",
    "CCExecutorError",
    "CLICrashError",
    "ClaudeNotFoundError",
    "DurableBackend",
    "ExecutionResult",
    "ExecutorError",
    "IdleTimeoutError",
    "InvalidRequestError",
    "ListTask",
    "LocalBackend",
    "MaxTurnsError",
    "MergeConflictError",
    "OverloadedError",
    "PermissionDecision",
    "PermissionRequest",
    "PolicyError",
    "ProgressUpdate",
    "RateLimitError",
    "RunCancelledError",
    "RunError",
    "RunHandle",
    "RunLostError",
    "RunNotFoundError",
    "RunRecord",
    "RunRequest",
    "RunStatus",
    "RunTimeoutError",
    "StreamCorruptionError",
    "StructuredOutputError",
    "TaskListResult",
    "TranscriptNotFoundError",
    "UnsafeDirectoryError",
    "UsageLimitError",
    "WorktreeError",
    "WorktreeSetupError",
    "__version__",
    "build_request",
    "build_resume_request",
    "cc_execute",
    "cc_execute_list",
    "discard_run",
    "execute_run",
    "merge_run",
    "open_store",
    "raise_for_result",
    "resume",
    "run_diff",
    "run_stream",
]
