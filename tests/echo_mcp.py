"""A small stdio MCP server for tests that give a nested run its own MCP servers: ``echo`` answers at once,
``ask_name`` elicits a name from the user (the nested CLI relays that to its host). Run as
``python tests/echo_mcp.py``."""

from __future__ import annotations

from typing import Annotated

from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Elicit, ElicitationResult, MCPServer, Resolve
from pydantic import BaseModel

server = MCPServer("echo")


class Name(BaseModel):
    name: str


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"ECHO:{text}"


def _ask() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool()
async def ask_name(answer: Annotated[ElicitationResult[Name], Resolve(_ask)]) -> str:
    """Ask the user for a name (in either protocol era) and greet them."""
    if isinstance(answer, AcceptedElicitation):
        return f"HELLO {answer.data.name}"
    return f"NO NAME ({answer.action})"


if __name__ == "__main__":
    server.run()
