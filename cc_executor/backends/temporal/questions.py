"""Ask mode on workers: the questions a run on a worker asks (permission prompts, nested elicitations) reach the
front ends, and their answers reach the run.

The run's own ``ApprovalBroker`` (engine.approvals) asks on the worker exactly as it does locally: it records the
question in the worker's registry, waits for the first answer there, and denies at the deadline. What travels:
- **worker → front ends**: the activity's heartbeat lists the attempt's questions and their answers
  (``QuestionRelay``); a front end that observes the run copies them into its own registry
  (``record_questions``), so ``waiting_for_approval``, ``pending_approvals``, the MCP server's elicitation and
  input_required round, ``approve_run`` and ``cc-executor approve`` work as for a local run;
- **front end → worker**: an answer is recorded in the front end's registry first (the one compare-and-set: the
  first answer wins and says who gave it), then signalled to the run's workflow tagged with the attempt that asked
  (``answer_of``); while a question is pending, the attempt's activity polls its workflow's answers for its own
  attempt (a query, about 4 a second) and records them in the worker's registry, where the broker picks them up.
  An answer meant for a lost attempt never answers the next attempt's question.
What the worker decided on its own (the deadline, a withdrawn question, the operator's policy) comes back with the
next heartbeat and wins over a front end's late answer: it is what the CLI got.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pydantic import ValidationError

from cc_executor.engine.approvals import WITHDRAWN
from cc_executor.models import Approval
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

RELAY_POLL_S = 0.25  # how often the worker looks at its questions (and, while one is pending, for answers)
_QUERY_TIMEOUT_S = 5.0
ATTEMPT_ENDED = "the attempt that asked it ended (its worker was lost or it failed); a later attempt asks again"
RUN_ENDED = "the run ended before it was answered"

Answers = Callable[[], Awaitable[list[dict[str, Any]]]]
Publish = Callable[[list[dict[str, Any]]], None]


class QuestionRelay:
    """On the worker, for one attempt in ask mode: publishes the attempt's questions (``publish``: into the
    heartbeat) and, while one is pending, brings in the answers the front ends signalled (``answers``)."""

    def __init__(self, store: RunStore, run_id: str, *, answers: Answers, publish: Publish) -> None:
        self.store = store
        self.run_id = run_id
        self.answers = answers
        self.publish = publish
        self.published: list[dict[str, Any]] | None = None

    async def run(self) -> None:
        while True:
            approvals = await self.listed()
            if any(a.pending for a in approvals):
                await self._bring_in(approvals)
                approvals = await self.listed()
            listed = [a.model_dump(mode="json") for a in approvals]
            if listed != self.published:
                self.published = listed
                self.publish(listed)
            await anyio.sleep(RELAY_POLL_S)

    async def listed(self) -> list[Approval]:
        return (await self.store.get(self.run_id)).approvals

    async def _bring_in(self, approvals: list[Approval]) -> None:
        pending = {a.request_id for a in approvals if a.pending}
        try:
            with anyio.fail_after(_QUERY_TIMEOUT_S):
                answers = await self.answers()
        except Exception as exc:  # Temporal busy or unreachable: the question stays pending; the deadline holds
            log.debug("run %s: could not read answers from its workflow: %s", self.run_id, exc)
            return
        for answer in answers:
            request_id = str(answer.get("request_id"))
            if request_id in pending:
                await self.store.decide_approval(
                    self.run_id,
                    request_id,
                    decision=str(answer["decision"]),
                    decided_by=str(answer.get("decided_by") or "caller"),
                    message=answer.get("message"),
                )


def answer_of(attempt: int, approval: Approval) -> dict[str, Any]:
    """The signal's payload: a front end's recorded answer, for the attempt that asked."""
    return {
        "attempt": attempt,
        "request_id": approval.request_id,
        "decision": approval.decision,
        "decided_by": approval.decided_by,
        "message": approval.message,
    }


def parse_questions(items: Any) -> dict[str, Approval] | None:
    """The questions a heartbeat or result lists (None: it lists none, i.e. not in ask mode)."""
    if not isinstance(items, list):
        return None
    found: dict[str, Approval] = {}
    for item in items:
        try:
            approval = Approval.model_validate(item)
        except ValidationError:
            continue
        found[approval.request_id] = approval
    return found


async def record_questions(
    store: RunStore, run_id: str, known: list[Approval], current: dict[str, Approval] | None
) -> None:
    """Copy the current attempt's questions (``current``, from its heartbeat) into the front end's registry
    (``known``: what it holds). A question still pending here that the current attempt does not list was asked by
    an earlier attempt: withdrawn."""
    if current is None:
        return
    mine = {a.request_id: a for a in known}
    for request_id, theirs in current.items():
        here = mine.get(request_id)
        if here is None:
            unanswered = theirs.model_copy(update={"decision": None, "decided_by": None, "message": None})
            await store.add_approval(unanswered, copy=True)  # another observer may copy it at the same moment
            here = theirs.model_copy(update={"decision": None})
        if theirs.decision is None or (here.decision, here.decided_by) == (theirs.decision, theirs.decided_by):
            continue
        if here.pending:
            await store.decide_approval(
                run_id, request_id, decision=theirs.decision, decided_by=theirs.decided_by or "", message=theirs.message
            )
        else:  # a front end's answer lost a race with the worker (its deadline, the CLI withdrawing)
            await store.settle_approval(
                run_id, request_id, decision=theirs.decision, decided_by=theirs.decided_by or "", message=theirs.message
            )
    for request_id, here in mine.items():
        if here.pending and request_id not in current:
            await store.decide_approval(
                run_id, request_id, decision=WITHDRAWN, decided_by=WITHDRAWN, message=ATTEMPT_ENDED
            )


async def close_questions(store: RunStore, run_id: str) -> None:
    """The run ended: whatever is still pending here was withdrawn."""
    for approval in (await store.get(run_id)).approvals:
        if approval.pending:
            await store.decide_approval(
                run_id, approval.request_id, decision=WITHDRAWN, decided_by=WITHDRAWN, message=RUN_ENDED
            )
