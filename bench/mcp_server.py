"""Benchmark 4: the MCP server (``python -m cc_executor_mcp``).

(a) Start-up: time from spawning the server to its answer to a raw JSON-RPC ``initialize`` line (protocol
    2025-11-25) written to its stdin, against a bare ``python -c "import mcp.server.mcpserver"`` run to exit.
(b) Per-call overhead: ``execute_task`` through ``mcp.Client`` over stdio (a real server process, which spawns the
    real CLI) against a raw ``claude -p`` with the same environment, on the same fake API, interleaved.
(c) Progress latency: in memory, ``mcp.Client(create_server(...))`` with a progress callback; the run is
    tests/fake_claude.py printing one assistant line every 10 ms, so the core emits a ProgressUpdate per line.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from common import (
    CLAUDE,
    FAKE_CLAUDE,
    MODEL,
    PYTHON,
    Options,
    Row,
    Section,
    bench_env,
    bootstrap_ratio_ci,
    iqr_text,
    judge,
    median,
    ms,
    pct,
    quantile,
)

from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic

PROMPT = "Say hello."
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}
# The bare arm prints one line once the import is done, so both arms are timed from spawn to a line on stdout.
BARE = [PYTHON, "-c", "import mcp.server.mcpserver, sys; sys.stdout.write('ready\\n'); sys.stdout.flush()"]
SERVER = [PYTHON, "-m", "cc_executor_mcp"]


# --- (a) start-up ----------------------------------------------------------------------------------------------------


def time_server_initialize(env: dict[str, str]) -> float:
    """Spawn the server, write one initialize line, return the seconds until its answer line is read."""
    line = (json.dumps(INIT) + "\n").encode()
    start = time.perf_counter()
    proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(line)
        proc.stdin.flush()
        answer = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        reply = json.loads(answer)
        if reply.get("id") != 1 or "result" not in reply:
            raise RuntimeError(f"unexpected initialize answer: {answer[:300]!r}")
        return elapsed
    finally:
        proc.stdin.close()  # stdin EOF ends the server
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_bare_import(env: dict[str, str]) -> float:
    """Spawn the bare import, return the seconds until its line is read (its exit is waited for, untimed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(BARE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    try:
        if proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the bare import did not run")
        return time.perf_counter() - start
    finally:
        proc.stdout.close()
        proc.wait(timeout=15)


async def startup(options: Options, env: dict[str, str]) -> tuple[Row, list[str]]:
    rounds = 5 if options.quick else 15
    bare: list[float] = []
    server: list[float] = []
    for i in range(rounds + 1):  # round 0 is a warm-up (page cache, .pyc)
        order = (time_bare_import, time_server_initialize) if i % 2 else (time_server_initialize, time_bare_import)
        for fn in order:
            seconds = await anyio.to_thread.run_sync(fn, env)
            if i:
                (bare if fn is time_bare_import else server).append(seconds)
    b, s = median(bare), median(server)
    row = Row(
        "4a. MCP server: spawn → initialize answer vs bare `import mcp.server.mcpserver`",
        f"server {ms(s, 0)}, bare import {ms(b, 0)}: {(s - b) * 1000:+.0f} ms",
        "≤ bare + 100 ms",
        s - b <= 0.100,
        f"{rounds} interleaved pairs after 1 warm-up pair; medians; raw JSON-RPC line on stdin",
    )
    notes = [
        "**(a) Start-up.** Server: `subprocess.Popen([.venv/bin/python, -m, cc_executor_mcp])`, the initialize "
        "request (protocolVersion 2025-11-25) written to its stdin at once, timed until its answer line is read "
        "from stdout; then stdin is closed (untimed). Bare: `.venv/bin/python -c 'import mcp.server.mcpserver'` "
        "followed by writing one line, timed from spawn until that line is read (its exit, which pays interpreter "
        f"teardown, is not timed either). Interquartile ranges: server "
        f"{iqr_text(server)}, bare {iqr_text(bare)}. Before its answer the server imports its own schemas (not "
        "the core, nor the modules only tool calls use) and builds the tools' models and JSON schemas "
        "(server/startup.py), so tools/list is answered at once after it.",
    ]
    return row, notes


# --- (b) per-call overhead -------------------------------------------------------------------------------------------


async def per_call(options: Options, env: dict[str, str], backend: str = "local") -> tuple[Row, list[str]]:
    """``backend``: local (the MCP layer's own cost: row 4b) or durable (the server's default: row 4d)."""
    from mcp import Client, StdioServerParameters

    rounds = 6 if options.quick else 30
    cwd = options.tmp / f"work-{backend}"
    cwd.mkdir()
    (cwd / "README.md").write_text("# tiny project\n")
    raw_times: list[float] = []
    tool_times: list[float] = []
    run_durations: list[float] = []  # the core's own duration_s of each tool call's run
    async with FakeAnthropic(scenarios.text()) as fake:
        cli_env = offline_env(fake.base_url, options.tmp / "home")
        # The server's CLIs inherit the server's environment: give both arms the very same one.
        server_env = {**env, **cli_env, "CC_EXECUTOR_CLAUDE": CLAUDE, "CC_EXECUTOR_MODEL": MODEL}
        server_env["CC_EXECUTOR_BACKEND"] = backend
        raw_argv = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose"]
        raw_argv += ["--model", MODEL, "--permission-mode", "acceptEdits"]

        async def raw() -> None:
            done = await anyio.run_process(raw_argv, input=PROMPT.encode(), env=server_env, cwd=cwd, check=False)
            if done.returncode != 0 or b'"subtype":"success"' not in done.stdout:
                raise RuntimeError(f"raw claude -p failed: {done.stderr.decode(errors='replace')[-500:]}")

        params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=server_env)
        last_duration = [0.0]
        async with Client(params) as client:

            async def tool() -> None:
                result = await client.call_tool("execute_task", {"task": PROMPT, "cwd": str(cwd)})
                content = result.structured_content or {}
                if result.is_error or content.get("status") != "success":
                    raise RuntimeError(f"execute_task failed: {result}")
                last_duration[0] = float(content.get("duration_s") or 0.0)

            arms: dict[str, tuple[Callable[[], Awaitable[None]], list[float]]] = {
                "raw": (raw, raw_times),
                "tool": (tool, tool_times),
            }
            for i in range(rounds + 2):  # two warm-up rounds: the first call imports the core, opens SQLite
                order = ("raw", "tool") if i % 2 == 0 else ("tool", "raw")
                for arm in order:
                    fn, sink = arms[arm]
                    start = time.perf_counter()
                    await fn()
                    if i >= 2:
                        sink.append(time.perf_counter() - start)
                        if arm == "tool":
                            run_durations.append(last_duration[0])
    r, t = median(raw_times), median(tool_times)
    ratio = t / r
    paired = [a / b for a, b in zip(tool_times, raw_times, strict=True)]
    low, high = bootstrap_ratio_ci(tool_times, raw_times)
    core = median(run_durations)
    outside = median([t - d for t, d in zip(tool_times, run_durations, strict=True)])
    if backend == "durable":
        return _durable_row(rounds, raw_times, tool_times, outside)
    passed, verdict = judge(ratio, low, high, 1.05)
    row = Row(
        "4b. MCP `execute_task` (stdio client) vs raw `claude -p`",
        f"raw {ms(r, 0)}, execute_task {ms(t, 0)}: ratio {ratio:.3f} ({pct(ratio)}, {ms(t - r)}; "
        f"95 % CI {low:.3f}–{high:.3f}); outside the core run {ms(outside)}",
        "overhead ≤ 5 %",
        passed,
        f"{rounds} interleaved pairs after 2 warm-up rounds on one client session; medians, bootstrap CI",
        verdict,
    )
    notes = [
        "**(b) Per-call overhead.** One `mcp.Client(StdioServerParameters(.venv/bin/python -m cc_executor_mcp))` "
        "session on the local backend (`CC_EXECUTOR_BACKEND=local`: the MCP layer's own cost; (d) is the "
        "server's default, durable) (protocol negotiated by the client), `call_tool('execute_task', {task, cwd})` "
        "timed from call to "
        "result, alternating with a raw `claude -p` (same argv flags as the executor, same environment as the "
        "server's CLIs, same cwd), both on one in-process fake API. The tool's time includes the JSON-RPC round "
        "trip over pipes, request validation, the run in the server's backend (one long-lived SQLite store) and "
        f"the result's formatting. Interquartile ranges: raw {iqr_text(raw_times)}, execute_task "
        f"{iqr_text(tool_times)}; median of per-pair ratios {median(paired):.3f} (p25–p75 "
        f"{quantile(paired, 0.25):.3f}–{quantile(paired, 0.75):.3f}).",
        "",
        f"Split of the tool call (medians): the core's own run time as it reports it (`duration_s`: cwd snapshot, "
        f"spawn, CLI, snapshot + diff) {ms(core)}, {(core - r) * 1000:+.1f} ms against the raw CLI run; everything "
        f"outside it (JSON-RPC both ways, argument and request validation, the run's SQLite row, waiting on the "
        f"backend, the final SQLite writes, result formatting) {ms(outside)}.",
    ]
    return row, notes


def _durable_row(rounds: int, raw_times: list[float], tool_times: list[float], outside: float) -> tuple[Row, list[str]]:
    r, t = median(raw_times), median(tool_times)
    low, high = bootstrap_ratio_ci(tool_times, raw_times)
    row = Row(
        "4d. the same on the durable backend (the server's default: a supervisor process per run)",
        f"raw {ms(r, 0)}, execute_task {ms(t, 0)}: +{ms(t - r, 0)} per run (ratio {t / r:.2f}; 95 % CI "
        f"{low:.2f}–{high:.2f})",
        "(info: section 8)",
        None,
        f"{rounds} interleaved pairs after 2 warm-up rounds on one client session; medians, bootstrap CI",
    )
    notes = [
        "**(d) Durable backend.** The same pairs with `CC_EXECUTOR_BACKEND=durable`, the server's default: each "
        "run is recorded, handed to its own supervisor process (a Python start, overlapped with the recording) "
        f"and followed through the registry, so it outlives the server. Outside the core run {ms(outside, 0)}; "
        f"interquartile ranges: raw {iqr_text(raw_times)}, execute_task {iqr_text(tool_times)}. Against real "
        "runs (seconds to hours) this fixed cost is small: section 8."
    ]
    return row, notes


# --- (c) progress latency --------------------------------------------------------------------------------------------


async def progress_latency(options: Options) -> tuple[Row, list[str]]:
    from cc_executor_mcp.app import create_server
    from cc_executor_mcp.settings import ServerSettings
    from mcp import Client

    from cc_executor.backends import local as core_backend
    from cc_executor.models import ProgressUpdate

    calls = 1 if options.quick else 3
    lines = 100 if options.quick else 150
    cwd = options.tmp / "latency-work"
    cwd.mkdir()
    settings = ServerSettings(
        claude_path=FAKE_CLAUDE,
        cli_env={"FAKE_CLAUDE_MODE": "slow_lines", "FAKE_CLAUDE_LINES": str(lines), "FAKE_CLAUDE_INTERVAL": "0.01"},
        home=options.tmp / "latency-state",
        return_after_s=120,
        kill_grace_s=0.5,
        backend="local",  # the in-process path measured here; durable runs relay progress through the registry
    )
    emitted: dict[str, deque[float]] = defaultdict(deque)
    latencies: list[float] = []
    counts = {"emitted": 0, "received": 0, "unmatched": 0}

    original = core_backend._LiveRun.publish

    async def publish(self: Any, update: ProgressUpdate) -> None:
        counts["emitted"] += 1
        emitted[update.message].append(time.perf_counter())
        await original(self, update)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        now = time.perf_counter()
        counts["received"] += 1
        queue = emitted.get(message or "")
        if queue:
            latencies.append(now - queue.popleft())
        else:
            counts["unmatched"] += 1  # a heartbeat from the server's own ticker, not a core update

    core_backend._LiveRun.publish = publish  # type: ignore[method-assign]
    try:
        async with Client(create_server(settings)) as client:
            for _ in range(calls):
                result = await client.call_tool(
                    "execute_task", {"task": "progress", "cwd": str(cwd)}, progress_callback=on_progress
                )
                if result.is_error or (result.structured_content or {}).get("status") != "success":
                    raise RuntimeError(f"execute_task failed: {result}")
    finally:
        core_backend._LiveRun.publish = original  # type: ignore[method-assign]

    p50, p90, p99 = (quantile(latencies, q) for q in (0.5, 0.9, 0.99))
    row = Row(
        "4c. progress: core ProgressUpdate → client progress callback",
        f"p99 {ms(p99, 2)} (p50 {ms(p50, 2)}, p90 {ms(p90, 2)}, max {ms(max(latencies), 2)}; n = {len(latencies)})",
        "p99 ≤ 20 ms",
        p99 <= 0.020,
        f"in-memory mcp.Client, {calls} execute_task call(s) of {lines} stream lines 10 ms apart",
    )
    notes = [
        "**(c) Progress latency.** Emit time: a wrapper around `cc_executor.backends.local._LiveRun.publish` (the "
        "`on_progress` callback the core's runner awaits for every ProgressUpdate) takes `time.perf_counter()` "
        "on entry and files it under the update's message. Arrival time: `perf_counter()` on entry to the "
        "client's `progress_callback`, matched to the oldest pending emit with the same message. Both ends run "
        "in this one process (in-memory `mcp.Client(create_server(settings))`), so one clock serves both. In "
        "between: the backend's subscriber stream, the server's `forward_run` task, `ProgressSink.send`, "
        "`ctx.report_progress`, the SDK's dispatcher and the client session. The run is tests/fake_claude.py in "
        f"`slow_lines` mode ({lines} assistant lines, 10 ms apart), so nearly every line is one update. "
        f"{counts['emitted']} updates emitted, {counts['received']} notifications received, "
        f"{len(latencies)} matched ({counts['unmatched']} unmatched: server heartbeats or the final update after "
        "the call returned).",
    ]
    return row, notes


async def run(options: Options) -> Section:
    section = Section("4. MCP server")
    env = bench_env(options.tmp / "state")
    parts: list[Callable[[], Awaitable[tuple[Row, list[str]]]]] = [
        lambda: startup(options, env),
        lambda: per_call(options, env),
        lambda: progress_latency(options),
        lambda: per_call(options, env, "durable"),
    ]
    for part in parts:
        row, notes = await part()
        section.rows.append(row)
        section.notes += [*notes, ""]
    return section
