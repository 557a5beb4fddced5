"""paths: where state lives, and run ids that cannot escape the transcripts dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cc_executor import paths
from cc_executor.errors import InvalidRequestError, UnsafeDirectoryError

RUN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never resolve to the real home: HOME points into tmp, the overrides start unset."""
    monkeypatch.delenv("CC_EXECUTOR_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_cc_executor_home_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert paths.state_dir() == tmp_path / "state"
    assert paths.db_path() == tmp_path / "state" / "runs.db"
    assert paths.transcripts_dir() == tmp_path / "state" / "transcripts"
    assert _mode(tmp_path / "state") == 0o700
    assert _mode(tmp_path / "state" / "transcripts") == 0o700
    assert not (tmp_path / "xdg").exists()


def test_xdg_state_home_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert paths.state_dir() == tmp_path / "xdg" / "cc-executor"


def test_relative_xdg_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")
    assert paths.state_dir() == tmp_path / "home" / ".local" / "state" / "cc-executor"


def test_home_fallback(tmp_path: Path) -> None:
    assert paths.state_dir() == tmp_path / "home" / ".local" / "state" / "cc-executor"


def test_an_existing_dir_is_used_as_it_is_never_chmodded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(state))
    assert paths.state_dir() == state and _mode(state) == 0o755
    assert _mode(paths.transcripts_dir()) == 0o700  # what we create is ours: 0700


def test_a_missing_dir_is_created_0700_whatever_the_umask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(tmp_path / "a" / "b" / "state"))
    old = os.umask(0)
    try:
        state = paths.state_dir()
    finally:
        os.umask(old)
    assert _mode(state) == 0o700


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o757])
def test_a_dir_others_can_write_is_refused_and_left_alone(
    mode: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: CC_EXECUTOR_HOME=/tmp (as root, /tmp is root's) made /tmp 0700 for every user of the machine."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(mode)
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(shared))
    with pytest.raises(UnsafeDirectoryError, match="others can write to it") as caught:
        paths.state_dir()
    assert isinstance(caught.value, PermissionError) and "CC_EXECUTOR_HOME" in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)
    assert _mode(shared) == mode and list(shared.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a directory to another user")
def test_a_dir_of_another_user_or_group_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, -1)
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(theirs))
    with pytest.raises(UnsafeDirectoryError, match="belongs to uid 65534"):
        paths.state_dir()
    group = tmp_path / "group"
    group.mkdir()
    group.chmod(0o770)
    os.chown(group, -1, 65534)
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(group))
    with pytest.raises(UnsafeDirectoryError, match="others can write"):
        paths.state_dir()
    os.chown(group, -1, os.getegid())  # group-writable by our own group: fine
    assert paths.state_dir() == group


def test_transcript_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(tmp_path / "state"))
    out, err = paths.transcript_paths(RUN_ID)
    assert out == tmp_path / "state" / "transcripts" / f"{RUN_ID}.jsonl"
    assert err == tmp_path / "state" / "transcripts" / f"{RUN_ID}.stderr.log"
    assert paths.transcript_paths(RUN_ID, tmp_path / "elsewhere")[0] == tmp_path / "elsewhere" / f"{RUN_ID}.jsonl"


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        f"../{RUN_ID}",
        f"{RUN_ID}/../x",
        f"{RUN_ID}\n",
        RUN_ID.upper(),
        "",
        "not-a-uuid",
    ],
)
def test_bad_run_id_rejected(bad: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(tmp_path / "state"))
    with pytest.raises(InvalidRequestError) as caught:
        paths.transcript_paths(bad)
    assert repr(bad) in str(caught.value)
    assert not (tmp_path / "state").exists()  # rejected before anything was created
