"""A one-tool stdio MCP server (``echo``) for tests that give a nested run its own MCP servers. Run as
``python tests/echo_mcp.py``."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"ECHO:{text}"


if __name__ == "__main__":
    server.run()
