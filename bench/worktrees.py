"""Benchmark 7: what worktree isolation costs per run, against a trivial run.

Per run, isolation adds: validating the request (the repository, the base commit, the branch, uncommitted changes),
creating the branch and the worktree (the checkout of the whole tree), the ``.worktreeinclude`` check, and at the
end adding everything and one commit, then the base..head commits and diff beside the directory's removal. With
pygit2 installed (the ``[worktrees]`` extra) a plain repository does all of it in-process through libgit2; the git
CLI path (13 git processes) is measured beside it, interleaved: every repository libgit2 would check out
differently (a filter driver, a post-checkout hook, submodules) takes it. Those steps are timed directly through
the engine (the same code the runner calls), each run writing one small file so the commit path is exercised, and
lasting ``RUN_S`` (not timed) as a real run does:

* on a repacked clone of this repository (the usual state of a user's repository) in the default worktree root
  (``<state dir>/worktrees``): the target row;
* the same with the worktree root on tmpfs (``/dev/shm``): the cost without this machine's slow disk;
* on the clone as ``git clone --local`` leaves it (every object loose: each blob read is its own open);
* on a generated, repacked 10,000-file repository.

The filesystem floor is creating (and deleting) as many empty files and directories as the checkout writes, in the
default root's filesystem: no git step removes it. The baseline is the median wall time of a trivial ``cc_execute``
(one text reply from the fake API, no isolation). An end-to-end pair (``cc_execute`` with and without
``isolation="worktree"`` on the clone, interleaved) is reported beside it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
from common import CLAUDE, MODEL, Options, Row, Section, median, ms

from cc_executor import CCExecutorConfig, cc_execute
from cc_executor.engine.worktree import RunWorktree, plan_worktree
from cc_executor.engine.worktree_libgit2 import ENGINE_SETTING, available
from cc_executor.models import RunRequest
from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import git

TARGET = 0.10
LARGE_FILES = 10_000
TMPFS = Path("/dev/shm")


def clone_of_this_repository(target: Path, *, repack: bool) -> Path:
    from common import REPO

    subprocess.run(["git", "clone", "-q", "--local", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120)
    if repack:
        git(target, "repack", "-a", "-d", "-q")
        git(target, "prune-packed")
    return target


def loose_objects(repo: Path) -> int:
    folder = repo / ".git" / "objects"
    return sum(1 for entry in folder.glob("??/*") if entry.is_file())


def large_repository(target: Path, files: int = LARGE_FILES) -> Path:
    target.mkdir(parents=True)
    for i in range(files):
        folder = target / f"pkg{i // 100:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i % 100:03d}.py").write_text(f"VALUE = {i}\n\n\ndef f():\n    return VALUE * 2\n")
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "generated")
    git(target, "repack", "-a", "-d", "-q")
    git(target, "prune-packed")
    return target


def filesystem_of(path: Path) -> str:
    """``<type> (<device>)`` of the mount that holds ``path``, from /proc/mounts."""
    best, found = "", "unknown filesystem"
    resolved = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in mounts:
        device, point, kind = line.split()[:3]
        if (resolved == point or resolved.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, found = point, f"{kind} ({device})"
    return found


FREED_INODE_WINDOW_S = 35.0
"""On an ext4 without a journal, creating a file skips every inode freed in the last 30 s (35 while its inode
block is dirty: ``recently_deleted`` in the kernel's fs/ext4/ialloc.c), one buffer lookup each: a disk that has
just deleted thousands of files creates new ones several times slower. A journaled ext4 (every installer's
default) does not check."""


def has_journal(path: Path) -> bool:
    """False for an ext4 mounted without a journal (``/sys/fs/ext4/<device>/journal_task`` reads ``<none>``);
    True for anything else."""
    kind, _, device = filesystem_of(path).partition(" (")
    if kind != "ext4":
        return True
    task = Path("/sys/fs/ext4") / Path(device.rstrip(")")).name / "journal_task"
    try:
        return task.read_text().strip() != "<none>"
    except OSError:
        return True


def described(path: Path) -> str:
    """``ext4 (/dev/vda), no journal``: the filesystem that holds ``path``."""
    return filesystem_of(path) + ("" if has_journal(path) else ", no journal")


def mount_journaled_ext4(workspace: Path) -> Path | str:
    """A journaled ext4 made for the purpose (an image in the workspace, loop-mounted): its mount point, or why
    there is none (it needs root, mkfs.ext4 and a loop device)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None or shutil.which("mount") is None:
        return "not measured: mounting a loop ext4 needs root and mkfs.ext4"
    image, mount = workspace / "journaled.ext4", _made(workspace / "journaled")
    with open(image, "wb") as sparse:
        sparse.truncate(1 << 30)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True, timeout=120)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"not measured: could not mount a loop ext4 ({exc})"
    return mount


