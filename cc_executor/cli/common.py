"""Helpers shared by the CLI commands: output (rich on a terminal, plain lines otherwise), formatting, run ids.

Conventions every command follows: results go to stdout, progress and notes to stderr; ``--json`` makes stdout
exactly one JSON document; rich is used only when the stream it writes to is a terminal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from cc_executor.errors import InvalidRequestError, RunNotFoundError
from cc_executor.ids import RUN_ID_PATTERN
from cc_executor.models import RunRecord

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from cc_executor.backends import Backend, LocalBackend

Query = TypeVar("Query", bound="BaseModel")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3  # show --follow: the run was cancelled (or skipped)
EXIT_LOST = 4  # show --follow: the process running it died (the row says lost)

_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse prefixes the option's name)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    """argparse type: a finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console(stream: TextIO) -> Console:
    """A rich console on ``stream`` (only used when ``stream`` is a terminal)."""
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=False)


def out(text: str = "") -> None:
    """One plain line on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str = "") -> None:
    """One plain line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def write_json(value: Any) -> None:
    """The whole of stdout in --json mode."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def short_id(run_id: str) -> str:
    return run_id[:8]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_cost(usd: float | None) -> str:
    return "-" if usd is None else f"${usd:.4f}"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(value: str | None) -> str:
    """An ISO-8601 UTC timestamp from the store, shown in local time."""
    moment = parse_time(value)
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def home_relative(path: str | None) -> str:
    if not path:
        return "-"
    home = str(Path.home())
    return "~" + path[len(home) :] if path == home or path.startswith(home + "/") else path


def run_duration(record: RunRecord) -> float | None:
    """The recorded duration, or the time so far for a run still going."""
    if record.duration_s is not None:
        return record.duration_s
    started = parse_time(record.started_at)
    if started is None or record.status.finished:
        return None
    return (datetime.now(UTC) - started).total_seconds()


@asynccontextmanager
async def local_backend(*, kill_grace_s: float = 2.0) -> AsyncIterator[LocalBackend]:
    """The backend every command reaches runs through: this process's runs over the registry in the state dir
    (runs of other processes are followed and cancelled through their rows)."""
    from cc_executor.backends import LocalBackend

    async with LocalBackend(kill_grace_s=kill_grace_s) as backend:
        yield backend


@asynccontextmanager
async def registry_backend(*, kill_grace_s: float = 2.0) -> AsyncIterator[LocalBackend]:
    """The backend for commands that look at runs started anywhere (show, runs, cancel, run --detach): durable runs
    are followed through their numbered events, and one whose supervisor died is recorded lost as soon as it is
    looked at; runs of other front ends through their rows. Leaving it leaves every run running."""
    from cc_executor.backends import DurableBackend

    async with DurableBackend(kill_grace_s=kill_grace_s) as backend:
        yield backend


@asynccontextmanager
async def remote_backend() -> AsyncIterator[Backend | None]:
    """The Temporal backend when ``CC_EXECUTOR_BACKEND=temporal`` (entered), else None. The commands that look at
    runs read this machine's registry; only Temporal knows the tasks its lists have not started (no row here yet)."""
    from cc_executor.backends.factory import BACKEND_ENV, open_backend

    if os.environ.get(BACKEND_ENV, "").strip().lower() != "temporal":
        yield None
        return
    async with open_backend() as backend:
        yield backend


def exit_code_for(status: str) -> int:
    """How a followed run ended, as an exit code: 0 success, 1 failed or timed out, 3 cancelled, 4 lost."""
    if status == "success":
        return EXIT_OK
    if status in ("cancelled", "skipped"):
        return EXIT_CANCELLED
    if status == "lost":
        return EXIT_LOST
    return EXIT_FAILED


@contextmanager
def lone_errors() -> Iterator[None]:
    """Around a task group whose helper tasks never fail: its one error is re-raised as itself, so ``main`` can
    turn it into the command's exit code and sentence (an error group would be a traceback)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def resolve_run(backend: Backend, ref: str) -> RunRecord:
    """A run by its full id or a unique prefix of it (like git and docker)."""
    ref = ref.strip().lower()
    if RUN_ID_PATTERN.fullmatch(ref):
        return await backend.status(ref)
    if not _PREFIX.match(ref):
        raise InvalidRequestError(f"invalid run id {ref!r}: expected a run id or a prefix of one (hex digits)")
    matches = await backend.find_ids(ref, limit=6)
    if not matches:
        raise RunNotFoundError(ref)
    if len(matches) > 1:
        shown = ", ".join(short_id(m) for m in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise InvalidRequestError(f"run id prefix {ref!r} is ambiguous: it matches {shown}; give more characters")
    return await backend.status(matches[0])


def seam_query(model: type[Query], **fields: Any) -> Query:
    """``model(**fields)`` for a seam query (``RunFilter``, ``TranscriptQuery``): a value the seam refuses (a
    ``--limit`` out of its range...) is a usage error naming the flag, never a traceback."""
    from pydantic import ValidationError

    from cc_executor.validation import problem_text

    try:
        return model(**fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            flag = "--" + ".".join(str(part) for part in error.get("loc", ())).replace("_", "-")
            problems.append(f"{flag}: {problem_text(error)}")
        raise InvalidRequestError("; ".join(problems)) from None


def record_json(record: RunRecord) -> dict[str, Any]:
    return record.model_dump(mode="json")
