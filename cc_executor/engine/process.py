"""Spawning and reaping the CLI's whole process tree.

Facts this is built on (docs/process-tree.md): the CLI's Bash tools run in their own sessions, so a
killpg of the CLI's group misses them; SIGINT/SIGTERM make the CLI kill them itself, SIGKILL orphans them;
the CLI never notices its parent dying. Hence:

* the child runs in its own session, under ``setpriv --pdeathsig TERM`` (spawned from the event-loop
  thread: pdeathsig is per thread), so our death, however abrupt, makes it clean up;
* stopping escalates SIGINT -> SIGTERM -> SIGKILL with grace periods, and the SIGKILL pass also reaches
  every descendant and every process carrying the run's environment marker (double forks included);
* an ``atexit`` reaper kills whatever is still running when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc

from cc_executor.engine.command import RUN_MARKER_ENV
from cc_executor.errors import ClaudeNotFoundError, ExecutorError, InvalidRequestError

log = logging.getLogger(__name__)

_LIVE: dict[int, tuple[int, str]] = {}  # pid -> (pgid, run marker), for the atexit reaper
_PROC = Path("/proc")


@dataclass(slots=True)
class ChildProcess:
    process: anyio.abc.Process
    pid: int
    pgid: int
    marker: str

    @property
    def returncode(self) -> int | None:
        return self.process.returncode


def _pdeathsig_prefix() -> list[str]:
    if sys.platform != "linux":
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


async def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], marker: str) -> ChildProcess:
    """Start ``argv`` in its own session with pipes on all three streams. Call from the event-loop thread."""
    try:
        process = await anyio.open_process(
            [*_pdeathsig_prefix(), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if not await anyio.Path(cwd).is_dir():  # the same error as a missing executable: tell them apart
            raise ExecutorError(f"the run's cwd {str(cwd)!r} was removed before claude started") from exc
        raise ClaudeNotFoundError([argv[0]]) from exc
    except OSError as exc:
        if exc.errno == errno.E2BIG:
            raise InvalidRequestError("the CLI's argument list is too long (a system prompt or schema?)") from exc
        raise
    _LIVE[process.pid] = (process.pid, marker)
    _install_reaper()
    return ChildProcess(process=process, pid=process.pid, pgid=process.pid, marker=marker)


def forget(child: ChildProcess) -> None:
    _LIVE.pop(child.pid, None)


async def terminate_tree(child: ChildProcess, *, grace_s: float = 2.0) -> None:
    """Stop the child and everything it started: SIGINT, then SIGTERM, then SIGKILL for all that remain.

    Must be called under a shielded cancel scope by callers that may be cancelled; every wait is bounded.
    """
    known = set(descendants(child.pid))
    for sig in (signal.SIGINT, signal.SIGTERM):
        if child.returncode is not None:
            break
        _signal_group(child.pgid, sig)
        if sig == signal.SIGTERM:
            _signal_all(descendants(child.pid), sig)
        with anyio.move_on_after(grace_s):
            await child.process.wait()
    known |= set(descendants(child.pid))
    _signal_group(child.pgid, signal.SIGKILL)
    _signal_all(known | set(marked_processes(child.marker)), signal.SIGKILL)
    with anyio.move_on_after(max(grace_s, 1.0)):
        await child.process.wait()
        await _until_gone(child.marker)
    forget(child)


async def _until_gone(marker: str, *, kill: bool = True) -> None:
    """Until nothing carries the marker. SIGKILLed processes take a moment to disappear; callers then see an
    empty tree, not a dying one. ``kill``: SIGKILL leftovers (and late forks) on every look."""
    while leftovers := marked_processes(marker):  # polling /proc: there is no event to wait on
        if kill:
            _signal_all(leftovers, signal.SIGKILL)
        await anyio.sleep(0.02)


async def stop_marked(pgid: int | None, marker: str, *, grace_s: float = 2.0) -> int:
    """Stop a run's tree from any process (no handle on the child): SIGINT its group (claude then stops its
    tools), then SIGTERM, then SIGKILL to whatever still carries the marker, each after ``grace_s``.

    Only processes whose environment carries ``CC_EXECUTOR_RUN_ID=<marker>`` are signalled; the group only when
    its leader carries it. Returns how many distinct processes were signalled.
    """
    seen: set[int] = set()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        victims = set(marked_processes(marker))
        if not victims:
            break
        seen |= victims
        leader = pgid if pgid is not None and pgid in victims else None
        if sig == signal.SIGINT and leader is None:
            continue  # without its claude leader, nobody would act on SIGINT: go straight to SIGTERM
        if leader is not None:
            _signal_group(leader, sig)
        if sig != signal.SIGINT:
            _signal_all(victims, sig)
        with anyio.move_on_after(grace_s if sig != signal.SIGKILL else 1.0):
            await _until_gone(marker, kill=sig == signal.SIGKILL)
    return len(seen)


async def sweep_marked(marker: str, *, grace_s: float = 1.0) -> int:
    """After the CLI exits, end anything it left behind (background jobs, double forks). Returns the count."""
    return await stop_marked(None, marker, grace_s=grace_s)


def descendants(root_pid: int) -> list[int]:
    """All live descendants of ``root_pid`` by walking /proc parent links (empty where /proc is absent)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parent_links():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries ``CC_EXECUTOR_RUN_ID=<marker>`` (survives reparenting)."""
    needle = f"{RUN_MARKER_ENV}={marker}".encode()
    own = os.getpid()
    found = []
    for entry in _proc_pids():
        if entry == own:
            continue
        try:
            environ = (_PROC / str(entry) / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and not _is_zombie(entry):
            found.append(entry)
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


@dataclass(frozen=True, slots=True)
class OwnerIdentity:
    """A process as a run's owner: pid plus its start time (clock ticks after boot, /proc/<pid>/stat field 22)
    and the kernel's boot id. A pid alone is reused (containers restart with the same small pids); the triple
    is not."""

    pid: int
    start: int | None
    boot: str | None


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot; None where /proc is absent or the process is gone."""
    value = _stat_field(pid, 19)
    return int(value) if value is not None and value.isdigit() else None


