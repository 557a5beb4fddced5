"""paths: where state lives, and run ids that cannot escape the transcripts dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cc_executor import paths
from cc_executor.errors import InvalidRequestError

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


def test_existing_dir_is_tightened(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(state))
    paths.state_dir()
    assert _mode(state) == 0o700


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
