"""Shared by the examples: run offline against the bundled fake API (default) or with your real login (--real)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from cc_executor import CCExecutorConfig
from cc_executor.models import ProgressUpdate
from cc_executor.testing.fake_api import Scenario
from cc_executor.testing.offline import offline_config


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--real", action="store_true", help="use your Claude login / ANTHROPIC_API_KEY (costs money)")
    parser.add_argument("--cwd", type=Path, help="work directory (default: a new temp dir)")
    return parser.parse_args()


@asynccontextmanager
async def example_config(
    real: bool, routes: Mapping[str, Scenario], **config: object
) -> AsyncIterator[CCExecutorConfig]:
    if real:
        yield CCExecutorConfig.model_validate(config)
        return
    async with offline_config(routes) as offline:
        yield offline.model_copy(update=config)


@asynccontextmanager
async def workdir(given: Path | None) -> AsyncIterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="cc-executor-example-") as tmp:
        yield Path(tmp)


def ensure_repo(cwd: Path) -> Path:
    """Worktree isolation needs a git repository: make ``cwd`` one (with a first commit) unless it already is."""
    import subprocess

    from cc_executor.testing.git_repos import make_repo

    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=cwd, capture_output=True, check=False)
    if inside.returncode == 0:
        return cwd
    return make_repo(cwd, {"README.md": "# example project\n"})


def show(update: ProgressUpdate) -> None:
    sys.stderr.write(f"  … {update.message}\n")
