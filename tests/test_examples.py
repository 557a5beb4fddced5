"""The examples run offline end to end (their own fake API, the real CLI) and do real file work."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "expected_files", "expected_output"),
    [
        ("sequential_pipeline.py", ["analyze.py", "data.csv"], "3. success"),
        ("competing_implementations.py", ["README.md", "slugify.py"], "winner: contest/regex"),
        (
            "multi_component_build.py",
            ["README.md", "main.py", "models.py", "render.py", "storage.py"],
            "integration: success",
        ),
    ],
)
async def test_example_runs_offline(
    script: str, expected_files: list[str], expected_output: str, tmp_path: Path, claude_bin: Path
) -> None:
    work = tmp_path / "example"
    done = await anyio.run_process(
        [sys.executable, str(EXAMPLES / script), "--cwd", str(work)],
        check=False,
        env={**__import__("os").environ, "CC_EXECUTOR_CLAUDE": str(claude_bin)},
    )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert expected_output in out
    assert sorted(p.name for p in work.iterdir() if p.is_file()) == sorted(expected_files)
