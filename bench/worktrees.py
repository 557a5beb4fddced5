"""Benchmark 6: what worktree isolation costs per run, against a trivial run.

Per run, isolation adds: validating the request (rev-parse, check-ref-format, show-ref, status), ``git worktree
add`` (a checkout of the whole tree), the ``.worktreeinclude`` listing, and at the end ``git add -A``, one commit,
one log and one diff (``--raw --stat``) of base..head and ``git worktree remove``. Those steps are timed directly
through the engine (the same code the runner calls), on a clone of this repository and on a generated 10,000-file
repository, each run writing one small file so the commit path is exercised. The baseline is the median wall time of
a trivial ``cc_execute`` (one text reply from the fake API, no isolation). An end-to-end pair (``cc_execute`` with
and without ``isolation="worktree"`` on the clone, interleaved) is reported beside it.
"""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path

from common import CLAUDE, MODEL, Options, Row, Section, median, ms

from cc_executor import CCExecutorConfig, cc_execute
from cc_executor.engine.worktree import RunWorktree, plan_worktree
from cc_executor.models import RunRequest
from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import git

TARGET = 0.10
LARGE_FILES = 10_000


def clone_of_this_repository(target: Path) -> Path:
    from common import REPO

    subprocess.run(["git", "clone", "-q", "--local", str(REPO), str(target)], check=True, timeout=120)
    return target


def large_repository(target: Path, files: int = LARGE_FILES) -> Path:
    target.mkdir(parents=True)
    for i in range(files):
        folder = target / f"pkg{i // 100:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i % 100:03d}.py").write_text(f"VALUE = {i}\n\n\ndef f():\n    return VALUE * 2\n")
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "generated")
    return target


def cpu_seconds(*, own: bool = False) -> float:
    """CPU time (user + system) of reaped children, plus this process's own when ``own``."""
    total = 0.0
    for who in (resource.RUSAGE_CHILDREN, *((resource.RUSAGE_SELF,) if own else ())):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


async def one_cycle(repo: Path, root: Path) -> dict[str, float]:
    """Plan, enter and leave one worktree around a one-file change; seconds per phase (and CPU seconds)."""
    cpu = cpu_seconds(own=True)
    request = RunRequest(task="bench: write one file", cwd=repo, isolation="worktree")
    t0 = time.perf_counter()
    plan = await plan_worktree(request, root)
    t1 = time.perf_counter()
    worktree = RunWorktree(plan, request.task)
    moved, error = await worktree.enter(request, None, {}, time.monotonic() + 600)
    assert error is None, error
    t2 = time.perf_counter()
    (moved.cwd / "bench_output.txt").write_text("written by the benchmark\n")
    t3 = time.perf_counter()
    outcome = await worktree.leave()
    t4 = time.perf_counter()
    assert outcome.kept_path is None and len(outcome.commits) == 1
    spent = cpu_seconds(own=True) - cpu
    git(repo, "branch", "-q", "-D", plan.branch)
    total = (t1 - t0) + (t2 - t1) + (t4 - t3)
    return {"plan": t1 - t0, "create": t2 - t1, "finish": t4 - t3, "total": total, "cpu": spent}


async def cycles(repo: Path, root: Path, n: int) -> dict[str, float]:
    samples = [await one_cycle(repo, root) for _ in range(n)]
    return {phase: median([s[phase] for s in samples]) for phase in samples[0]}


