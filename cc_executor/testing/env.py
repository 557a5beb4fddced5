"""The environment that makes the real `claude` CLI run offline against the fake Messages API."""

from __future__ import annotations

import os
from pathlib import Path

FAKE_API_KEY = "sk-fake-offline"


def offline_env(base_url: str, home: Path, *, max_retries: int = 0) -> dict[str, str]:
    """Variables for one offline CLI: fresh HOME, fake key, no telemetry, private tmp, no CLI retries."""
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / "tmp"
    tmp.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_TMPDIR": str(tmp),
        "TMPDIR": str(tmp),
        "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
