"""Ask mode on the server: the person at the host answers a run's permission prompts through elicitation while an
execute_task / wait_run call for that run is pending; otherwise the call hands the question to its caller
(status waiting_for_approval, ``pending_approvals``) and ``approve_run`` answers it.

The engine records every question in the store and takes the first answer from anyone (engine/approvals.py), so
this module only decides who to ask here and writes answers through ``Backend.approve``. Elicitation mid-call is
the classic ``elicitation/create`` request, which exists in the 2025-11-25 era; a 2026-07-28 host gets the
hand-off (approve_run) instead (what is missing: the input_required round for wait_run).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import anyio
from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequest, InputRequiredResult
from pydantic import BaseModel, Field

from .schemas import PendingApproval, RunResult

if TYPE_CHECKING:
    from cc_executor.backends import Backend

    from .state import Ctx

log = logging.getLogger(__name__)

_POLL_S = 0.25
_MODERN_ERA = "2026-07-28"


class ApprovalChoice(BaseModel):
    """The form the person at the host fills in."""

    decision: Literal["allow", "allow_for_run", "deny"] = Field(
        description="allow: allow once · allow_for_run: allow this and the same again for the rest of this run · deny"
    )


class HostPerson:
    """The person behind the MCP host, reachable by elicitation during this tool call (when the host can)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    @property
    def can_elicit(self) -> bool:
        capabilities = self.ctx.client_capabilities
        return capabilities is not None and capabilities.elicitation is not None  # Claude Desktop: no

    @property
    def reachable(self) -> bool:
        """A classic elicitation/create request mid-call (2025-11-25 era)."""
        return self.can_elicit and (self.ctx.protocol_version or "") < _MODERN_ERA

    @property
    def via_input_required(self) -> bool:
        """2026-07-28: no server→client request mid-call; wait_run asks with an input_required round instead."""
        return self.can_elicit and (self.ctx.protocol_version or "") >= _MODERN_ERA

    async def ask(self, run_id: str, pending: PendingApproval) -> tuple[str, str | None] | None:
        """(decision, message), or None when nobody is there (``cancel``: Claude Code -p answers it at once)."""
        if pending.kind != "permission":
            return await self._relay(run_id, pending)
        result = await self.ctx.elicit(prompt(run_id, pending), ApprovalChoice)
        if isinstance(result, AcceptedElicitation):
            decision = result.data.decision
            if decision == "allow_for_run" and not pending.can_allow_for_run:
                decision = "allow"
            return decision, None
        if result.action == "decline":
            return "deny", "the person at the host declined"
        return None

    async def _relay(self, run_id: str, pending: PendingApproval) -> tuple[str, str | None] | None:
        """One of the nested run's MCP servers elicits: show its own form to the host's person."""
        session = self.ctx.request_context.session
        answer = await session.elicit_form(
            message=prompt(run_id, pending), requested_schema=form_of(pending), related_request_id=self.ctx.request_id
        )
        return answer_of(answer)


def form_of(pending: PendingApproval) -> dict[str, Any]:
    schema = pending.requested_schema or {}
    return schema if schema.get("type") == "object" else {"type": "object", "properties": {}}


def answer_of(result: ElicitResult) -> tuple[str, str | None] | None:
    """A relayed elicitation's answer as (decision, message): accept → allow with the form's JSON."""
    if result.action == "accept":
        return "allow", json.dumps(result.content or {})
    if result.action == "decline":
        return "deny", None
    return None


def prompt(run_id: str, pending: PendingApproval) -> str:
    if pending.kind != "permission":
        return f"A nested Claude Code run ({run_id[:8]}): its MCP server {pending.tool} asks:\n{pending.summary}"
    lines = [f"A nested Claude Code run ({run_id[:8]}) asks to use {pending.tool}:", f"  {pending.summary}"]
    if pending.reason:
        lines.append(f"Reason: {pending.reason}")
    lines.append("Allow once, allow for the rest of this run, or deny?")
    return "\n".join(lines)


async def watch(backend: Backend, run_id: str, person: HostPerson | None, handed_over: set[str]) -> None:
    """Return when the run waits on a question nobody here can answer (the call then hands it to its caller);
    answer those the host's person can. A question already handed over is not handed over again: a later
    wait_run waits for approve_run (or the deadline) instead of returning at once. Runs until cancelled."""
    from cc_executor.errors import InvalidRequestError

    from .results import pending_approval

    asked: set[str] = set()
    while True:
        record = await backend.status(run_id)
        if record.status.finished:
            await anyio.sleep_forever()  # the waiter returns the result
        for approval in record.pending_approvals:
            if approval.request_id in asked or approval.request_id in handed_over:
                continue
            asked.add(approval.request_id)
            answer = None
            if person is not None and person.reachable:
                answer = await person.ask(run_id, pending_approval(approval))
            if answer is None:
                if person is None or not person.via_input_required:
                    handed_over.add(approval.request_id)  # else wait_run asks with an input_required round first
                return
            try:
                await backend.approve(run_id, approval.request_id, answer[0], decided_by="person", message=answer[1])  # type: ignore[arg-type]
            except InvalidRequestError:
                log.debug("request %s was answered by someone else first", approval.request_id)
        await anyio.sleep(_POLL_S)


def input_required(run_id: str, out: RunResult, handed_over: set[str]) -> InputRequiredResult | None:
    """2026-07-28: ask the host's person about the run's pending permission prompts with an input_required round
    (Claude Code shows a dialog; in -p it answers cancel at once). None when there is nothing left to ask."""
    pending = [p for p in out.pending_approvals if p.request_id not in handed_over]
    if not pending:
        return None
    choice = render_elicitation_schema(ApprovalChoice)
    requests: dict[str, InputRequest] = {
        p.request_id: ElicitRequest(
            params=ElicitRequestFormParams(
                message=prompt(run_id, p), requested_schema=choice if p.kind == "permission" else form_of(p)
            )
        )
        for p in pending
    }
    return InputRequiredResult(input_requests=requests, request_state=run_id)


async def take_input_responses(backend: Backend, run_id: str, ctx: Ctx, handed_over: set[str]) -> bool:
    """The host's retry of wait_run carries the person's answers: record them (as the person's). True when the
    person was not there (cancel): the question then goes to the caller (approve_run)."""
    from cc_executor.errors import InvalidRequestError

    responses = ctx.input_responses or {}
    if not responses:
        return False
    kinds = {a.request_id: a.kind for a in (await backend.status(run_id)).approvals}
    nobody = False
    for request_id, response in responses.items():
        if not isinstance(response, ElicitResult) or request_id not in kinds:
            continue
        if response.action == "cancel":
            handed_over.add(request_id)
            nobody = True
            continue
        decision, message = "deny", None
        if kinds[request_id] != "permission":
            decision, message = answer_of(response) or ("deny", None)
        elif response.action == "accept":
            chosen = (response.content or {}).get("decision")
            decision = chosen if chosen in ("allow", "allow_for_run", "deny") else "deny"
        try:
            await backend.approve(run_id, request_id, decision, decided_by="person", message=message)  # type: ignore[arg-type]
        except InvalidRequestError as exc:
            if "allow_for_run is not offered" in str(exc):
                await backend.approve(run_id, request_id, "allow", decided_by="person")
            else:
                log.debug("answer for %s not recorded: %s", request_id, exc)
    return nobody
