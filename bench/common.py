"""Shared pieces of the benchmarks: paths, statistics, the result rows and the offline fixtures."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
CLAUDE = str(REPO / "node_modules" / ".bin" / "claude")
FAKE_CLAUDE = str(REPO / "tests" / "fake_claude.py")
MODEL = "claude-sonnet-4-5"  # a model name the CLI knows: no "unrecognized model" detour
MIB = 1024 * 1024


@dataclass(slots=True)
class Row:
    """One line of the results table. ``passed`` None means informational or pending."""

    name: str
    measured: str
    target: str
    passed: bool | None
    method: str
    status: str = ""  # overrides the pass/fail cell, e.g. "pending"

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        if self.passed is None:
            return "info"
        return "pass" if self.passed else "**FAIL**"


@dataclass(slots=True)
class Section:
    """A benchmark's rows plus the notes (markdown) that explain them."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after the section


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    tmp: Path


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (q in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def bootstrap_ratio_ci(
    numerator: Sequence[float], denominator: Sequence[float], *, rounds: int = 2000, seed: int = 7
) -> tuple[float, float]:
    """95 % interval of median(numerator) / median(denominator), resampling whole rounds (pairs stay together)."""
    rng = random.Random(seed)
    n = len(numerator)
    ratios = []
    for _ in range(rounds):
        picks = [rng.randrange(n) for _ in range(n)]
        ratios.append(statistics.median(numerator[i] for i in picks) / statistics.median(denominator[i] for i in picks))
    return quantile(ratios, 0.025), quantile(ratios, 0.975)


def judge(point: float, low: float, high: float, target: float, floor: float | None = None) -> tuple[bool, str]:
    """Pass/fail of a ratio whose target is an upper bound, and a verdict text that says when noise decides it.

    ``floor`` is a steadier lower bound of the same ratio (fixed costs measured inside each run): when it is above
    the target, the target is missed whatever the noisy wall-clock ratio says.
    """
    if floor is not None and floor > target:
        return False, "**FAIL**"
    passed = point <= target
    text = "pass" if passed else "**FAIL**"
    if low <= target < high:
        text += " (noisy)"
    return passed, text


def iqr_text(values: Sequence[float], scale: float = 1000.0, unit: str = "ms") -> str:
    return f"{quantile(values, 0.25) * scale:.0f}–{quantile(values, 0.75) * scale:.0f} {unit}"


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def claude_version() -> str:
    try:
        out = subprocess.run([CLAUDE, "--version"], capture_output=True, text=True, timeout=30, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "missing"


def bench_env(state_home: Path) -> dict[str, str]:
    """The parent environment minus anything tying a child to a host Claude Code session, with a private state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_CODE_", "CLAUDECODE", "CC_EXECUTOR_"))}
    env["CC_EXECUTOR_HOME"] = str(state_home)
    return env


@asynccontextmanager
async def fake_api_process(scenario: str, env: dict[str, str]) -> AsyncIterator[str]:
    """The fake Messages API in its own process (so it is not counted in the executor's RSS); yields its base URL."""
    from anyio.streams.buffered import BufferedByteReceiveStream

    argv = [PYTHON, "-m", "cc_executor.testing", "--scenario", scenario]
    async with await anyio.open_process(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env) as proc:
        try:
            assert proc.stdout is not None
            with anyio.fail_after(30):
                line = await BufferedByteReceiveStream(proc.stdout).receive_until(b"\n", 4096)
            base_url = line.decode().strip()
            if not base_url.startswith("http"):
                raise RuntimeError("the fake Messages API did not start")
            yield base_url
        finally:
            proc.terminate()


def rss_kib(pid: int) -> int:
    """Current resident set size of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found.extend(int(p) for p in (task / "children").read_text().split())
            except OSError:
                continue
    except OSError:
        pass
    return found


def descendants_of(pid: int) -> list[int]:
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children_of(stack.pop()):
            out.append(child)
            stack.append(child)
    return out


# A small go-between for run_measured. On Linux a child's ru_maxrss starts from the RSS high-water mark of the
# process that spawned it (exec records the old address space's peak), so wait4 straight from this process would
# report the benchmark's own peak (hundreds of MiB after the stream benchmark). The launcher is ~10 MiB.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "sys.stderr.write(f'\\n@@maxrss {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(argv: list[str], env: dict[str, str], timeout: float = 300.0) -> tuple[str, int]:
    """Run a helper to completion; return its stdout and its peak RSS in KiB as the kernel reports it (wait4).

    wait4's ru_maxrss covers the helper and the descendants it reaped, which inherit at most its own peak.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([PYTHON, "-S", "-c", _LAUNCHER, *argv], stdout=out, stderr=err, env=env)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed with {proc.returncode}: {stderr[-2000:]}")
        marks = [line for line in stderr.splitlines() if line.startswith("@@maxrss ")]
        return stdout, int(marks[-1].split()[1]) if marks else 0


def last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    data: dict[str, Any] = json.loads(lines[-1])
    return data
