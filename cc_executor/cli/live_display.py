"""Live progress of one run on stderr: a rich spinner line on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol

from cc_executor.cli.common import err, format_duration, short_id
from cc_executor.models import ProgressUpdate
from cc_executor.text import one_line

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.spinner import Spinner

_PLAIN_HEARTBEAT_S = 30.0


class ProgressDisplay(Protocol):
    def start(self, run_id: str, cwd: str) -> None: ...

    async def update(self, update: ProgressUpdate) -> None: ...

    def stop(self) -> None: ...


def make_display(*, quiet: bool) -> ProgressDisplay:
    from cc_executor.cli.common import is_tty

    if quiet:
        return NullDisplay()
    if is_tty(sys.stderr):
        return LiveDisplay()
    return PlainDisplay()


class NullDisplay:
    def start(self, run_id: str, cwd: str) -> None:
        pass

    async def update(self, update: ProgressUpdate) -> None:
        pass

    def stop(self) -> None:
        pass


class PlainDisplay:
    """One line per change on stderr; heartbeats only every 30 s so logs stay short."""

    def __init__(self) -> None:
        self.prefix = "[cc-executor]"
        self.last_message = ""
        self.last_write = 0.0

    def start(self, run_id: str, cwd: str) -> None:
        self.prefix = f"[cc-executor {short_id(run_id)}]"
        self._write(f"run {run_id} in {cwd}")

    async def update(self, update: ProgressUpdate) -> None:
        if update.kind == "finished" or update.message == self.last_message:
            return
        if update.kind == "heartbeat" and time.monotonic() - self.last_write < _PLAIN_HEARTBEAT_S:
            return
        self.last_message = update.message
        self._write(update.message)

    def stop(self) -> None:
        pass

    def _write(self, message: str) -> None:
        self.last_write = time.monotonic()
        err(f"{self.prefix} {message}")


def status_text(update: ProgressUpdate | None, elapsed_s: float) -> str:
    """The spinner line: elapsed · turn · current tool · files touched · tokens · cost."""
    parts = [format_duration(elapsed_s)]
    if update is None:
        return " · ".join([*parts, "starting"])
    if update.kind == "queued":
        return " · ".join([*parts, update.message])
    if update.turn:
        parts.append(f"turn {update.turn}")
    parts.append(update.last_tool or ("starting claude" if update.kind == "started" else "thinking"))
    if update.files_touched:
        names = ", ".join(p.rsplit("/", 1)[-1] for p in update.files_touched[-3:])
        count = len(update.files_touched)
        parts.append(f"{count} file{'s' if count != 1 else ''}: {names}")
    if update.tokens:
        parts.append(f"{update.tokens / 1000:.1f}k tokens" if update.tokens >= 1000 else f"{update.tokens} tokens")
    if update.cost_usd:
        parts.append(f"${update.cost_usd:.4f}")
    return " · ".join(parts)


class LiveDisplay:
    """A transient rich spinner line with a live clock; each new tool call is also printed above it."""

    def __init__(self) -> None:
        from cc_executor.cli.common import console

        self.console: Console = console(sys.stderr)
        self.started = time.monotonic()
        self.latest: ProgressUpdate | None = None
        self.last_tool: str | None = None
        self.live: Live | None = None
        self.spinner: Spinner | None = None

    def start(self, run_id: str, cwd: str) -> None:
        from rich.live import Live
        from rich.markup import escape
        from rich.spinner import Spinner

        self.started = time.monotonic()
        self.console.print(f"[bold]run[/] {run_id} [dim]in {escape(cwd)}[/]", markup=True)
        self.spinner = Spinner("dots", style="cyan")
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def __rich__(self) -> Spinner:
        assert self.spinner is not None
        self.spinner.update(text=status_text(self.latest, time.monotonic() - self.started))
        return self.spinner

    async def update(self, update: ProgressUpdate) -> None:
        from rich.markup import escape

        if update.kind == "finished":
            return
        if update.kind in ("queued", "started") or "retrying" in update.message:
            self.console.print(f"  [dim]{escape(update.message)}[/]", markup=True, highlight=False)
        if update.last_tool and update.last_tool != self.last_tool:
            self.last_tool = update.last_tool
            tool = escape(one_line(update.last_tool, 160))
            self.console.print(f"  [cyan]→[/] {tool}", markup=True, highlight=False)
        self.latest = update

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def suspend(self) -> None:
        """Hide the spinner while the person answers a prompt on the terminal."""
        if self.live is not None:
            self.live.stop()

    def resume(self) -> None:
        if self.live is not None:
            self.live.start()
