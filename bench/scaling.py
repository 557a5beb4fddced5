"""Benchmark 5: a parallel task list of 1, 2, 4, 8 and 16 tasks: wall time, executor RSS and the CLIs' RSS.

Each list runs in a fresh helper process (bench/scaling_child.py) with ``cc_execute_list(..., sequential=False,
max_parallel=N)`` and a concurrency limit of N, so all N CLIs start together. The fake Messages API runs in a
separate process, so the helper's RSS is the executor's alone.
"""

from __future__ import annotations

import statistics

from common import PYTHON, REPO, Options, Row, Section, bench_env, fake_api_process, last_json, run_measured

HELPER = str(REPO / "bench" / "scaling_child.py")
SIZES = (1, 2, 4, 8, 16)


async def run(options: Options) -> Section:
    section = Section("5. Parallel task lists: scaling")
    rounds = 1 if options.quick else 2
    cwd = options.tmp / "work"
    cwd.mkdir()
    (cwd / "README.md").write_text("# tiny project\n")
    env = bench_env(options.tmp / "state")
    reports: dict[int, list[dict[str, object]]] = {n: [] for n in SIZES}
    async with fake_api_process("text", env) as base_url:
        # warm-up: the CLI's first run in a fresh HOME writes its config; not counted
        run_measured([PYTHON, HELPER, "1", base_url, str(cwd), str(options.tmp / "home")], env)
        for _ in range(rounds):
            for n in SIZES:
                stdout, _ = run_measured([PYTHON, HELPER, str(n), base_url, str(cwd), str(options.tmp / "home")], env)
                reports[n].append(last_json(stdout))

    def med(n: int, key: str) -> float:
        return statistics.median(float(str(r[key])) for r in reports[n])

    one = med(1, "wall_s")
    lines = [
        "| tasks | wall (median) | wall / 1-task wall | executor RSS: before → peak | CLIs' RSS, summed peak | "
        "largest CLI | CLIs seen at once | CPU: child processes / executor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in SIZES:
        lines.append(
            f"| {n} | {med(n, 'wall_s'):.2f} s | {med(n, 'wall_s') / one:.1f}× | "
            f"{med(n, 'before_kib') / 1024:.0f} → {med(n, 'self_hwm_kib') / 1024:.0f} MiB | "
            f"{med(n, 'clis_peak_sum_kib') / 1024:.0f} MiB | {med(n, 'cli_peak_kib') / 1024:.0f} MiB | "
            f"{med(n, 'max_live_clis'):.0f} | {med(n, 'children_cpu_s'):.1f} s / {med(n, 'self_cpu_s'):.2f} s |"
        )
    n_max = SIZES[-1]
    growth = med(n_max, "self_hwm_kib") - med(n_max, "before_kib")
    clis = med(n_max, "clis_peak_sum_kib")
    cpu_bound = med(n_max, "wall_s") / one
    per_cli_cpu = med(n_max, "children_cpu_s") / n_max
    one_cpu = med(1, "children_cpu_s")
    section.rows.append(
        Row(
            f"5. parallel list of {n_max} tasks vs 1",
            f"wall {med(n_max, 'wall_s'):.2f} s vs {one:.2f} s ({cpu_bound:.1f}×); executor +{growth / 1024:.0f} MiB "
            f"beside {clis / 1024:.0f} MiB of CLIs",
            "(info)",
            None,
            f"fresh process per list, RSS sampled every 20 ms from /proc; median of {rounds}",
        )
    )
    lines += [
        "",
        "Wall time is from the list call to its result inside the helper (no interpreter start-up). Executor RSS is "
        "the helper's VmRSS before the list and its VmHWM after; the CLIs' figure is the largest sum of their VmRSS "
        "seen in one sample (git probes excluded), the largest CLI its own VmHWM.",
        "",
        f"Reading: the CLIs need {per_cli_cpu:.2f} CPU-seconds each at N={n_max} ({one_cpu:.2f} alone), and 2 CPUs "
        f"deliver at most 2 CPU-seconds per second, so {n_max} at once cannot finish much before "
        f"{n_max * per_cli_cpu / 2:.1f} s: the wall time tracks the CLIs' CPU, not the executor, whose own CPU "
        f"for the whole list is {med(n_max, 'self_cpu_s'):.2f} s. Its memory grows by "
        f"{growth / 1024:.1f} MiB for {n_max} concurrent runs (~{growth / n_max:.0f} KiB each) while each CLI "
        f"takes ~{med(n_max, 'cli_peak_kib') / 1024:.0f} MiB. Hence the default concurrency limit of one run "
        "per CPU.",
    ]
    section.notes = lines
    return section
