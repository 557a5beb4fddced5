"""One grammar for "since" filters, shared by the MCP server and the command line.

A value is an ISO-8601 time (a naive one is taken as UTC) or an age before now: a number and a unit,
``30s``, ``15m``, ``1.5h``, ``2d``, ``1w``. Anything else, or an age that reaches before the year 1, is an
``InvalidRequestError`` naming the value. ``parse_age`` is the age half alone (``cc-executor prune --older-than``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from cc_executor.errors import InvalidRequestError

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_AGE_S = 100 * 365 * 86400  # far enough back for any registry, far from datetime's limits
GRAMMAR = "an ISO-8601 time or an age such as 30m, 1.5h, 2d, 1w"


def parse_age(value: str, *, field: str = "age") -> timedelta:
    """An age such as 30m, 1.5h, 2d, 1w (at most 100 years)."""
    match = _AGE.fullmatch(value.strip())
    if match is None:
        raise InvalidRequestError(f"{field}: {value!r} is not an age such as 30m, 1.5h, 2d, 1w")
    seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if not math.isfinite(seconds) or seconds > _MAX_AGE_S:
        raise InvalidRequestError(f"{field}: {value!r} is too far back (at most 100 years)")
    return timedelta(seconds=seconds)


def parse_since(value: str, *, field: str = "since") -> datetime:
    """The aware UTC time ``value`` names (see the module doc)."""
    text = value.strip()
    if _AGE.fullmatch(text) is not None:
        return datetime.now(UTC) - parse_age(text, field=field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"{field}: {value!r} is not {GRAMMAR}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRequestError(f"{field}: {value!r} is out of range") from None


__all__ = ["GRAMMAR", "parse_age", "parse_since"]
