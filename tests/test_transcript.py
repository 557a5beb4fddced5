"""transcript: append raw lines, page through them by byte cursor, never load a giant line whole."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cc_executor.errors import InvalidRequestError, TranscriptNotFoundError
from cc_executor.registry.transcripts import TranscriptWriter, iter_lines, read_page, tail_offset


def _writer(tmp_path: Path) -> TranscriptWriter:
    return TranscriptWriter.open(tmp_path / "run.jsonl", tmp_path / "run.stderr.log")


def _page_all(path: Path, **kwargs: int) -> tuple[list[str], int]:
    """Follow cursors to the end; return every line seen and how many pages it took."""
    seen: list[str] = []
    cursor: int | None = 0
    pages = 0
    while cursor is not None:
        page = read_page(path, cursor=cursor, **kwargs)
        assert page.cursor == cursor
        assert page.lines, "a page before EOF must make progress"
        seen.extend(page.lines)
        cursor = page.next_cursor
        pages += 1
    return seen, pages


def test_files_are_private(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer:
        writer.write_line(b"{}")
        writer.write_stderr(b"warn\n")
    for name in ("run.jsonl", "run.stderr.log"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_existing_file_is_tightened_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_bytes(b"old\n")
    path.chmod(0o644)
    with _writer(tmp_path) as writer:
        writer.write_line(b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"old\nnew\n"


def test_missing_parent_dir_is_created(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    with TranscriptWriter.open(nested / "x.jsonl", nested / "x.stderr.log") as writer:
        writer.write_line(b"1")
    assert (nested / "x.jsonl").read_bytes() == b"1\n"


def test_page_through_1000_lines(tmp_path: Path) -> None:
    expected = [json.dumps({"type": "event", "n": n, "pad": "x" * (n % 37)}) for n in range(1000)]
    with _writer(tmp_path) as writer:
        for line in expected:
            writer.write_line(line.encode())
    path = tmp_path / "run.jsonl"
    for kwargs in ({"limit": 7}, {"limit": 1}, {"limit": 1000, "max_bytes": 500}, {"limit": 13, "max_bytes": 300}):
        seen, _pages = _page_all(path, **kwargs)
        assert seen == expected, kwargs
    last = read_page(path, cursor=0, limit=1000)
    assert last.next_cursor is None
    assert last.total_bytes == path.stat().st_size
    assert read_page(path, cursor=last.total_bytes).lines == []


def test_byte_budget_never_exceeded_after_first_line(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer:
        for _ in range(10):
            writer.write_line(b"y" * 100)
    page = read_page(tmp_path / "run.jsonl", limit=100, max_bytes=350)
    assert len(page.lines) == 3
    assert page.next_cursor == 303


def test_giant_line_truncated_then_paging_continues(tmp_path: Path) -> None:
    giant = b'{"big":"' + b"z" * (5 * 1024 * 1024) + b'"}'
    with _writer(tmp_path) as writer:
        writer.write_line(b"before")
        for start in range(0, len(giant), 1024 * 1024):  # spilled in pieces, as the runner does
            writer.write_piece(giant[start : start + 1024 * 1024])
        writer.end_piece()
        writer.write_line(b"after")
    path = tmp_path / "run.jsonl"

    first = read_page(path, limit=10, max_bytes=4096)
    assert first.lines == ["before"]  # the giant line does not fit after another line: it waits
    assert first.next_cursor is not None
    second = read_page(path, cursor=first.next_cursor, limit=10, max_bytes=4096)
    assert len(second.lines) == 1
    text = second.lines[0]
    assert text.startswith('{"big":"zzz')
    assert text.endswith(f"…[truncated {len(giant) - 4096} bytes]")
    assert len(text) < 4096 + 100
    assert second.next_cursor is not None
    third = read_page(path, cursor=second.next_cursor)
    assert third.lines == ["after"]
    assert third.next_cursor is None


def test_truncation_does_not_split_a_character(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer:
        writer.write_line("é".encode() * 100)  # 2 bytes each: a cut at an odd byte lands mid-character
    text = read_page(tmp_path / "run.jsonl", max_bytes=11).lines[0]
    assert text.startswith("é" * 5 + "…[truncated")
    assert "\ufffd" not in text


def test_unterminated_tail_waits(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with _writer(tmp_path) as writer:
        writer.write_line(b"done")
        writer.write_piece(b"half a li")
        page = read_page(path)
        assert page.lines == ["done"]
        assert page.next_cursor == 5  # not None: more is coming
        pending = read_page(path, cursor=5)
        assert pending.lines == []
        assert pending.next_cursor == 5
        writer.write_piece(b"ne")
        writer.end_piece()
        assert read_page(path, cursor=5).lines == ["half a line"]
    assert list(iter_lines(path)) == ["done", "half a line"]


def test_close_terminates_an_open_piece(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.write_piece(b"cut short")
    writer.close()
    writer.close()  # idempotent
    assert (tmp_path / "run.jsonl").read_bytes() == b"cut short\n"


def test_write_line_rejects_newlines(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer, pytest.raises(ValueError):
        writer.write_line(b"two\nlines")


def test_iter_lines_truncates(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer:
        writer.write_line(b"a" * 5000)
        writer.write_line(b"b")
    lines = list(iter_lines(tmp_path / "run.jsonl", max_line_bytes=1000))
    assert lines == ["a" * 1000 + "…[truncated 4000 bytes]", "b"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TranscriptNotFoundError):
        read_page(tmp_path / "nope.jsonl")
    with pytest.raises(TranscriptNotFoundError):
        list(iter_lines(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize("cursor", [-1, 3, 10_000])
def test_bad_cursor(tmp_path: Path, cursor: int) -> None:
    with _writer(tmp_path) as writer:
        writer.write_line(b"hello")
        writer.write_line(b"world")
    with pytest.raises(InvalidRequestError):
        read_page(tmp_path / "run.jsonl", cursor=cursor)


def test_bad_limits(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer:
        writer.write_line(b"x")
    with pytest.raises(InvalidRequestError):
        read_page(tmp_path / "run.jsonl", limit=0)
    with pytest.raises(InvalidRequestError):
        read_page(tmp_path / "run.jsonl", max_bytes=0)


def test_each_line_of_a_page_carries_a_cursor_that_resumes_at_it(tmp_path: Path) -> None:
    lines = [json.dumps({"n": i, "text": "é" * i}) for i in range(40)]  # multi-byte, so chars != bytes
    with _writer(tmp_path) as writer:
        for line in lines:
            writer.write_line(line.encode())
    path = tmp_path / "run.jsonl"
    page = read_page(path, limit=100)
    assert page.lines == lines and len(page.offsets) == len(lines)
    for i in (1, 17, 39):
        assert read_page(path, cursor=page.offsets[i], limit=2).lines == lines[i : i + 2]
    assert read_page(path, cursor=tail_offset(path, 3)).lines == lines[-3:]
    assert tail_offset(path, 100) == 0
