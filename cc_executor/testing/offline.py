"""Run library code offline: the bundled fake Messages API plus an isolated HOME for the real CLI.

Used by the demo and the examples; tests use the fixtures in tests/conftest.py instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from cc_executor.engine.command import CLAUDE_PATH_ENV, find_claude
from cc_executor.models import CCExecutorConfig
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic, Scenario

OFFLINE_MODEL = "claude-sonnet-4-5"
# The CLI version the fake API is written against, installed by `npm ci` in a cc-executor checkout.
_PINNED_CLAUDE = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "claude"


def offline_claude() -> str:
    """$CC_EXECUTOR_CLAUDE, else this checkout's pinned CLI (a fixed place, never the cwd), else the lookup."""
    if not os.environ.get(CLAUDE_PATH_ENV) and _PINNED_CLAUDE.is_file():
        return str(_PINNED_CLAUDE)
    return find_claude()


@asynccontextmanager
async def offline_config(
    routes: Mapping[str, Scenario], *, default: Scenario | None = None, **config: object
) -> AsyncIterator[CCExecutorConfig]:
    """A CCExecutorConfig whose CLI talks to a scripted fake API (``routes``: prompt marker → scenario)."""
    with tempfile.TemporaryDirectory(prefix="cc-executor-offline-") as home:
        async with FakeAnthropic(default, routes) as fake:
            yield CCExecutorConfig.model_validate(
                {
                    "env": offline_env(fake.base_url, Path(home)),
                    "claude_path": offline_claude(),
                    "model": OFFLINE_MODEL,
                    **config,
                }
            )
