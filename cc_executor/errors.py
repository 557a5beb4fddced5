"""Every error cc-executor raises, rooted in one base class.

    CCExecutorError
    ├── InvalidRequestError         bad input (empty task, missing cwd, bad schema, ...); also a ValueError
    │   └── PolicyError             allowed input the operator's policy refuses (names the setting to change)
    ├── ClaudeNotFoundError         no `claude` executable where we looked
    ├── UnsafeDirectoryError        a state/transcript dir other users can write (also a PermissionError)
    ├── RunNotFoundError            unknown run id
    ├── TranscriptNotFoundError     the run exists but its transcript file does not
    ├── WorktreeError               a git step of worktree isolation failed, or a merge/discard was refused
    │   └── MergeConflictError      merge_run found conflicts (``files``); the checkout was not touched
    └── RunError                    a run ended without success; ``.result`` holds what was collected
        ├── ApiError                the CLI reported an API failure (``status`` = HTTP status)
        │   ├── AuthenticationError         401/403: bad key or expired login
        │   ├── RateLimitError              429; ``retry_after_s`` when known
        │   │   └── UsageLimitError         subscription "usage limit reached|<epoch>"; ``reset_at``
        │   ├── OverloadedError             529
        │   ├── ApiServerError              5xx other than 529, connection failures
        │   └── BadRequestError             400 and other 4xx
        ├── MaxTurnsError           --max-turns reached
        ├── BudgetExceededError     --max-budget-usd reached
        ├── RunTimeoutError         wall-clock timeout; the tree was killed
        │   └── IdleTimeoutError    no stream line for idle_timeout seconds
        ├── RunCancelledError       cancelled by cancel_run / a list stop (a caller's own cancel re-raises anyio's)
        ├── RunLostError            its owner process died mid-run (found and marked on the next start)
        ├── StructuredOutputError   json_schema given but the reply is missing or does not match it
        ├── CLICrashError           the CLI exited without a result line (crash, signal, refusal)
        ├── WorktreeSetupError      the run's worktree could not be made ready (git failed, `setup` exited non-zero)
        ├── StreamCorruptionError   the stream could not be read (oversized final line, broken pipe)
        └── ExecutorError           cc-executor itself failed mid-run (cwd removed, disk, database): not claude

Callers match on classes or on ``error_class`` (the class name) stored with each run, never on message text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cc_executor.models import ExecutionResult


class CCExecutorError(Exception):
    """Base class of every cc-executor error."""


class InvalidRequestError(CCExecutorError, ValueError):
    """The request was rejected before anything started; the message names the problem."""


class PolicyError(InvalidRequestError):
    """The operator's policy (cc_executor.policy, read from the environment) refuses the request; the message
    names the setting that would allow it. Nothing was started or written."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class ClaudeNotFoundError(CCExecutorError):
    def __init__(self, searched: list[str]) -> None:
        self.searched = searched
        places = "\n  ".join(searched)
        super().__init__(
            "the Claude Code CLI `claude` was not found. Looked in:\n  "
            f"{places}\nInstall it (npm install -g @anthropic-ai/claude-code) or set CC_EXECUTOR_CLAUDE to its path."
        )


class UnsafeDirectoryError(CCExecutorError, PermissionError):
    """A directory cc-executor would keep task text and output in can be written by other users (or belongs to
    one); refused rather than tightened, since it may be a directory the user gave us, like /tmp."""


class RunNotFoundError(CCExecutorError, LookupError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class TranscriptNotFoundError(CCExecutorError, LookupError):
    pass


class RunError(CCExecutorError):
    """A run that did not succeed. ``result`` carries the partial output, cost, files and transcript path."""

    retryable = False

    def __init__(self, message: str, result: ExecutionResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ApiError(RunError):
    def __init__(self, message: str, result: ExecutionResult | None = None, *, status: int | None = None) -> None:
        super().__init__(message, result)
        self.status = status


class AuthenticationError(ApiError):
    pass


class RateLimitError(ApiError):
    retryable = True

    def __init__(
        self,
        message: str,
        result: ExecutionResult | None = None,
        *,
        status: int | None = 429,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, result, status=status)
        self.retry_after_s = retry_after_s


class UsageLimitError(RateLimitError):
    """Subscription usage limit; ``reset_at`` is the epoch second when it resets."""

    def __init__(self, message: str, result: ExecutionResult | None = None, *, reset_at: int, now: float) -> None:
        super().__init__(message, result, retry_after_s=max(0.0, reset_at - now))
        self.reset_at = reset_at


class OverloadedError(ApiError):
    retryable = True


class ApiServerError(ApiError):
    retryable = True


class BadRequestError(ApiError):
    pass


class MaxTurnsError(RunError):
    pass


class BudgetExceededError(RunError):
    pass


class RunTimeoutError(RunError):
    pass


class IdleTimeoutError(RunTimeoutError):
    pass


class RunCancelledError(RunError):
    pass


class RunLostError(RunError):
    pass


class StructuredOutputError(RunError):
    pass


class CLICrashError(RunError):
    def __init__(
        self,
        message: str,
        result: ExecutionResult | None = None,
        *,
        exit_code: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message, result)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class StreamCorruptionError(RunError):
    pass


class ExecutorError(RunError):
    """Something on cc-executor's side failed while the run was under way (its cwd was removed, the transcript
    could not be written, the database stayed locked). The run is recorded ``failed`` and its tree stopped."""


class WorktreeSetupError(RunError):
    pass


class WorktreeError(CCExecutorError):
    pass


class MergeConflictError(WorktreeError):
    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


ERROR_CLASSES: dict[str, type[RunError]] = {
    cls.__name__: cls
    for cls in (
        RunError,
        ApiError,
        AuthenticationError,
        RateLimitError,
        UsageLimitError,
        OverloadedError,
        ApiServerError,
        BadRequestError,
        MaxTurnsError,
        BudgetExceededError,
        RunTimeoutError,
        IdleTimeoutError,
        RunCancelledError,
        RunLostError,
        StructuredOutputError,
        CLICrashError,
        StreamCorruptionError,
        ExecutorError,
        WorktreeSetupError,
    )
}
