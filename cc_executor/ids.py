"""Run ids: a lowercase UUID4 string, and the one check every entry point applies (ids become file names).

Dependency-free on purpose: the MCP server's schemas use it before the initialize answer.
"""

from __future__ import annotations

import re

from cc_executor.errors import InvalidRequestError

RUN_ID_REGEX = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
RUN_ID_PATTERN = re.compile(RUN_ID_REGEX)


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is a run id, else an InvalidRequestError (also a ValueError, so validators accept it).

    fullmatch, since ``$`` also matches before a trailing newline."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:80] + "…"
        raise InvalidRequestError(
            f"invalid run id {shown}: it is not a run id (a lowercase UUID, as execute_task, start_task and "
            "cc-executor run return)"
        )
    return run_id


__all__ = ["RUN_ID_PATTERN", "RUN_ID_REGEX", "check_run_id"]
