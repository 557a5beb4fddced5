"""Where cc-executor keeps its state: one resolver, one env override (CC_EXECUTOR_HOME).

Everything under the state dir can hold task text and model output. Directories we create are 0700; a directory
that already exists is never chmodded (it may be one the user gave us: CC_EXECUTOR_HOME=/tmp must not make /tmp
0700), and one that other users can write to is refused with a sentence, since they could swap its files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cc_executor.errors import UnsafeDirectoryError
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
    """``path`` as a directory only this user can write: created 0700 if missing (parents as the umask says),
    used as it is if it exists; UnsafeDirectoryError if others can write it. Never changes an existing mode."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        path.chmod(0o700)  # ours, just made: the umask may only have taken bits away, never added one
    check_private_dir(path)
    return path


def check_private_dir(path: Path) -> None:
    """Refuse a directory another user owns or can write to (the group counts unless it is our own group)."""
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a directory")
    mode = stat.S_IMODE(info.st_mode)
    uid = os.geteuid()
    others_write = mode & stat.S_IWOTH or (mode & stat.S_IWGRP and info.st_gid != os.getegid())
    if info.st_uid == uid and not others_write:
        return
    who = (
        f"belongs to uid {info.st_uid}, not to this user (uid {uid})"
        if info.st_uid != uid
        else "others can write to it"
    )
    raise UnsafeDirectoryError(
        f"{path} is not private: {who} (mode {mode:04o}). cc-executor keeps task text and model output there; point "
        "CC_EXECUTOR_HOME at a directory only you can write (a missing one is created 0700), or remove the group "
        f"and other write bits yourself (chmod go-w {path})"
    )


def _state_base() -> Path:
    home = os.environ.get("CC_EXECUTOR_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_NAME
    return Path.home() / ".local" / "state" / APP_NAME