def unmount(mount: Path) -> None:
    """Unmount, detaching lazily if something still holds a file there (the workspace is deleted next)."""
    if subprocess.run(["umount", str(mount)], check=False, capture_output=True, timeout=60).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mount)], check=False, capture_output=True, timeout=60)


async def on_journaled_ext4(workspace: Path, n: int) -> dict[str, float] | str:
    """7a's cycles on a journaled ext4: the same disk, kernel and code, only the filesystem's journal differs."""
    mount = mount_journaled_ext4(workspace)
    if isinstance(mount, str):
        return mount
    try:
        repo = clone_of_this_repository(mount / "this-repo", repack=True)
        root = _made(mount / "worktrees")
        os.sync()
        await one_cycle(repo, root)
        return await cycles(repo, root, n)
    finally:
        unmount(mount)


def empty_files_floor(paths: list[str], root: Path) -> tuple[float, float]:
    """Seconds to create ``paths`` as empty files (with their directories) under a fresh directory in ``root``'s
    filesystem, and to delete them again: what the checkout and the removal cost before git does anything."""
    root.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="floor-", dir=root))
    started = time.perf_counter()
    for relative in paths:
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb"):
            pass
    created = time.perf_counter()
    shutil.rmtree(target)
    return created - started, time.perf_counter() - created


def cpu_seconds(*, own: bool = False) -> float:
    """CPU time (user + system) of reaped children, plus this process's own when ``own``."""
    total = 0.0
    for who in (resource.RUSAGE_CHILDREN, *((resource.RUSAGE_SELF,) if own else ())):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


RUN_S = 1.05
"""The run itself, between enter and leave (not timed): long enough that the checkout's files are older than the
second the index is next written in. git then trusts their cached stat data; within the same second it re-reads
every file in each command (its racily-clean check), which a run of any real length never sees."""


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
    await anyio.sleep(RUN_S)  # the run
    (moved.cwd / "bench_output.txt").write_text("written by the benchmark\n")
    t3 = time.perf_counter()
    outcome = await worktree.leave()
    t4 = time.perf_counter()
    assert outcome.kept_path is None and len(outcome.commits) == 1
    spent = cpu_seconds(own=True) - cpu
    git(repo, "branch", "-q", "-D", plan.branch)
    total = (t1 - t0) + (t2 - t1) + (t4 - t3)
    return {"plan": t1 - t0, "create": t2 - t1, "finish": t4 - t3, "total": total, "cpu": spent}


@contextlib.contextmanager
def git_cli_only() -> Iterator[None]:
    """Every worktree step through the git CLI (CC_EXECUTOR_WORKTREE_GIT=cli), as a repository with a filter
    driver, a post-checkout hook or submodules gets it, and as every repository does without the extra."""
    before = os.environ.get(ENGINE_SETTING)
    os.environ[ENGINE_SETTING] = "cli"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENGINE_SETTING, None)
        else:
            os.environ[ENGINE_SETTING] = before


IMPORT_PROBE = (
    "import time, cc_executor.engine.runner, cc_executor.engine.supervisor\n"
    "started = time.perf_counter()\n"
    "import pygit2\n"
    "print(time.perf_counter() - started)\n"
)


