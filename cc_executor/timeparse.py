"""Times a person types: an ISO-8601 instant or an age ('30s', '15m', '1.5h', '2d', '1w').

One parser for every front end, so `cc-executor runs --since`, `cc-executor prune --older-than` and the MCP tool
``list_runs(since=...)`` accept the same words and refuse the same nonsense with the same sentence. Every refusal
is an InvalidRequestError naming the field; nothing here raises OverflowError or ValueError at a caller (a date
beyond year 9999 or an age of a billion days is bad input, not a crash).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from cc_executor.errors import InvalidRequestError

__all__ = ["MAX_AGE_DAYS", "parse_age", "parse_instant", "parse_since", "since_timestamp"]

MAX_AGE_DAYS = 100 * 365
"""The longest age accepted: far beyond any run history, far inside what datetime can subtract."""

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_EXAMPLES = "'30s', '15m', '1.5h', '2d', '1w'"


def parse_age(value: str, *, field: str = "age") -> timedelta:
    """A non-negative age such as '30m' or '1.5h' (units s, m, h, d, w), at most MAX_AGE_DAYS."""
    match = _AGE.fullmatch(value.strip().lower())
    if match is None:
        raise InvalidRequestError(f"{field}: {_shown(value)} is not an age such as {_AGE_EXAMPLES}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_AGE_DAYS * 86400:
        raise InvalidRequestError(f"{field}: {_shown(value)} is too long; the limit is {MAX_AGE_DAYS} days")
    return timedelta(seconds=seconds)


def parse_instant(value: str, *, field: str = "time") -> datetime:
    """An ISO-8601 time as an aware UTC datetime; a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequestError(f"{field}: {_shown(value)} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is after the last instant datetime can hold
        raise InvalidRequestError(f"{field}: {_shown(value)} is out of range (years 1 to 9999 in UTC)") from None


def parse_since(value: str, *, field: str = "since", now: datetime | None = None) -> datetime:
    """An ISO-8601 time, or an age meaning that long before ``now``; as an aware UTC datetime."""
    text = value.strip()
    if _AGE.fullmatch(text.lower()):
        return (now or datetime.now(UTC)) - parse_age(text, field=field)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"{field}: {_shown(value)} is neither an ISO-8601 time nor an age such as {_AGE_EXAMPLES}"
        ) from None
    return parse_instant(text, field=field)


def since_timestamp(value: str, *, field: str = "since", now: datetime | None = None) -> str:
    """``parse_since`` in the registry's stored form (ISO-8601 UTC with microseconds, so text order is time order)."""
    return parse_since(value, field=field, now=now).isoformat(timespec="microseconds")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "…")
