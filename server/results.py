"""Turn the core's results and rows into what a calling model reads: trimmed, with a next step spelled out."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cc_executor.text import one_line

from .schemas import Commit, PendingApproval, ResultStatus, RunResult, RunSummary

if TYPE_CHECKING:
    from cc_executor.models import Approval, ExecutionResult, RunRecord

URI_PREFIX = "cc-executor://runs/"
_TASK_CHARS = 200
_MIN_KEEP = 500


def transcript_uri(run_id: str) -> str:
    return f"{URI_PREFIX}{run_id}/transcript"


def result_uri(run_id: str) -> str:
    return f"{URI_PREFIX}{run_id}/result"


def trim_text(text: str, limit: int, run_id: str) -> tuple[str, bool]:
    """Head and tail of ``text`` within ``limit`` chars, with a marker that says how to read the rest."""
    if len(text) <= limit:
        return text, False
    marker = (
        f"\n\n[… {{omitted}} of {len(text)} characters omitted; read the full text with "
        f"get_transcript(run_id='{run_id}', format='text') or the resource {result_uri(run_id)} …]\n\n"
    )
    room = max(limit - len(marker) - 10, _MIN_KEEP)
    head = room * 3 // 4
    tail = room - head
    omitted = len(text) - head - tail
    return text[:head] + marker.format(omitted=omitted) + text[len(text) - tail :], True


def run_result(
    result: ExecutionResult, *, max_chars: int, message: str | None = None, last_progress: str | None = None
) -> RunResult:
    """A finished (or, for a RunRecord, any) run as a RunResult with ``result`` trimmed to ``max_chars``."""
    text = result.result
    trimmed, truncated = trim_text(text, max_chars, result.run_id) if text is not None else (None, False)
    structured, structured_note = _fit_structured(result.structured_output, max_chars, result.run_id)
    status: ResultStatus = result.status.value
    out = RunResult(
        run_id=result.run_id,
        status=status,
        done=result.status.finished,
        message="",
        result=trimmed,
        result_truncated=truncated,
        result_chars=len(text) if text is not None else None,
        structured_output=structured,
        summary=result.summary,
        files_created=result.files_created,
        files_modified=result.files_modified,
        files_deleted=result.files_deleted,
        cost_usd=result.cost_usd,
        duration_s=result.duration_s,
        num_turns=result.num_turns,
        session_id=result.session_id,
        error_class=result.error_class,
        error=result.error,
        permission_denials=_denied_tools(result.permission_denials),
        last_progress=last_progress,
        attempts=result.attempts if result.status.finished else None,
        worker=result.worker,
        task=one_line(result.task, _TASK_CHARS) if result.task else None,
        cwd=result.cwd or None,
        list_id=result.list_id,
        parent_run_id=result.parent_run_id,
        created_at=getattr(result, "created_at", None) or result.started_at,
        finished_at=result.finished_at,
        transcript_uri=transcript_uri(result.run_id),
        result_uri=result_uri(result.run_id),
        isolation=result.isolation,
        branch=result.branch,
        base_sha=result.base_sha,
        head_sha=result.head_sha,
        commits=[Commit(sha=c.sha, subject=c.subject) for c in result.commits],
        diffstat=result.diffstat,
        uncommitted_changes_not_carried=result.uncommitted_changes_not_carried,
        worktree_path=result.worktree_path,
    )
    out.message = message or outcome_message(out, structured_note)
    return out


def running_result(record: RunRecord, *, waited_s: float | None, max_chars: int) -> RunResult:
    """A run still queued or running: point the caller at wait_run (or at approve_run when it waits on one)."""
    if record.pending_approvals:
        out = run_result(record, max_chars=max_chars, message="", last_progress=record.last_progress)
        out.status = "waiting_for_approval"
        out.pending_approvals = [pending_approval(a) for a in record.pending_approvals]
        out.message = approval_message(record.run_id, out.pending_approvals)
        return out
    waited = f"after {waited_s:.0f}s " if waited_s is not None else ""
    message = (
        f"Still {record.status.value} {waited}and it keeps going on the server. Call "
        f"wait_run(run_id='{record.run_id}') to wait for the result (repeat while status is 'running'); "
        "get_run shows progress without waiting, cancel_run stops it."
    )
    return run_result(record, max_chars=max_chars, message=message, last_progress=record.last_progress)


def pending_approval(approval: Approval) -> PendingApproval:
    return PendingApproval(
        request_id=approval.request_id,
        kind=approval.kind,
        tool=approval.tool,
        summary=approval.summary,
        reason=approval.reason,
        can_allow_for_run=approval.can_allow_for_run,
        deadline_at=approval.deadline_at,
        requested_schema=approval.requested_schema,
    )


def approval_message(run_id: str, pending: list[PendingApproval]) -> str:
    first = pending[0]
    what = f"{first.tool}: {first.summary}" if first.kind == "permission" else f"{first.tool} asks: {first.summary}"
    choices = "'allow', 'allow_for_run' or 'deny'" if first.can_allow_for_run else "'allow' or 'deny'"
    more = f" ({len(pending)} questions pending)" if len(pending) > 1 else ""
    return (
        f"The run is waiting for approval{more}: {what}"
        + (f" — {first.reason}" if first.reason else "")
        + f". Ask the user if you are not sure, then call approve_run(run_id='{run_id}', "
        f"request_id='{first.request_id}', decision={choices}) and wait_run(run_id='{run_id}') for the result. "
        f"Nobody answering by {first.deadline_at} means deny."
    )


def outcome_message(out: RunResult, structured_note: str = "") -> str:
    """One paragraph: how the run ended and what to do about it."""
    parts = [_status_line(out)]
    if out.permission_denials:
        tools = ", ".join(sorted(set(out.permission_denials)))
        parts.append(
            f"Claude Code was denied these tools: {tools}. To allow them, run again with "
            f"allowed_tools=[...] (e.g. {json.dumps(sorted(set(out.permission_denials))[:3])}), or "
            "permission_mode='bypassPermissions' only in a trusted or sandboxed directory."
        )
    if out.result_truncated:
        parts.append(
            f"The result was trimmed to fit a tool result; read all {out.result_chars} characters with "
            f"get_transcript(run_id='{out.run_id}', format='text') or the resource {out.result_uri}."
        )
    if structured_note:
        parts.append(structured_note)
    if out.branch and out.done:
        parts.append(_worktree_note(out))
    if out.status == "success" and out.session_id:
        parts.append(f"To continue this conversation, pass resume_run_id='{out.run_id}' to execute_task.")
    return " ".join(parts)


def _worktree_note(out: RunResult) -> str:
    n = len(out.commits)
    note = f"The work is on branch {out.branch} ({n} commit{'s' if n != 1 else ''} on {(out.base_sha or '?')[:12]})"
    note += (
        f"; merge it with merge_run(run_id='{out.run_id}') or drop it with discard_run(run_id='{out.run_id}')."
        if n
        else "; it has no changes."
    )
    if out.uncommitted_changes_not_carried:
        note += " The checkout had uncommitted changes; the run started from the last commit without them."
    return note


def _status_line(out: RunResult) -> str:
    cost = f", ${out.cost_usd:.4f}" if out.cost_usd is not None else ""
    took = f" in {out.duration_s:.1f}s" if out.duration_s is not None else ""
    match out.status:
        case "success":
            return f"Run succeeded{took}{cost}."
        case "timeout":
            return f"Run hit its timeout_s and was killed{took}; run again with a larger timeout_s or split the task."
        case "idle_timeout":
            return f"Run produced no output for idle_timeout_s and was killed{took}: {out.error or ''}".strip()
        case "cancelled":
            return f"Run was cancelled{took}: {out.error or 'cancelled'}."
        case "lost":
            return f"Run was lost: {out.error or 'its server process died'}. Start it again if it is still needed."
        case "failed":
            return f"Run failed{took} ({out.error_class or 'error'}): {out.error or 'no detail'}."
        case _:
            return f"Run is {out.status}."


def run_summary(record: RunRecord) -> RunSummary:
    return RunSummary(
        run_id=record.run_id,
        status=record.status.value,
        task=one_line(record.task, _TASK_CHARS),
        cwd=record.cwd,
        created_at=record.created_at,
        finished_at=record.finished_at,
        duration_s=record.duration_s,
        cost_usd=record.cost_usd,
        error_class=record.error_class,
        list_id=record.list_id,
        list_index=record.list_index,
        last_progress=None if record.status.finished else record.last_progress,
        branch=record.branch,
        commits=len(record.commits),
    )


def _denied_tools(denials: list[dict[str, Any]]) -> list[str]:
    names = []
    for denial in denials:
        name = denial.get("tool_name") or denial.get("tool") or denial.get("name")
        names.append(str(name) if name else "unknown tool")
    return names


def _fit_structured(value: Any, max_chars: int, run_id: str) -> tuple[Any, str]:
    if value is None:
        return None, ""
    size = len(json.dumps(value, ensure_ascii=False, default=str))
    if size <= max_chars:
        return value, ""
    note = (
        f"structured_output ({size} characters of JSON) was left out to fit a tool result; "
        f"read it from the resource {result_uri(run_id)}."
    )
    return None, note
