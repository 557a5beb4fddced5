"""Resources: each run's transcript (readable text) and full result (JSON), by run id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from cc_executor.ids import check_run_id

from .startup import LazyModule
from .state import AppState, Ctx

if TYPE_CHECKING:
    from . import transcript_tools as transcripts
else:  # loads with the first read, not before the initialize answer (server/startup.py)
    transcripts = LazyModule(".transcript_tools", __package__)

log = logging.getLogger(__name__)

TRANSCRIPT_TEMPLATE = "cc-executor://runs/{run_id}/transcript"
RESULT_TEMPLATE = "cc-executor://runs/{run_id}/result"


async def transcript_resource(run_id: str, ctx: Ctx) -> str:
    """The run's transcript as readable text (first page; get_transcript pages through the rest)."""
    with _resource_errors():
        return await transcripts.transcript_text(ctx.request_context.lifespan_context, check_run_id(run_id))


async def result_resource(run_id: str, ctx: Ctx) -> str:
    """The run's full result as JSON (untrimmed)."""
    with _resource_errors():
        backend = await ctx.request_context.lifespan_context.backend()
        record = await backend.status(check_run_id(run_id))
        return record.to_result().model_dump_json(indent=2)


@contextmanager
def _resource_errors() -> Iterator[None]:
    """Bad ids and core errors become ResourceError: a JSON-RPC error whose message names the problem."""
    from cc_executor.errors import CCExecutorError, RunNotFoundError

    try:
        yield
    except RunNotFoundError as exc:
        raise ResourceError(f"unknown run_id {exc.run_id!r}") from None
    except (CCExecutorError, ToolError, ValueError) as exc:
        raise ResourceError(str(exc)) from None
    except Exception as exc:  # never the SDK's bare "Error reading resource": a sentence, the traceback in the log
        log.error("internal error reading a run resource", exc_info=exc)
        raise ResourceError(f"internal error ({type(exc).__name__}); details in the server log") from None


def register_resources(server: MCPServer[AppState]) -> None:
    server.resource(
        TRANSCRIPT_TEMPLATE,
        name="run-transcript",
        title="Run transcript",
        description="A run's transcript as readable text (first page; get_transcript pages through the rest).",
        mime_type="text/plain",
    )(transcript_resource)
    server.resource(
        RESULT_TEMPLATE,
        name="run-result",
        title="Run result",
        description="A run's full, untrimmed result as JSON.",
        mime_type="application/json",
    )(result_resource)
