"""Classify how a CLI run ended. Decided on ``is_error``, the HTTP status and the exit code, never on
``subtype`` (the CLI reports API failures as ``subtype: "success"`` with ``is_error: true``)."""

from __future__ import annotations

import re
import time

from cc_executor.engine.events import ResultEvent
from cc_executor.errors import (
    ApiError,
    ApiServerError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CLICrashError,
    MaxTurnsError,
    OverloadedError,
    RateLimitError,
    RunError,
    StreamCorruptionError,
    UsageLimitError,
)

_USAGE_LIMIT = re.compile(r"usage limit reached\|(\d{9,11})", re.IGNORECASE)
_ROOT_REFUSAL = "cannot be used with root"


def classify(
    result: ResultEvent | None, *, exit_code: int | None, stderr_tail: str, oversized_lines: int = 0
) -> RunError | None:
    """None for a successful run, else the error describing why it failed."""
    if result is None:
        return _no_result(exit_code, stderr_tail, oversized_lines)
    if not result.is_error and exit_code in (0, None):
        return None
    if not result.is_error:
        return CLICrashError(f"claude reported success but exited with code {exit_code}", exit_code=exit_code)
    return _result_error(result)


def _no_result(exit_code: int | None, stderr_tail: str, oversized_lines: int) -> RunError:
    tail = stderr_tail.strip()
    if _ROOT_REFUSAL in tail:
        return CLICrashError(
            "claude refused bypassPermissions as root; set IS_SANDBOX=1 (inside a sandbox) or use acceptEdits",
            exit_code=exit_code,
            stderr_tail=tail,
        )
    if oversized_lines:
        return StreamCorruptionError(
            f"claude's final output came as {oversized_lines} oversized line(s) beyond max_line_bytes; "
            "they are kept unparsed in the transcript"
        )
    detail = f": {tail[-500:]}" if tail else ""
    if exit_code == 0:
        return StreamCorruptionError(f"claude exited 0 without a result line{detail}")
    return CLICrashError(
        f"claude exited with code {exit_code} without a result line{detail}", exit_code=exit_code, stderr_tail=tail
    )


def _result_error(result: ResultEvent) -> RunError:
    text = result.result or "; ".join(result.errors) or "claude reported an error"
    reason = result.terminal_reason or ""
    subtype = result.subtype or ""
    if reason == "max_turns" or subtype == "error_max_turns":
        return MaxTurnsError(text)
    if reason.startswith("budget") or subtype == "error_max_budget_usd":
        return BudgetExceededError(text)
    usage_limit = _USAGE_LIMIT.search(text)
    if usage_limit:
        reset_at = int(usage_limit.group(1))
        return UsageLimitError(
            f"usage limit reached; resets at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(reset_at))}",
            reset_at=reset_at,
            now=time.time(),
        )
    return _api_error(result.api_error_status, text, reason)


def _api_error(status: int | None, text: str, reason: str) -> RunError:
    if status in (401, 403):
        return AuthenticationError(text, status=status)
    if status == 429:
        return RateLimitError(text, status=status)
    if status == 529 or "overloaded" in text.lower():
        return OverloadedError(text, status=status)
    if status is not None and status >= 500:
        return ApiServerError(text, status=status)
    if status is not None and status >= 400:
        return BadRequestError(text, status=status)
    if reason == "api_error":
        return ApiServerError(text, status=status)
    return ApiError(text, status=status) if status else RunError(text)