def boot_id() -> str | None:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip() or None
    except OSError:
        return None


_SELF: OwnerIdentity | None = None


def own_identity() -> OwnerIdentity:
    """This process's identity (re-read after a fork: a child has its own pid and start time)."""
    global _SELF
    if _SELF is None or _SELF.pid != os.getpid():
        _SELF = OwnerIdentity(os.getpid(), process_start(os.getpid()), boot_id())
    return _SELF


def owner_alive(pid: int | None, start: int | None, boot: str | None) -> bool:
    """Whether the process that wrote (pid, start, boot) still runs. A different boot, or the pid now belonging to a
    process with another start time, means it died; rows written before start times were kept compare by pid."""
    if pid is None:
        return False
    if boot is not None and (current := boot_id()) is not None and boot != current:
        return False
    if not pid_alive(pid):
        return False
    return start is None or process_start(pid) in (start, None)


def kill_marked_group(pgid: int | None, marker: str) -> int:
    """Reconcile helper: SIGKILL a stale run's group and marked processes, only if they carry its marker."""
    victims = set(marked_processes(marker))
    if pgid is not None and pgid in victims:
        _signal_group(pgid, signal.SIGKILL)
    _signal_all(victims, signal.SIGKILL)
    return len(victims)


def _proc_pids() -> Iterable[int]:
    try:
        names = os.listdir(_PROC)
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit()]


def _parent_links() -> Iterable[tuple[int, int]]:
    for pid in _proc_pids():
        ppid = _stat_field(pid, 1)
        if ppid is not None:
            yield pid, int(ppid)


def _stat_field(pid: int, index: int) -> str | None:
    """A field of /proc/<pid>/stat after the command name (0 = state, 1 = ppid)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[index] if len(fields) > index else None


def _is_zombie(pid: int) -> bool:
    return _stat_field(pid, 0) in ("Z", "X")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


_reaper_installed = False


def _install_reaper() -> None:
    global _reaper_installed
    if not _reaper_installed:
        atexit.register(reap_all)
        _reaper_installed = True


def reap_all() -> None:
    """Interpreter exit: give live children a SIGTERM (so the CLI cleans its tools up), then SIGKILL."""
    if not _LIVE:
        return
    live = dict(_LIVE)
    for pgid, _ in live.values():
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in live):
        time.sleep(0.05)
    for pid, (pgid, marker) in live.items():
        _signal_group(pgid, signal.SIGKILL)
        _signal_all([pid, *marked_processes(marker)], signal.SIGKILL)
    # A process in the middle of exec has no readable environment for a moment, so one scan can miss it (seen in
    # CI: a double-forked tool survived). Look again, briefly, until nothing marked is left.
    markers = [marker for _, marker in live.values()]
    deadline = time.monotonic() + 1.0
    while escaped := [p for marker in markers for p in marked_processes(marker)]:
        _signal_all(escaped, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    _LIVE.clear()
