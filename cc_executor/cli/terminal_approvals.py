"""Ask mode on a terminal: the person running `cc-executor run` answers the run's permission questions (y / n /
always for this run), for a run in this process as for one on a Temporal worker."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import anyio

from cc_executor.cli.common import err

if TYPE_CHECKING:
    from cc_executor.backends.protocol import Backend
    from cc_executor.cli.live_display import ProgressDisplay
    from cc_executor.models import Approval, ApprovalDecision

__all__ = ["answer_on_terminal"]


async def answer_on_terminal(backend: Backend, run_id: str, display: ProgressDisplay) -> None:
    """Ask mode on a terminal: the person running the command answers each question the run waits on, y / n /
    always (for this run), through the backend like any other answerer (the first answer wins)."""
    from cc_executor.errors import InvalidRequestError

    asked: set[str] = set()
    while True:
        record = await backend.status(run_id)
        if record.status.finished:
            return
        for approval in record.pending_approvals:
            if approval.request_id in asked or approval.kind != "permission":
                continue
            asked.add(approval.request_id)
            decision = await _prompt(approval, display)
            try:
                await backend.approve(run_id, approval.request_id, decision, decided_by="person")
            except InvalidRequestError:  # answered elsewhere, or denied at its deadline, meanwhile
                err("cc-executor: that question was already answered")
        await anyio.sleep(0.2)


async def _prompt(approval: Approval, display: ProgressDisplay) -> ApprovalDecision:
    suspend, resume = getattr(display, "suspend", None), getattr(display, "resume", None)
    if suspend is not None:
        suspend()
    try:
        always = " / [a]lways for this run" if approval.can_allow_for_run else ""
        reason = f"\n  reason: {approval.reason}" if approval.reason else ""
        err(f"claude asks to use {approval.tool}: {approval.summary}{reason}")
        sys.stderr.write(f"Allow? [y]es / [n]o{always}: ")
        sys.stderr.flush()
        await anyio.wait_readable(sys.stdin.fileno())  # cancellable: the run may end (or be answered) meanwhile
        answer = sys.stdin.readline().strip().lower()
    finally:
        if resume is not None:
            resume()
    if answer in ("a", "always") and approval.can_allow_for_run:
        return "allow_for_run"
    return "allow" if answer in ("y", "yes", "a", "always") else "deny"
