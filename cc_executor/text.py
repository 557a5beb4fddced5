"""Short text for people: one-line excerpts and cut-off strings, used by the engine's progress lines and by every
front end (the CLI's tables, the MCP server's results), so all of them cut text the same way."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters, the last one an ellipsis when anything was cut. Line breaks
    stay (see ``one_line`` for a single-line excerpt)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def one_line(text: str | None, width: int) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, then cut to ``width``."""
    return shorten(" ".join((text or "").split()), width)


__all__ = ["ELLIPSIS", "one_line", "shorten"]
