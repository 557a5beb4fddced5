"""Ask mode (``permission_prompts="ask"``): who answers the nested CLI's permission prompts, and in what order.

1. the operator policy: its always-deny / always-allow tool rules decide at once (``policy_decision``);
2. otherwise the question is recorded in the store (the run shows ``waiting_for_approval``, progress says what is
   asked) and the first answer wins, whoever gives it: the library caller's ``can_use_tool`` callback, the person
   at the MCP host (the server elicits and answers through ``Backend.approve``), ``approve_run`` /
   ``cc-executor approve`` from any process. Every answer goes through one compare-and-set in the store, so two
   answerers can never both win and every decision is recorded with who gave it;
3. nobody answers before ``approval_timeout_s``: denied, recorded as the deadline's. A ``control_cancel_request``
   from the CLI withdraws the question (recorded as withdrawn).

An MCP server of the nested run may elicit too (``control_request`` subtype ``elicitation``): the same way, with
accept/decline/cancel; nobody answering means ``cancel``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from cc_executor.engine.control import ElicitationRequest, PermissionDecision, PermissionRequest
from cc_executor.engine.progress_text import shorten, summarize_tool_input
from cc_executor.errors import InvalidRequestError
from cc_executor.models import Approval
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

CanUseTool = Callable[[PermissionRequest], Awaitable[PermissionDecision | bool | None]]
"""A library caller's answerer: a decision, True (allow) / False (deny), or None (no answer: others may)."""
PendingCallback = Callable[[Approval], Awaitable[None]]

ENV_ALWAYS_ALLOWED_TOOLS = "CC_EXECUTOR_ALWAYS_ALLOWED_TOOLS"  # the names of the operator policy (issue 9)
ENV_ALWAYS_DISALLOWED_TOOLS = "CC_EXECUTOR_ALWAYS_DISALLOWED_TOOLS"
_POLL_S = 0.2
_SUMMARY_CHARS = 200
WITHDRAWN = "withdrawn"


def policy_decision(request: PermissionRequest, environ: dict[str, str] | None = None) -> PermissionDecision | None:
    """The operator's always-deny / always-allow rules (this process's environment, never a run's config.env).

    Minimal hook until cc_executor/policy.py lands on main: those rules also reach the CLI as --disallowedTools /
    --allowedTools there, so the CLI never asks about them; this check is the second line.
    """
    env = os.environ if environ is None else environ
    if any(_matches(rule, request) for rule in _rules(env.get(ENV_ALWAYS_DISALLOWED_TOOLS, ""))):
        return PermissionDecision("deny", "policy", f"the operator's policy never allows {request.tool_name} here")
    if any(_matches(rule, request) for rule in _rules(env.get(ENV_ALWAYS_ALLOWED_TOOLS, ""))):
        return PermissionDecision("allow", "policy")
    return None


def _rules(raw: str) -> tuple[str, ...]:
    from cc_executor.policy import split_rules  # the policy's own reading: commas inside (...) do not split

    return split_rules(raw)


def _matches(rule: str, request: PermissionRequest) -> bool:
    """``Tool`` matches every call of the tool; ``Tool(spec)`` the calls whose main argument is spec, or starts
    with its prefix when spec ends in ``:*`` or ``*`` (Claude Code's rule syntax, the common cases)."""
    name, _, spec = rule.partition("(")
    if name.strip() != request.tool_name:
        return False
    if not spec:
        return True
    spec = spec.removesuffix(")")
    argument = summarize_tool_input(request.tool_name, request.input, width=10_000)
    if spec.endswith(":*") or spec.endswith("*"):
        return argument.startswith(spec.removesuffix("*").removesuffix(":"))
    return argument == spec


def render_input(request: PermissionRequest) -> str:
    return request.summary(_SUMMARY_CHARS)


