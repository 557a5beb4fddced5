"""The server's start stays cheap (bench row 4a) without changing what a host sees: server/startup.py."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

import pytest
from cc_executor_mcp.app import TOOLS
from cc_executor_mcp.startup import build_tools
from mcp.server.mcpserver.tools import Tool

# Only tool calls need these; rich only the SDK's logging setup, whose handler is dropped under a configured root.
NOT_AT_START = [
    "rich",
    "cc_executor_mcp.run_tools",
    "cc_executor_mcp.task_list_tools",
    "cc_executor_mcp.transcript_tools",
    "cc_executor_mcp.approval_tools",
    "cc_executor.api",
    "cc_executor.backends",
]

_START = """
import json, logging, sys
if sys.argv[1] == "configured":
    logging.basicConfig(stream=sys.stderr)  # as cc_executor_mcp.__main__ does before it builds the server
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
create_server(ServerSettings())
loaded = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
handlers = [type(h).__name__ for h in logging.getLogger().handlers]
import rich.console  # still importable afterwards
print(json.dumps({"loaded": loaded, "handlers": handlers}))
"""


def _published(tool: Tool) -> dict[str, Any]:
    meta = tool.fn_metadata
    return {
        "input": tool.parameters,
        "output": tool.output_schema,
        "model": meta.output_model,
        "wrap": meta.wrap_output,
        "description": tool.description,
        "title": tool.title,
        "annotations": tool.annotations,
    }


def test_every_tool_is_built_as_the_sdk_builds_it_alone() -> None:
    """build_tools shares one derived outputSchema among the tools returning the same type: each tool must still
    publish, validate and convert exactly what add_tool(structured_output=True) would give it."""
    alone = [
        Tool.from_function(
            fn, title=title, description=inspect.cleandoc(fn.__doc__ or ""), annotations=hints, structured_output=True
        )
        for fn, title, hints in TOOLS
    ]
    built = build_tools(TOOLS)
    assert [t.name for t in built] == [t.name for t in alone]
    for ours, reference in zip(built, alone, strict=True):
        assert _published(ours) == _published(reference), ours.name
    assert sum(t.output_schema == built[0].output_schema for t in built) == 6  # the tools returning RunResult
    assert len({id(t.output_schema) for t in built}) == len(built)  # each tool owns the dict it publishes


@pytest.mark.parametrize("logging_setup", ["configured", "unconfigured"])
def test_the_start_loads_nothing_only_tool_calls_need(logging_setup: str) -> None:
    """Importing what a tool call needs (or rich, for a log handler the SDK would drop) before the initialize
    answer costs start-up time every host waits for (bench 4a). Without a configured root logger the SDK still
    installs its RichHandler, as before."""
    argv = [sys.executable, "-c", _START, logging_setup, json.dumps(NOT_AT_START)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    if logging_setup == "configured":
        assert seen == {"loaded": [], "handlers": ["StreamHandler"]}
    else:
        assert seen == {"loaded": ["rich"], "handlers": ["RichHandler"]}