async def run(options: Options) -> Section:
    section = Section("6. Worktree isolation: setup and teardown per run")
    n = 5 if options.quick else 10
    small = clone_of_this_repository(options.tmp / "this-repo")
    large = large_repository(options.tmp / "large")
    small_files = len(git(small, "ls-files").splitlines())
    root = options.tmp / "worktrees"

    samples: list[dict[str, float]] = []
    async with FakeAnthropic(scenarios.text("hello")) as fake:
        config = CCExecutorConfig(
            env=offline_env(fake.base_url, options.tmp / "home"), claude_path=CLAUDE, model=MODEL, track_files=False
        )
        plain_dir = options.tmp / "plain"
        plain_dir.mkdir()
        await cc_execute("warm up", config=config, cwd=plain_dir)
        await one_cycle(small, root)
        trivial: list[float] = []
        trivial_cpu: list[float] = []
        plain_small: list[float] = []
        isolated_small: list[float] = []
        # Interleaved, so the baseline and the worktree steps see the same load on this shared machine.
        for i in range(n):
            started, cpu = time.perf_counter(), cpu_seconds(own=True)
            await cc_execute("trivial", config=config, cwd=plain_dir)
            trivial.append(time.perf_counter() - started)
            trivial_cpu.append(cpu_seconds(own=True) - cpu)
            samples.append(await one_cycle(small, root))
            order = ("none", "worktree") if i % 2 == 0 else ("worktree", "none")
            for isolation in order:
                started = time.perf_counter()
                await cc_execute("trivial", config=config, cwd=small, isolation=isolation)
                (plain_small if isolation == "none" else isolated_small).append(time.perf_counter() - started)

    small_cost = {phase: median([s[phase] for s in samples]) for phase in samples[0]}
    large_cost = await cycles(large, root, max(3, n // 2))
    baseline = median(trivial)
    ratio = small_cost["total"] / baseline
    e2e = median(isolated_small) - median(plain_small)
    cpu_ratio = small_cost["cpu"] / median(trivial_cpu)
    section.rows += [
        Row(
            f"6a. worktree setup+teardown per run, this repository ({small_files} files)",
            f"{ms(small_cost['total'])} = {ratio * 100:.1f} % of a trivial run ({ms(baseline, 0)})",
            f"≤ {TARGET * 100:.0f} %",
            ratio <= TARGET,
            f"median of {n}: plan + worktree add + commit/measure/remove, one file written",
        ),
        Row(
            "6b. the same in CPU time (less sensitive to load)",
            f"{ms(small_cost['cpu'])} = {cpu_ratio * 100:.1f} % of a trivial run's {ms(median(trivial_cpu), 0)}",
            f"≤ {TARGET * 100:.0f} %",
            cpu_ratio <= TARGET,
            "user + system time of this process and every git/claude child, per run",
        ),
        Row(
            f"6c. worktree setup+teardown per run, {LARGE_FILES:,}-file repository",
            f"{ms(large_cost['total'])} = {large_cost['total'] / baseline * 100:.0f} % of a trivial run",
            "report",
            None,
            f"median of {max(3, n // 2)}, same steps",
        ),
        Row(
            "6d. cc_execute with isolation=worktree vs none (this repository)",
            f"{ms(e2e)} more per run",
            "info",
            None,
            f"median of {n} interleaved pairs, end to end",
        ),
    ]
    section.notes += [
        "| phase | this repository | 10,000 files |",
        "| --- | --- | --- |",
        *(
            f"| {phase} | {ms(small_cost[phase])} | {ms(large_cost[phase])} |"
            for phase in ("plan", "create", "finish", "total", "cpu")
        ),
        "",
        "plan: validating the request (3 git processes side by side, nothing created); create: `git worktree "
        "add` of the base commit (itself 4 git processes and the checkout) plus the `.worktreeinclude` listing; "
        "finish: `git add -A`, one commit, the branch head beside the base..head log and one diff (files and "
        "diffstat together), `git worktree remove`. cpu: user + system time of all of it. About 14 git processes "
        "per run at a few ms each, plus the checkout, which grows with the number of files (on this VM's disk, "
        "mostly system time).",
        "",
        f"Reading: the cost is git's, not ours. A trivial run here is one `claude` process ({ms(baseline, 0)} "
        f"wall, {ms(median(trivial_cpu), 0)} CPU), so even ~14 short git processes are "
        f"{cpu_ratio * 100:.0f} % of its CPU; the 10 % target would need the git work in-process (libgit2) "
        "or fewer steps than the guarantees allow (validation before anything is created, a commit whatever "
        "the outcome, a removal git itself checks). On a busy machine every process start waits for a CPU, so "
        "the wall-clock share grows with the load. A 10,000-file repository costs seconds, nearly all of it the "
        "checkout of 10,000 files by `git worktree add`.",
    ]
    return section