class ApprovalBroker:
    """Answers one run's questions in ask mode (module docstring). Plug ``permission`` / ``elicitation`` into
    the attempt's ``ControlChannel``."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        *,
        timeout_s: float,
        can_use_tool: CanUseTool | None = None,
        on_pending: PendingCallback | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.can_use_tool = can_use_tool
        self.on_pending = on_pending

    async def permission(self, request: PermissionRequest) -> PermissionDecision:
        decided = policy_decision(request)
        approval = self._approval(request.request_id, "permission", request.tool_name, render_input(request))
        approval.reason = request.reason
        approval.can_allow_for_run = bool(request.suggestions)
        if decided is not None:
            await self.store.add_approval(approval)
            await self.store.decide_approval(
                self.run_id, request.request_id, decision=decided.label, decided_by="policy", message=decided.message
            )
            return decided
        record = await self._ask(approval, lambda: self._caller(request))
        return _permission_from(record, request)

    async def elicitation(self, request: ElicitationRequest) -> dict[str, Any]:
        summary = shorten(" ".join(request.message.split()), _SUMMARY_CHARS)
        approval = self._approval(request.request_id, "elicitation", request.server_name, summary)
        approval.requested_schema = request.requested_schema
        record = await self._ask(approval, None)
        return _elicitation_from(record)

    def _approval(self, request_id: str, kind: str, tool: str | None, summary: str) -> Approval:
        now = datetime.now(UTC)
        return Approval(
            run_id=self.run_id,
            request_id=request_id,
            kind="permission" if kind == "permission" else "elicitation",
            tool=tool,
            summary=summary,
            created_at=now.isoformat(timespec="microseconds"),
            deadline_at=(now + timedelta(seconds=self.timeout_s)).isoformat(timespec="microseconds"),
        )

    async def _ask(self, approval: Approval, caller: Callable[[], Coroutine[Any, Any, None]] | None) -> Approval:
        """Record the question, then wait for the first answer from anyone, or the deadline."""
        await self.store.add_approval(approval)
        try:
            if self.on_pending is not None:
                await self.on_pending(approval)
            with anyio.move_on_after(self.timeout_s):
                async with anyio.create_task_group() as group:
                    if caller is not None and self.can_use_tool is not None:
                        group.start_soon(caller)
                    answered = await self._until_answered(approval.request_id)
                    group.cancel_scope.cancel()
                    return answered
            await self.store.decide_approval(
                self.run_id,
                approval.request_id,
                decision="deny" if approval.kind == "permission" else "cancel",
                decided_by="deadline",
                message=f"nobody answered within {self.timeout_s:g}s",
            )
            return await self._until_answered(approval.request_id)  # the deadline's, or an answer that beat it
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):  # withdrawn by the CLI (or the run stopped): close the question
                await self.store.decide_approval(
                    self.run_id, approval.request_id, decision=WITHDRAWN, decided_by=WITHDRAWN
                )
            raise

    async def _until_answered(self, request_id: str) -> Approval:
        while True:  # the store is the one place answers meet (answerers may live in other processes)
            record = await self.store.approval(self.run_id, request_id)
            if record is not None and record.decision is not None:
                return record
            await anyio.sleep(_POLL_S)

    async def _caller(self, request: PermissionRequest) -> None:
        """The library caller's callback; its answer goes through the same compare-and-set as everyone's."""
        assert self.can_use_tool is not None
        try:
            answer = self.can_use_tool(request)
            decision = await answer if inspect.isawaitable(answer) else answer
        except Exception:
            log.exception("can_use_tool callback failed; leaving the question to others")
            return
        if isinstance(decision, bool):
            decision = PermissionDecision("allow" if decision else "deny", "caller")
        if decision is None:
            return
        by = "person" if decision.decided_by == "person" else "caller"  # a terminal prompt is a person's answer
        await self.store.decide_approval(
            self.run_id, request.request_id, decision=decision.label, decided_by=by, message=decision.message
        )


async def decide(
    store: RunStore, run_id: str, request_id: str, decision: str, decided_by: str, message: str | None
) -> Approval:
    """An answer from outside the run (approve_run, `cc-executor approve`, the host's person): checked, then
    recorded through the one compare-and-set; the run's broker picks it up."""
    record = await store.get(run_id)  # RunNotFoundError for an unknown run
    approval = await store.approval(run_id, request_id)
    if approval is None:
        pending = ", ".join(a.request_id for a in record.pending_approvals) or "none"
        raise InvalidRequestError(f"run {run_id} has no question {request_id!r} (pending: {pending})")
    if decision not in ("allow", "allow_for_run", "deny"):
        raise InvalidRequestError(f"decision must be allow, allow_for_run or deny, got {decision!r}")
    if approval.kind == "elicitation" and decision == "allow" and message is not None:
        try:
            content = json.loads(message)
        except ValueError:
            content = None
        if not isinstance(content, dict):
            raise InvalidRequestError("for an elicitation, message must be the answer as a JSON object (the form)")
    if decision == "allow_for_run" and not approval.can_allow_for_run:
        raise InvalidRequestError("allow_for_run is not offered for this request (no rule to add): use allow")
    if not await store.decide_approval(run_id, request_id, decision=decision, decided_by=decided_by, message=message):
        done = await store.approval(run_id, request_id)
        assert done is not None
        raise InvalidRequestError(
            f"request {request_id} was already answered: {done.decision} by {done.decided_by} at {done.decided_at}"
        )
    answered = await store.approval(run_id, request_id)
    assert answered is not None
    return answered


def _permission_from(record: Approval, request: PermissionRequest) -> PermissionDecision:
    by = record.decided_by or "deadline"
    if record.decision in ("allow", "allow_for_run"):
        return PermissionDecision("allow", by, for_run=record.decision == "allow_for_run")  # type: ignore[arg-type]
    reason = record.message or ""
    who = {"deadline": "nobody answered in time", "person": "the person asked said no"}.get(by, f"denied by {by}")
    message = f"Permission to use {request.tool_name} was denied ({who})" + (f": {reason}" if reason else ".")
    return PermissionDecision("deny", by if by in ("policy", "person", "caller", "deadline") else "default", message)  # type: ignore[arg-type]


def _elicitation_from(record: Approval) -> dict[str, Any]:
    if record.decision in ("allow", "allow_for_run", "accept"):
        content: Any = {}
        if record.message:
            try:
                content = json.loads(record.message)
            except ValueError:
                content = {}
        return {"action": "accept", "content": content if isinstance(content, dict) else {}}
    if record.decision in ("deny", "decline"):
        return {"action": "decline"}
    return {"action": "cancel"}
