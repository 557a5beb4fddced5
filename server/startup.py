"""What the server's start costs, kept small: bench row 4a allows the initialize answer ≤ a bare import of the
SDK + 100 ms, and most of the rest goes to building the tools' models and JSON schemas.

Three costs are avoided here, none changing anything a host sees (the same tools, schemas and logging):

- ``build_tools``: the SDK derives a tool's outputSchema from its return annotation (~5 ms for RunResult, which six
  tools return); each distinct return type is derived once and shared. And each tool's annotations are evaluated
  once, not at each of the SDK's reads.
- ``sdk_logging_setup``: ``MCPServer.__init__`` imports rich (~20 ms) to hand ``logging.basicConfig`` a
  RichHandler, which basicConfig drops unused once the root logger has a handler (``__main__`` sets one up first).
- ``LazyModule``: the modules only tool bodies use (run_tools, task_list_tools, ...) load with the first tool call.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, get_args

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import InputRequiredResult, ToolAnnotations
from pydantic import BaseModel

ToolSpec = tuple[Callable[..., Any], str, ToolAnnotations]  # the tool function, its title, its hints


def build_tools(specs: Sequence[ToolSpec]) -> list[Tool]:
    """The tools as ``MCPServer.add_tool(fn, structured_output=True)`` would build them, for ``MCPServer(tools=)``.

    The first tool with a given return type gets its output model and schema derived by the SDK; a later tool with
    the same return type is built without structured output (which skips only that derivation) and then given
    the first one's output_model, output_schema and wrap_output. FuncMetadata reads those fields live at each call,
    so the tool validates, converts and publishes its result exactly as if the SDK had derived them again."""
    derived: dict[Any, FuncMetadata] = {}
    tools = []
    for fn, title, hints in specs:
        # The SDK reads a tool's annotations several times (context, resolvers, arguments) and each read evaluates
        # the strings of ``from __future__ import annotations`` again; evaluated once here, they are objects.
        fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)
        returns = _data_type(inspect.signature(fn).return_annotation)
        first = derived.get(returns)
        shared = first is not None and _shareable(first)
        tool = Tool.from_function(
            fn,
            title=title,
            description=inspect.cleandoc(fn.__doc__ or ""),
            annotations=hints,
            structured_output=not shared,
        )
        if first is not None and shared:
            meta = tool.fn_metadata
            meta.output_model = first.output_model
            meta.output_schema = _copy(first.output_schema)
            meta.wrap_output = first.wrap_output
        elif first is None:
            derived[returns] = tool.fn_metadata
        tools.append(tool)
    return tools


def _copy(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each tool owns the dict it publishes, as when the SDK derives each; a JSON schema is JSON, and a JSON round
    trip copies it several times faster than copy.deepcopy."""
    return None if schema is None else json.loads(json.dumps(schema))


def _data_type(annotation: Any) -> Any:
    """The return annotation the SDK derives an outputSchema from: a union's InputRequiredResult arm (a request
    for more input, not data) is left out, so ``RunResult | InputRequiredResult`` publishes RunResult's schema."""
    if isinstance(annotation, types.UnionType):
        data = tuple(arm for arm in get_args(annotation) if arm is not InputRequiredResult)
        return data[0] if len(data) == 1 else annotation
    return annotation


def _shareable(meta: FuncMetadata) -> bool:
    """A model's own schema names no function; a wrapped result's ({"result": ...}) is titled after its tool."""
    model = meta.output_model
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    return is_model and meta.output_schema is not None and not meta.wrap_output


@contextmanager
def sdk_logging_setup() -> Iterator[None]:
    """Around ``MCPServer(...)``: when the root logger already has a handler, rich is made unimportable for the
    moment, so the SDK's configure_logging takes its plain-handler branch, which basicConfig drops just the same.
    Nothing changes when no handler is set up yet (the SDK's RichHandler is then installed as before) or when rich
    is already loaded (its import then costs nothing)."""
    if not logging.getLogger().handlers or "rich" in sys.modules:
        yield
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # an import of rich.* now raises ImportError
    try:
        yield
    finally:
        if "rich" in sys.modules and sys.modules["rich"] is None:
            del sys.modules["rich"]


class LazyModule:
    """``importlib.import_module(name, package)`` at the first attribute access: for modules only tool bodies use
    (``if TYPE_CHECKING`` imports the real one for the type checker), so they load with the first tool call, not
    before the initialize answer. tests/test_layering.py reads these calls like imports."""

    def __init__(self, name: str, package: str | None = None) -> None:
        self._name = name
        self._package = package

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name, self._package), attr)