def pygit2_import_s(n: int) -> float:
    """Seconds to import pygit2 in a fresh process that already imported the engine: what the first isolated run
    of a process (every durable run's supervisor) adds to the in-process path."""
    samples = []
    for _ in range(n):
        done = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True)
        samples.append(float(done.stdout))
    return median(samples)


async def cycles(repo: Path, root: Path, n: int) -> dict[str, float]:
    samples = [await one_cycle(repo, root) for _ in range(n)]
    return {phase: median([s[phase] for s in samples]) for phase in samples[0]}


def _median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    return {phase: median([s[phase] for s in samples]) for phase in samples[0]}


async def run(options: Options) -> Section:
    section = Section("7. Worktree isolation: setup and teardown per run")
    # Repositories and worktrees go where a user's default <state dir>/worktrees is (the bench's own state dir is a
    # temporary one under /tmp). On this VM the cost of creating a file varies tenfold and more between directories
    # and moments on the same disk, so the floor is measured beside the worktrees, at the same time (and under /tmp).
    workspace = Path(tempfile.mkdtemp(prefix="cc-bench-worktrees-", dir=_made(user_state_base())))
    on_tmpfs = filesystem_of(TMPFS).startswith("tmpfs")
    fast_root = Path(tempfile.mkdtemp(prefix="cc-bench-worktrees-", dir=TMPFS)) if on_tmpfs else None
    try:
        return await _measure(options, section, workspace, fast_root)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
        if fast_root is not None:
            shutil.rmtree(fast_root, ignore_errors=True)


