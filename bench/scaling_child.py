"""Helper process for the scaling benchmark: one parallel task list of N tasks through the real CLI.

    python bench/scaling_child.py N BASE_URL CWD HOME

Runs ``cc_execute_list([...] * N, sequential=False, max_parallel=N)`` with a concurrency limit of N, against the
fake Messages API at BASE_URL, while a thread samples every 20 ms this process's RSS and the RSS of every process
below it (the CLIs). Prints one JSON line. CC_EXECUTOR_HOME must point at a scratch state dir.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CLAUDE, MODEL, descendants_of, rss_kib

from cc_executor import CCExecutorConfig
from cc_executor.engine.slots import RunSlots
from cc_executor.task_lists import cc_execute_list
from cc_executor.testing.env import offline_env


def vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Sampler(threading.Thread):
    """Peak RSS of this process, peak summed RSS of its descendants, and the largest single descendant."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop = threading.Event()
        self.self_peak = 0
        self.children_peak_sum = 0
        self.child_peak = 0
        self.max_children = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.self_peak = max(self.self_peak, rss_kib(self.pid))
            kids = [k for k in descendants_of(self.pid) if "git" not in _comm(k)]
            self.children_peak_sum = max(self.children_peak_sum, sum(rss_kib(k) for k in kids))
            self.child_peak = max([self.child_peak, *(vm_hwm_kib(k) for k in kids)])
            self.max_children = max(self.max_children, len(kids))
            self.stop.wait(self.interval)


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


async def main(n: int, base_url: str, cwd: str, home: str) -> dict[str, object]:
    config = CCExecutorConfig(env=offline_env(base_url, Path(home)), claude_path=CLAUDE, model=MODEL)
    tasks = [f"Say hello, task {i}." for i in range(n)]
    sampler = Sampler(os.getpid())
    before = rss_kib(os.getpid())
    sampler.start()
    cpu0 = _cpu()
    start = time.perf_counter()
    result = await cc_execute_list(tasks, sequential=False, max_parallel=n, config=config, cwd=cwd, slots=RunSlots(n))
    wall = time.perf_counter() - start
    cpu1 = _cpu()
    sampler.stop.set()
    sampler.join()
    return {
        "ok": result.succeeded == n,
        "n": n,
        "wall_s": wall,
        "run_durations": [e.result.duration_s for e in result.entries if e.result is not None],
        "before_kib": before,
        "self_peak_kib": sampler.self_peak,
        "self_hwm_kib": vm_hwm_kib(os.getpid()),
        "clis_peak_sum_kib": sampler.children_peak_sum,
        "cli_peak_kib": sampler.child_peak,
        "max_live_clis": sampler.max_children,
        "self_cpu_s": cpu1[0] - cpu0[0],
        "children_cpu_s": cpu1[1] - cpu0[1],
    }


if __name__ == "__main__":
    report = anyio.run(main, int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], backend="asyncio")
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)
