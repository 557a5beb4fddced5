"""MCP stdio server for cc-executor (installed as cc_executor_mcp)."""