def user_state_base() -> Path:
    """Where a user's state dir is by default ($XDG_STATE_HOME, else ~/.local/state), as cc_executor.paths says."""
    xdg = os.environ.get("XDG_STATE_HOME")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _measure(options: Options, section: Section, workspace: Path, fast_root: Path | None) -> Section:
    n = 5 if options.quick else 10
    small = clone_of_this_repository(workspace / "this-repo", repack=True)
    loose = clone_of_this_repository(workspace / "this-repo-loose", repack=False)
    loose_count = loose_objects(loose)
    tracked = git(small, "ls-files").splitlines()
    os.sync()  # the clones' writeback is not charged to the first cycles
    root = _made(workspace / "worktrees")
    disk = described(root)
    tmp_floor: list[tuple[float, float]] = []
    unhinted = _made(workspace / "no-topdir-hint")  # beside the root, without chattr +T
    unhinted_floor: list[tuple[float, float]] = []

    default: list[dict[str, float]] = []
    through_git: list[dict[str, float]] = []
    fast: list[dict[str, float]] = []
    loose_samples: list[dict[str, float]] = []
    floor: list[tuple[float, float]] = []
    fast_floor: list[tuple[float, float]] = []
    async with FakeAnthropic(scenarios.text("hello")) as fake:
        config = CCExecutorConfig(
            env=offline_env(fake.base_url, options.tmp / "home"),
            claude_path=CLAUDE,
            model=MODEL,
            track_files=False,
            worktree_dir=root,
        )
        plain_dir = options.tmp / "plain"
        plain_dir.mkdir()
        await cc_execute("warm up", config=config, cwd=plain_dir)
        await one_cycle(small, root)
        trivial: list[float] = []
        trivial_cpu: list[float] = []
        plain_small: list[float] = []
        isolated_small: list[float] = []
        if not has_journal(root):
            await anyio.sleep(FREED_INODE_WINDOW_S)
        # The target row: trivial runs and worktree cycles interleaved (the same load on this shared machine, and
        # the file churn of back-to-back isolated runs), before the other variants add churn of their own.
        for _ in range(n):
            started, cpu = time.perf_counter(), cpu_seconds(own=True)
            await cc_execute("trivial", config=config, cwd=plain_dir)
            trivial.append(time.perf_counter() - started)
            trivial_cpu.append(cpu_seconds(own=True) - cpu)
            default.append(await one_cycle(small, root))
        for i in range(n):
            with git_cli_only():
                through_git.append(await one_cycle(small, root))
            floor.append(empty_files_floor(tracked, root))
            tmp_floor.append(empty_files_floor(tracked, options.tmp))
            unhinted_floor.append(empty_files_floor(tracked, unhinted))
            if fast_root is not None:
                fast.append(await one_cycle(small, fast_root))
                fast_floor.append(empty_files_floor(tracked, fast_root))
            loose_samples.append(await one_cycle(loose, root))
            order = ("none", "worktree") if i % 2 == 0 else ("worktree", "none")
            for isolation in order:
                started = time.perf_counter()
                await cc_execute("trivial", config=config, cwd=small, isolation=isolation)
                (plain_small if isolation == "none" else isolated_small).append(time.perf_counter() - started)
    # Made after the small cycles: writing 10,000 files keeps this disk busy for a while after (writeback, and
    # online discard after deletions), which would slow the small repository's checkouts.
    large = large_repository(workspace / "large")
    os.sync()
    large_cost = await cycles(large, root, max(3, n // 2))
    journaled = await on_journaled_ext4(workspace, n)

    small_cost = _median_phases(default)
    git_cost = _median_phases(through_git)
    engine = "in-process (libgit2)" if available() else "git CLI (pygit2 not installed)"
    loose_cost = _median_phases(loose_samples)
    fast_cost = _median_phases(fast) if fast else None
    baseline, baseline_cpu = median(trivial), median(trivial_cpu)
    ratio = small_cost["total"] / baseline
    cpu_ratio = small_cost["cpu"] / baseline_cpu
    floor_s = median([a + b for a, b in floor])
    floor_create, floor_delete = median([a for a, _ in floor]), median([b for _, b in floor])
    tmp_floor_s = median([a + b for a, b in tmp_floor])
    unhinted_s = median([a + b for a, b in unhinted_floor])
    folders = len({str(Path(x).parent) for x in tracked} - {"."})
    e2e = median(isolated_small) - median(plain_small)
    section.rows += [
        Row(
            f"7a. worktree setup+teardown per run, this repository ({len(tracked)} files, repacked), {engine}",
            f"{ms(small_cost['total'])} = {ratio * 100:.1f} % of a trivial run ({ms(baseline, 0)})",
            f"≤ {TARGET * 100:.0f} %",
            ratio <= TARGET,
            f"median of {n}: plan + worktree add + commit/measure/remove, one file written; repository and worktree "
            f"root in {user_state_base()} (where the default <state dir>/worktrees is), {disk}",
        ),
        Row(
            "7b. the same in CPU time (less sensitive to load)",
            f"{ms(small_cost['cpu'])} = {cpu_ratio * 100:.1f} % of a trivial run's {ms(baseline_cpu, 0)}",
            f"≤ {TARGET * 100:.0f} %",
            cpu_ratio <= TARGET,
            "user + system time of this process and every git/claude child, per run",
        ),
        Row(
            f"7c. filesystem floor: {len(tracked)} empty files (+ {folders} directories) created and deleted",
            f"{ms(floor_s)} = {floor_s / baseline * 100:.1f} % of a trivial run "
            f"(create {ms(floor_create)}, delete {ms(floor_delete)}; in a directory beside it without the +T hint: "
            f"{ms(unhinted_s)}; under /tmp: {ms(tmp_floor_s)})",
            "info",
            None,
            f"median of {n}, plain Python beside the worktrees ({disk}): what the checkout and the removal write, "
            "before any git work",
        ),
    ]
    if fast_cost is not None:
        fast_ratio = fast_cost["total"] / baseline
        fast_floor_s = median([a + b for a, b in fast_floor])
        section.rows.append(
            Row(
                "7d. the same setup+teardown with the worktree root on tmpfs (/dev/shm)",
                f"{ms(fast_cost['total'])} = {fast_ratio * 100:.1f} % of a trivial run "
                f"(CPU {ms(fast_cost['cpu'])} = {fast_cost['cpu'] / baseline_cpu * 100:.1f} %)",
                "info",
                None,
                f"median of {n}: git's cost and ours with file creation nearly free (floor {ms(fast_floor_s)})",
            )
        )
    else:
        section.rows.append(Row("7d. the same, worktree root on tmpfs", "no tmpfs at /dev/shm", "info", None, ""))
    section.rows += [
        Row(
            f"7e. the same on a clone as `git clone --local` leaves it ({loose_count:,} loose objects)",
            f"{ms(loose_cost['total'])} = {loose_cost['total'] / baseline * 100:.1f} % of a trivial run",
            "info",
            None,
            f"median of {n}, same place: every blob the checkout reads is its own file",
        ),
        Row(
            f"7f. worktree setup+teardown per run, {LARGE_FILES:,}-file repository (repacked)",
            f"{ms(large_cost['total'])} = {large_cost['total'] / baseline * 100:.0f} % of a trivial run",
            "report",
            None,
            f"median of {max(3, n // 2)}, same steps, same place",
        ),
        Row(
            "7g. cc_execute with isolation=worktree vs none (this repository)",
            f"{ms(e2e)} more per run",
            "info",
            None,
            f"median of {n} interleaved pairs, end to end (worktree_dir in the same place)",
        ),
        Row(
            "7h. 7a through the git CLI (CC_EXECUTOR_WORKTREE_GIT=cli: repositories with a filter driver, a "
            "post-checkout hook or submodules, and every repository without the [worktrees] extra)",
            f"{ms(git_cost['total'])} = {git_cost['total'] / baseline * 100:.1f} % of a trivial run "
            f"(CPU {ms(git_cost['cpu'])} = {git_cost['cpu'] / baseline_cpu * 100:.1f} %)",
            "info",
            None,
            f"median of {n}, interleaved with 7a: 13 git processes per run",
        ),
    ]
    if available():
        section.rows.append(
            Row(
                "7i. importing pygit2, once per process (a durable run's supervisor is a new process)",
                f"{ms(pygit2_import_s(n))}",
                "info",
                None,
                f"median of {n} fresh interpreters that had imported the engine already",
            )
        )
    if isinstance(journaled, str):
        section.rows.append(Row("7j. 7a on a journaled ext4", journaled, "info", None, ""))
    else:
        section.rows.append(
            Row(
                "7j. 7a on a journaled ext4 (a loop-mounted image on the same disk)",
                f"{ms(journaled['total'])} = {journaled['total'] / baseline * 100:.1f} % of a trivial run "
                f"(CPU {ms(journaled['cpu'])} = {journaled['cpu'] / baseline_cpu * 100:.1f} %)",
                "info",
                None,
                f"median of {n}: the same steps, disk and kernel as 7a; ext4 as installers make it (with a journal)",
            )
        )
    columns = [("this repository", small_cost), ("same, git CLI", git_cost)]
    if not isinstance(journaled, str):
        columns.append(("journaled ext4", journaled))
    if fast_cost is not None:
        columns.append(("same, root on tmpfs", fast_cost))
    columns += [("loose-object clone", loose_cost), (f"{LARGE_FILES:,} files", large_cost)]
    section.notes += [
        "| phase | " + " | ".join(name for name, _ in columns) + " |",
        "| --- |" + " --- |" * len(columns),
        *(
            f"| {phase} | " + " | ".join(ms(cost[phase]) for _, cost in columns) + " |"
            for phase in ("plan", "create", "finish", "total", "cpu")
        ),
        "",
        "Every column but 'git CLI' takes the in-process path (libgit2 through pygit2, no git process): plan "
        "(open the repository, resolve the base, check the branch, a status for uncommitted changes, and the checks "
        "that libgit2 would give git's result: no filter driver, post-checkout hook, gitlink or re-encoded file); "
        "create (branch, worktree, checkout, the `.worktreeinclude` check); finish (add all, one commit, the "
        "base..head commits and diff beside the directory's deletion). The git CLI column does the same with git "
        "commands: plan (2 git processes side by side), create (`git worktree add`: itself 4 git processes and the "
        "checkout), finish "
        "(`git add -A`, one commit, then log and diff beside rev-parse, `ls-files --stage` and `git worktree remove "
        "--force`): 13 git processes per run. cpu: user + system time of all of it. Each cycle "
        f"lasts {RUN_S:g} s between create and finish (not counted), as a run does: the checkout leaves every index "
        "entry racily clean, so `git add -A` at the end re-reads every file once (git's guard against changes within "
        "the second the index was written).",
        "",
        *_reading(
            small_cost,
            journaled,
            git_cost,
            fast_cost,
            (floor_s, unhinted_s, tmp_floor_s),
            (baseline, baseline_cpu),
            len(tracked),
            disk,
            loose_cost,
        ),
    ]
    return section


def _reading(
    small: dict[str, float],
    journaled: dict[str, float] | str,
    through_git: dict[str, float],
    fast: dict[str, float] | None,
    floors: tuple[float, float, float],
    baselines: tuple[float, float],
    files: int,
    disk: str,
    loose: dict[str, float],
) -> list[str]:
    """The reading under the table, from the figures (so it stays true when they change)."""
    (floor_s, unhinted_s, tmp_floor_s), (baseline, baseline_cpu) = floors, baselines
    text = (
        f"Reading: isolation costs {ms(small['total'])} per run here, {small['total'] / baseline * 100:.0f} % of a "
        f"trivial run ({ms(baseline, 0)} wall, {ms(baseline_cpu, 0)} CPU). Of that, {ms(floor_s)} is the filesystem "
        f"floor: creating and deleting {files} empty files beside the worktrees ({disk}), before git reads or writes "
        f"a byte. The worktrees root carries ext4's +T hint (`chattr +T`: each worktree starts a block group of its "
        f"own, engine/topdir.py); in a directory beside it without the hint the same floor is {ms(unhinted_s)}, "
        f"under /tmp {ms(tmp_floor_s)}. "
        f"{_journal_reading(disk, journaled, baseline)}"
        f"The same steps through the git CLI cost {ms(through_git['total'])} "
        f"({through_git['total'] / baseline * 100:.0f} %, CPU {ms(through_git['cpu'])} against {ms(small['cpu'])}): "
        "13 git process starts, most of the CPU, and git's re-reading of racily-clean files. "
    )
    if fast is not None:
        met = "within" if fast["total"] / baseline <= TARGET else "above"
        text += (
            f"With the worktree root on tmpfs the same steps cost {ms(fast['total'])} = "
            f"{fast['total'] / baseline * 100:.1f} % of a trivial run ({met} the {TARGET * 100:.0f} % target): "
            "libgit2's work and ours with file creation nearly free. "
        )
    text += (
        f"A clone whose objects are all loose costs {ms(loose['total'])} against {ms(small['total'])} repacked (each "
        "blob the checkout reads is its own open and inflate). The `worktree_dir` setting can put worktrees on a "
        "faster filesystem (tmpfs loses a crashed run's uncommitted work with the machine). A 10,000-file "
        "repository costs seconds: checking out 10,000 files, re-reading them once at the end (the racily-clean "
        "check above) and removing them."
    )
    return [text]


def _journal_reading(disk: str, journaled: dict[str, float] | str, baseline: float) -> str:
    if "no journal" not in disk:
        return ""
    text = (
        "This disk's ext4 has no journal: there every file created skips each inode freed in the last 30 s in its "
        "block group (one buffer lookup each, kernel CPU), so without the hint a checkout slows with every deletion "
        "before it in the same group, the trivial runs' and the worktrees' own (the target cycles run first, after "
        "a 35 s pause, so the other variants' deletions are not charged to them). "
    )
    if isinstance(journaled, str):
        return text
    return text + (
        f"On a journaled ext4 (what installers make) on the same disk, 7j, the same steps cost "
        f"{ms(journaled['total'])} = {journaled['total'] / baseline * 100:.1f} % of a trivial run. "
    )
