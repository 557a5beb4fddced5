"""docs/mcp-tools.md is generated from the tool schemas, and mcp.json.example starts a working server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.docs import render
from cc_executor_mcp.settings import ServerSettings
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]


async def test_tool_reference_is_up_to_date() -> None:
    committed = (REPO / "docs" / "mcp-tools.md").read_text()
    assert committed == await render(), "regenerate: .venv/bin/python -m cc_executor_mcp.docs > docs/mcp-tools.md"


async def test_mcp_json_example_starts_a_working_server(state_home: Path) -> None:
    entry = json.loads((REPO / "mcp.json.example").read_text())["mcpServers"]["cc-executor"]
    assert entry["command"] == "cc-executor-mcp"
    command = Path(sys.executable).parent / entry["command"]  # the console script of this install
    params = StdioServerParameters(
        command=str(command), args=entry["args"], env={**entry["env"], "CC_EXECUTOR_HOME": str(state_home)}
    )
    async with Client(params, read_timeout_seconds=30) as client:
        tools = (await client.list_tools()).tools
        runs = await client.call_tool("list_runs", {})
    assert len(tools) == 11 and not runs.is_error


def undescribed(schema: dict[str, Any], path: str) -> list[str]:
    """Every property under ``schema`` (nested objects and the $defs they use included) without a description."""
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if not str(prop.get("description", "")).strip():
            missing.append(f"{path}.{name}")
    for name, definition in schema.get("$defs", {}).items():
        missing.extend(undescribed(definition, f"{path}.$defs.{name}"))
    return missing


async def test_every_tool_parameter_has_a_description(state_home: Path) -> None:
    async with Client(create_server(ServerSettings())) as client:
        tools = (await client.list_tools()).tools
    missing = [m for tool in tools for m in undescribed(tool.input_schema, tool.name)]
    assert len(tools) == 11 and not missing, missing


def test_the_tool_reference_describes_every_parameter() -> None:
    rows = [line for line in (REPO / "docs" / "mcp-tools.md").read_text().splitlines() if line.startswith("| `")]
    assert rows and not [row for row in rows if row.rstrip().endswith("|  |")]
