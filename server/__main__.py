"""``cc-executor-mcp`` / ``python -m cc_executor_mcp`` / ``cc-executor serve``: the MCP server over stdio.

stdout carries the protocol and nothing else: logs go to stderr. SIGTERM and SIGINT cancel every live run (its
process tree is killed and the row says why) before the process exits; stdin EOF does the same.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import replace


def main() -> None:
    """Serve over stdio until the client closes stdin. Settings come from the CC_EXECUTOR_* environment."""
    from .settings import ENV_LOG_LEVEL

    level = os.environ.get(ENV_LOG_LEVEL, "WARNING").upper()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else "WARNING",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from mcp import MCPDeprecationWarning

    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

    from .app import create_server
    from .settings import ServerSettings, SettingsError

    try:
        settings = ServerSettings.from_env()
    except SettingsError as exc:
        sys.stderr.write(f"cc-executor-mcp: {exc}\n")
        raise SystemExit(2) from None
    server = create_server(replace(settings, handle_signals=True))
    server.run("stdio")


if __name__ == "__main__":
    main()
