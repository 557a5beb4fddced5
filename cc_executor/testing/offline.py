"""Run library code offline: the bundled fake Messages API plus an isolated HOME for the real CLI.

Used by the demo and the examples; tests use the fixtures in tests/conftest.py instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from cc_executor.engine.command import find_claude
from cc_executor.models import CCExecutorConfig
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic, Scenario

OFFLINE_MODEL = "claude-sonnet-4-5"


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
                    "claude_path": find_claude(),
                    "model": OFFLINE_MODEL,
                    **config,
                }
            )
