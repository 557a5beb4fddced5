"""Benchmark 8: what a durable run (its own supervisor process, ``DurableBackend``) costs beside an attached one.

* Memory: the supervisor's unique and proportional set size (USS = private pages, what one more run adds; PSS)
  while its claude runs a tool, next to that claude's RSS. For the rejected design (one supervisor per state dir
  running every run in-process), a helper process runs 1 and then 3 runs under ``LocalBackend``: its USS with one
  run is the daemon's fixed cost, the growth per extra run its marginal cost.
* Start: submit → the run's "claude started" event, durable (a fresh supervisor) vs in-process (LocalBackend).
* Attach latency: a second front end attaches to a live run (``events(after=last)``) and follows it; for every
  event, the time from the supervisor writing it (right after reading the CLI's stream line) to the follower
  yielding it.
* Wall: ``cc_execute`` awaited in-process vs ``cc_execute(detach=True)`` + ``handle.wait()``, interleaved, on a
  multi-step scenario of ~22 s (the fixed cost is also given in ms: the ratio shrinks with run length).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import anyio
from common import CLAUDE, MODEL, PYTHON, REPO, Options, Row, Section, median, quantile

from cc_executor import CCExecutorConfig, cc_execute
from cc_executor.api import build_request
from cc_executor.backends.durable import DurableBackend
from cc_executor.backends.local import LocalBackend
from cc_executor.models import ExecutionResult
from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic

HELPER = str(REPO / "bench" / "durable_child.py")
MEMORY_TARGET_MIB = 30.0
ATTACH_TARGET_S = 0.250
WALL_TARGET = 1.03


def smaps(pid: int) -> dict[str, int]:
    """Rss, Pss and USS (Private_Clean + Private_Dirty) of ``pid`` in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            values[key] = int(rest.split()[0])
    values["Uss"] = values.pop("Private_Clean", 0) + values.pop("Private_Dirty", 0)
    return values


async def until_tool(backend: LocalBackend, run_id: str) -> None:
    with anyio.fail_after(60):
        while "Bash" not in ((await backend.status(run_id)).last_progress or ""):  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def started_after(backend: LocalBackend, run_id: str, since: float) -> float:
    async for event in backend.events(run_id):
        if event.progress is not None and event.progress.message.startswith("claude started"):
            return time.monotonic() - since
    raise RuntimeError("the run ended before claude started")


async def memory_and_start(config: CCExecutorConfig, work: Path, home: Path) -> tuple[list[Row], list[str]]:
    sup: list[dict[str, int]] = []
    claude: list[dict[str, int]] = []
    starts: list[float] = []
    async with DurableBackend(home) as backend:
        for _ in range(2):
            since = time.monotonic()
            run_id = await backend.submit(build_request("job", config=config, cwd=work))
            starts.append(await started_after(backend, run_id, since))
            await until_tool(backend, run_id)
            record = await backend.status(run_id)
            assert record.owner_pid is not None and record.pid is not None
            sup.append(smaps(record.owner_pid))
            claude.append(smaps(record.pid))
            await backend.cancel(run_id, "benchmark done")
    local_starts: list[float] = []
    async with LocalBackend(store_path=home / "runs.db") as local:
        for _ in range(2):
            since = time.monotonic()
            run_id = await local.submit(build_request("job", config=config, cwd=work))
            local_starts.append(await started_after(local, run_id, since))
            await local.cancel(run_id, "benchmark done")
    uss = statistics.median(s["Uss"] for s in sup) / 1024
    pss = statistics.median(s["Pss"] for s in sup) / 1024
    rss = statistics.median(s["Rss"] for s in sup) / 1024
    claude_rss = statistics.median(c["Rss"] for c in claude) / 1024
    daemon = await shared_daemon_cost(config, work, home)
    rows = [
        Row(
            "8a. extra memory per live durable run (its supervisor) beside its claude",
            f"USS {uss:.1f} MiB (PSS {pss:.1f}, RSS {rss:.1f}) beside claude's RSS {claude_rss:.0f} MiB",
            f"≤ {MEMORY_TARGET_MIB:.0f} MB",
            uss * 1.048576 <= MEMORY_TARGET_MIB,
            "smaps_rollup of 2 supervisors while their claude runs a Bash tool; USS = private pages = what one "
            "more run adds",
        ),
        Row(
            "8b. rejected design: one supervisor per state dir (LocalBackend in a helper process)",
            f"fixed USS {daemon[0]:.1f} MiB, +{daemon[1]:.1f} MiB per extra live run",
            "(info)",
            None,
            "helper process with 1 then 3 live in-process runs; its USS",
        ),
        Row(
            "8c. submit → claude started: durable (new supervisor) vs in-process",
            f"durable {median(starts) * 1000:.0f} ms, in-process {median(local_starts) * 1000:.0f} ms",
            "(info)",
            None,
            "median of 2 each; the supervisor's Python start overlaps the front end's recording of the run",
        ),
    ]
    notes = [
        f"Supervisor per run: USS {uss:.1f} MiB, PSS {pss:.1f} MiB, RSS {rss:.1f} MiB (the rest of its RSS is the "
        f"interpreter and libraries, shared with every other supervisor); its claude: RSS {claude_rss:.0f} MiB. "
        f"One supervisor per state dir would cost {daemon[0]:.1f} MiB once plus {daemon[1]:.1f} MiB per run, but "
        "it is a single point of failure (its death takes every run), needs an IPC channel, an on-demand start "
        "that races, an idle exit that races with the next submit, and a version handshake; the per-run "
        "supervisor needs none of that, and its cost stays a small fraction of the claude beside it.",
    ]
    return rows, notes


