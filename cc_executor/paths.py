"""Where cc-executor keeps its state: one resolver, one env override (CC_EXECUTOR_HOME).

Everything under the state dir can hold task text and model output, so directories are 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

from cc_executor.ids import check_run_id as check_run_id

APP_NAME = "cc-executor"
DB_NAME = "runs.db"
TRANSCRIPTS_NAME = "transcripts"


def state_dir() -> Path:
    """$CC_EXECUTOR_HOME, else $XDG_STATE_HOME/cc-executor, else ~/.local/state/cc-executor; created 0700."""
    return ensure_private_dir(_state_base())


def db_path() -> Path:
    return state_dir() / DB_NAME


def transcripts_dir() -> Path:
    return ensure_private_dir(state_dir() / TRANSCRIPTS_NAME)


def transcript_paths(run_id: str, directory: Path | None = None) -> tuple[Path, Path]:
    """(<dir>/<run_id>.jsonl, <dir>/<run_id>.stderr.log); the id is checked first so it cannot escape <dir>."""
    check_run_id(run_id)
    base = transcripts_dir() if directory is None else directory
    return base / f"{run_id}.jsonl", base / f"{run_id}.stderr.log"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700 when we own it; someone else's dir is left alone."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def _state_base() -> Path:
    home = os.environ.get("CC_EXECUTOR_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_NAME
    return Path.home() / ".local" / "state" / APP_NAME
