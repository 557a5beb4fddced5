"""The tool layer's one error boundary: whatever goes wrong in a tool call, the caller reads a sentence.

mcp's MCPServer turns a failing tool into an ``isError`` result, but with text a caller cannot act on: argument
validation comes back as pydantic's multi-line dump, and any exception it did not expect as the bare "Error
executing tool X". ``ToolErrorServer`` overrides the public ``MCPServer.call_tool`` (no SDK fork, no private
hooks) so that:

- unknown argument names are refused ("timout_s: is not a parameter of execute_task; ...") instead of ignored;
- argument validation reads ``timeout_s: must be at most 604800 seconds`` (cc_executor.validation);
- our own errors (ToolError, CCExecutorError) read as their message, without the SDK's prefix;
- anything else reads ``internal error (OverflowError) in list_runs; details in the server log`` (plus the run
  id when the call had one), and its traceback is logged on stderr at ERROR.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server.lowlevel.server import LifespanResultT
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

log = logging.getLogger(__name__)

_RUN_ID_ARGUMENTS = ("run_id", "resume_run_id")


@dataclass
class _Call:
    run_id: str | None = None


_CURRENT: ContextVar[_Call | None] = ContextVar("cc_executor_tool_call", default=None)


def note_run_id(run_id: str) -> None:
    """Remember the run the current tool call started, so an internal error can name it."""
    call = _CURRENT.get()
    if call is not None:
        call.run_id = run_id


class ToolErrorServer(MCPServer[LifespanResultT]):
    """An MCPServer whose tool failures are always one readable sentence (see the module docstring)."""

    _parameters: dict[str, frozenset[str]] | None = None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[LifespanResultT, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        call = _Call(run_id=_named_run_id(arguments))
        token = _CURRENT.set(call)
        try:
            await self._check_names(name, arguments)
            return await super().call_tool(name, arguments, context)
        except MCPError:
            raise  # a protocol error (JSON-RPC error response), not a tool failure
        except Exception as exc:
            cause = _cause(exc)
            # A ValidationError cause makes the SDK log only the failing field names, never the caller's values.
            raise ToolError(translate(exc, name, call.run_id)) from (
                cause if isinstance(cause, ValidationError) else None
            )
        finally:
            _CURRENT.reset(token)

    async def _check_names(self, name: str, arguments: dict[str, Any]) -> None:
        """A misspelt option (``timout_s``) would otherwise be dropped silently and the run go on without it."""
        if self._parameters is None:
            tools = await self.list_tools()
            self._parameters = {t.name: frozenset(t.input_schema.get("properties", {})) for t in tools}
        known = self._parameters.get(name)
        if known is None:
            return  # unknown tool: the SDK says so
        unknown = sorted(set(arguments) - known)
        if unknown:
            names = ", ".join(unknown)
            raise ToolError(f"{names}: not a parameter of {name}; its parameters are {', '.join(sorted(known))}")


def translate(exc: BaseException, tool: str, run_id: str | None = None) -> str:
    """The sentence a caller gets for ``exc`` raised by ``tool``; an internal error is logged with its traceback."""
    from cc_executor.errors import CCExecutorError
    from cc_executor.validation import describe_validation_error

    cause = _cause(exc)
    if cause is None:  # a ToolError raised on purpose (by a tool, by this boundary, or the SDK's "Unknown tool")
        return str(exc).removeprefix(f"Error executing tool {tool}: ")
    if isinstance(cause, ValidationError):
        return describe_validation_error(cause)
    if isinstance(cause, CCExecutorError):
        return str(cause)
    log.error("internal error in tool %s (run %s)", tool, run_id or "-", exc_info=cause)
    where = f", run {run_id}" if run_id else ""
    return f"internal error ({type(cause).__name__}) in {tool}; details in the server log{where}"


def _cause(exc: BaseException) -> BaseException | None:
    """What really went wrong, or None for a deliberate ToolError. The SDK wraps every failure of a tool in
    ToolError (deliberate ones, and arguments that failed validation) or UnexpectedToolError (anything else), with
    the original as ``__cause__``."""
    if isinstance(exc, UnexpectedToolError):
        return exc.__cause__ or exc
    if isinstance(exc, ToolError):
        return exc.__cause__ if isinstance(exc.__cause__, ValidationError) else None
    return exc


def _named_run_id(arguments: dict[str, Any]) -> str | None:
    for key in _RUN_ID_ARGUMENTS:
        value = arguments.get(key)
        if isinstance(value, str) and len(value) <= 64:
            return value
    return None