async def shared_daemon_cost(config: CCExecutorConfig, work: Path, home: Path) -> tuple[float, float]:
    """(USS MiB with one live run, USS MiB per extra live run) of a process running runs in-process."""
    payload = json.dumps({"env": config.env, "claude": CLAUDE, "model": MODEL, "cwd": str(work), "home": str(home)})
    result = await anyio.run_process([PYTHON, HELPER, payload], check=True)
    report = json.loads(result.stdout.decode().strip().splitlines()[-1])
    one, three = report["uss_kib"]
    return one / 1024, (three - one) / 2 / 1024


async def attach_latency(config: CCExecutorConfig, work: Path, home: Path) -> tuple[list[Row], list[str]]:
    seen: dict[int, float] = {}
    async with DurableBackend(home) as submitter:
        run_id = await submitter.submit(build_request("job", config=config, cwd=work))
        await until_tool(submitter, run_id)
    async with DurableBackend(home) as follower:  # a front end that attaches later
        with sqlite3.connect(home / "runs.db") as db:  # where the run is now: attach from there
            latest = int(db.execute("SELECT MAX(seq) FROM run_events WHERE run_id = ?", (run_id,)).fetchone()[0])
        async for event in follower.events(run_id, after=latest):
            seen[event.seq] = time.time()
    with sqlite3.connect(home / "runs.db") as db:
        written = dict(db.execute("SELECT seq, created_at FROM run_events WHERE run_id = ?", (run_id,)).fetchall())
    lags = [seen[seq] - datetime.fromisoformat(written[seq]).timestamp() for seq in seen if seq in written]
    p50, p99 = quantile(lags, 0.5), quantile(lags, 0.99)
    row = Row(
        "8d. event written by the supervisor → reattached front end sees it",
        f"p99 {p99 * 1000:.0f} ms (p50 {p50 * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms; n = {len(lags)})",
        f"p99 ≤ {ATTACH_TARGET_S * 1000:.0f} ms",
        p99 <= ATTACH_TARGET_S,
        f"a second DurableBackend attaches after the first tool call and follows to the end; events polled every "
        f"{1000 * 0.1:.0f} ms",
    )
    return [row], []


async def wall_ratio(config: CCExecutorConfig, work: Path, rounds: int) -> tuple[list[Row], list[str]]:
    """Wall time per run, and the part spent outside the core's own run (``duration_s``): the steadier figure."""
    walls: dict[str, list[float]] = {"attached": [], "durable": []}
    outside: dict[str, list[float]] = {"attached": [], "durable": []}
    for i in range(rounds):
        for arm in ("attached", "durable") if i % 2 == 0 else ("durable", "attached"):
            started = time.monotonic()
            if arm == "attached":
                result: ExecutionResult | None = await cc_execute("job", config=config, cwd=work, check=False)
            else:
                handle = await cc_execute("job", config=config, cwd=work, detach=True)
                result = await handle.wait()
            wall = time.monotonic() - started
            assert result is not None and result.ok and result.duration_s is not None, result
            walls[arm].append(wall)
            outside[arm].append(wall - result.duration_s)
    attached, durable = median(walls["attached"]), median(walls["durable"])
    extra = median(outside["durable"]) - median(outside["attached"])
    floor = (attached + extra) / attached
    ratio = durable / attached
    row = Row(
        f"8e. per-run wall time, durable vs attached ({attached:.0f} s multi-step run)",
        f"attached {attached:.2f} s, durable {durable:.2f} s: ratio {ratio:.3f}; fixed cost outside the run "
        f"+{extra * 1000:.0f} ms = {floor:.3f}×",
        f"≤ {WALL_TARGET}×",
        max(ratio, floor) <= WALL_TARGET,
        f"{rounds} interleaved rounds, medians; cc_execute vs cc_execute(detach=True) + handle.wait(); the fixed "
        "cost is wall minus the run's own duration_s, durable minus attached (steadier than the wall ratio)",
    )
    notes = [
        f"The durable fixed cost, +{extra * 1000:.0f} ms per run, is the supervisor's Python start (its imports "
        "overlap the front end recording the run) plus up to one 100 ms poll of the waiter: "
        f"{(60 + extra) / 60:.3f}× on a one-minute run, {(600 + extra) / 600:.4f}× on a ten-minute one.",
    ]
    return [row], notes


async def run(options: Options) -> Section:
    section = Section("8. Durable runs (a supervisor per run)")
    work = options.tmp / "work"
    work.mkdir()
    home = options.tmp / "state"
    async with FakeAnthropic() as fake:
        base = CCExecutorConfig(
            env=offline_env(fake.base_url, options.tmp / "home"),
            claude_path=CLAUDE,
            model=MODEL,
            allowed_tools=["Bash"],
            kill_grace_s=1.0,
        )
        fake.scenario = scenarios.slow(steps=30, seconds=1)
        rows, notes = await memory_and_start(base, work, home)
        section.rows += rows
        section.notes += notes
        fake.scenario = scenarios.slow(steps=10, seconds=0.3)
        rows, notes = await attach_latency(base, work, home)
        section.rows += rows
        fake.scenario = scenarios.slow(steps=10, seconds=2)
        rows, notes = await wall_ratio(base, work, rounds=1 if options.quick else 2)
        section.rows += rows
        section.notes += ["", *notes]
    return section


if __name__ == "__main__":
    sys.exit("run through bench/run.py --only durable")
