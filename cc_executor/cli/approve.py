"""``cc-executor approve``: answer a permission prompt a run waits on (ask mode), from any terminal, for a run owned
by any process (the MCP server, another ``cc-executor run``) or running on a Temporal worker (the answer is then
sent to the run's workflow; the ``CC_EXECUTOR_TEMPORAL_*`` settings say where Temporal is)."""

from __future__ import annotations

import argparse
import os

import anyio

from cc_executor.backends.factory import BACKEND_ENV, open_backend
from cc_executor.backends.protocol import Backend
from cc_executor.cli.common import EXIT_OK, err, local_backend, out, resolve_run, write_json
from cc_executor.errors import InvalidRequestError
from cc_executor.models import Approval, ApprovalDecision, RunRecord


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "approve",
        help="answer a run's pending permission prompt (allow, or --deny)",
        description="Answer a question a run waits on (status waiting_for_approval: it runs with "
        "--permission-prompts ask and nobody answered yet). Allows once by default. The first answer wins, "
        "wherever it comes from; it is recorded as the person's. `cc-executor show RUN` lists the questions. "
        "A run on a Temporal worker is answered through Temporal (CC_EXECUTOR_TEMPORAL_ADDRESS etc.).",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id or a unique prefix of it")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--deny", action="store_true", help="deny instead of allowing")
    choice.add_argument("--for-run", action="store_true", help="allow this and the same again for the rest of the run")
    parser.add_argument("--request", metavar="ID", help="which question, when several are pending")
    parser.add_argument("-m", "--message", help="recorded with the answer (with --deny, also shown to Claude)")
    parser.add_argument("--json", action="store_true", help="print the recorded answer as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return anyio.run(_approve, args)


async def _approve(args: argparse.Namespace) -> int:
    async with local_backend() as backend:
        record = await resolve_run(backend, args.run_id)
    if record.backend == "temporal":  # a run on a worker: its questions and answers travel through Temporal
        environ = {**os.environ, BACKEND_ENV: "temporal"}
        async with open_backend(environ=environ) as remote:
            return _report(args, await _answer(remote, await remote.status(record.run_id), args))
    async with local_backend() as backend:
        return _report(args, await _answer(backend, record, args))


async def _answer(backend: Backend, record: RunRecord, args: argparse.Namespace) -> Approval:
    pending = record.pending_approvals
    if args.request is None:
        if not pending:
            raise InvalidRequestError(f"run {record.run_id} waits on no question (status {record.status.value})")
        if len(pending) > 1:
            ids = ", ".join(f"{a.request_id} ({a.tool}: {a.summary})" for a in pending)
            raise InvalidRequestError(f"run {record.run_id} waits on several questions; pick one with --request: {ids}")
    request_id = args.request or pending[0].request_id
    decision: ApprovalDecision = "deny" if args.deny else "allow_for_run" if args.for_run else "allow"
    return await backend.approve(record.run_id, request_id, decision, decided_by="person", message=args.message)


def _report(args: argparse.Namespace, answered: Approval) -> int:
    if args.json:
        write_json(answered.model_dump())
    else:
        out(f"{answered.decision}: {answered.tool}: {answered.summary}")
        err(f"recorded for run {answered.run_id} (request {answered.request_id})")
    return EXIT_OK
