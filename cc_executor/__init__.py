"""cc-executor: run the Claude Code CLI as a supervised subprocess.

from cc_executor import cc_execute
result = await cc_execute("Write fizzbuzz.py and run it", cwd="/tmp/work")
"""

from cc_executor.api import (
    build_request,
    build_resume_request,
    cc_execute,
    open_store,
    raise_for_result,
    resume,
    run_stream,
)
from cc_executor.backends import Backend, LocalBackend
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
    IdleTimeoutError,
    InvalidRequestError,
    MaxTurnsError,
    MergeConflictError,
    OverloadedError,
    RateLimitError,
    RunCancelledError,
    RunError,
    RunLostError,
    RunNotFoundError,
    RunTimeoutError,
    StreamCorruptionError,
    StructuredOutputError,
    TranscriptNotFoundError,
    UsageLimitError,
    WorktreeError,
    WorktreeSetupError,
)
from cc_executor.models import CCExecutorConfig, ExecutionResult, ProgressUpdate, RunRecord, RunRequest, RunStatus
from cc_executor.task_lists import ListTask, TaskListResult, cc_execute_list
from cc_executor.worktrees import discard_run, merge_run, run_diff

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ApiServerError",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "BudgetExceededError",
    "CCExecutorConfig",
    "CCExecutorError",
    "CLICrashError",
    "ClaudeNotFoundError",
    "ExecutionResult",
    "IdleTimeoutError",
    "InvalidRequestError",
    "ListTask",
    "LocalBackend",
    "MaxTurnsError",
    "MergeConflictError",
    "OverloadedError",
    "ProgressUpdate",
    "RateLimitError",
    "RunCancelledError",
    "RunError",
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
