"""Preflight checks behind ``cc-executor doctor``: each says what it found and, when something is wrong, the fix.

Every check is bounded in time (subprocesses get a timeout and are killed with their group), so doctor itself can
never hang on the headless failure modes it looks for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import anyio

from cc_executor.engine.command import CLAUDE_PATH_ENV

# Public from here: front ends (the demo) locate claude the way runs will, without importing the engine.
from cc_executor.engine.command import find_claude as find_claude

Status = Literal["ok", "warn", "fail", "skip"]

MIN_CLAUDE_VERSION = (2, 1, 0)
COMMAND_TIMEOUT_S = 10.0
STORE_TIMEOUT_S = 15.0
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_INSTALL_CLAUDE = (
    "install it with `npm install -g @anthropic-ai/claude-code` (or `npm ci` in a cc-executor checkout), "
    "or set CC_EXECUTOR_CLAUDE=/path/to/claude"
)


@dataclass(slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(slots=True)
class CommandOutput:
    returncode: int | None  # None: timed out (the process group was killed)
    stdout: str
    stderr: str


async def run_bounded(
    argv: list[str], *, env: Mapping[str, str] | None = None, timeout_s: float = COMMAND_TIMEOUT_S
) -> CommandOutput:
    """Run ``argv`` with stdin closed, in its own session; kill the whole group if it outlives ``timeout_s``."""
    process = await anyio.open_process(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    chunks: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    async def drain(name: str) -> None:
        stream = process.stdout if name == "stdout" else process.stderr
        assert stream is not None
        async for chunk in stream:
            chunks[name] += chunk[: 64 * 1024 - len(chunks[name])]

    timed_out = True
    with anyio.move_on_after(timeout_s):
        async with anyio.create_task_group() as group:
            group.start_soon(drain, "stdout")
            group.start_soon(drain, "stderr")
            await process.wait()
        timed_out = False
    if timed_out:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
            await process.wait()
    await process.aclose()
    text = {name: data.decode("utf-8", "replace").strip() for name, data in chunks.items()}
    return CommandOutput(None if timed_out else process.returncode, text["stdout"], text["stderr"])


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a run's claude would see (host-session variables removed)."""
    stripped = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_SSE_PORT")
    return {k: v for k, v in env.items() if k not in stripped}


# --- the claude CLI ---------------------------------------------------------------------------------------------


def check_claude(explicit: str | None, env: Mapping[str, str]) -> tuple[Check, str | None]:
    """Where claude is; a CC_EXECUTOR_CLAUDE that points nowhere fails even when a fallback exists."""
    from cc_executor.errors import ClaudeNotFoundError

    override = env.get(CLAUDE_PATH_ENV)
    try:
        path = find_claude(explicit, env)
    except ClaudeNotFoundError as exc:
        looked = "; ".join(exc.searched)
        detail = f"the Claude Code CLI was not found (looked in: {looked})"
        if not explicit and override:
            detail = f"{CLAUDE_PATH_ENV}={override} is not an executable file, and no other claude was found ({looked})"
        return Check("claude", "fail", detail, _INSTALL_CLAUDE), None
    if not explicit and override and Path(override) != Path(path):
        detail = f"{CLAUDE_PATH_ENV}={override} is not an executable file (runs would fall back to {path})"
        return Check("claude", "fail", detail, f"fix or unset {CLAUDE_PATH_ENV}; {_INSTALL_CLAUDE}"), path
    source = "--claude" if explicit else f"${CLAUDE_PATH_ENV}" if override else "lookup"
    return Check("claude", "ok", f"{path} (via {source})"), path


async def check_version(claude: str | None, env: Mapping[str, str]) -> Check:
    name = "claude version"
    if claude is None:
        return Check(name, "skip", "no claude executable to ask")
    output = await run_bounded([claude, "--version"], env=child_env(env))
    minimum = ".".join(map(str, MIN_CLAUDE_VERSION))
    if output.returncode is None:
        detail = f"`{claude} --version` did not answer within {COMMAND_TIMEOUT_S:g}s"
        return Check(name, "fail", detail, f"reinstall the CLI; {_INSTALL_CLAUDE}")
    match = _VERSION.search(output.stdout)
    if output.returncode != 0 or match is None:
        said = (output.stderr or output.stdout or "no output")[-300:]
        fix = (
            "the native binary is missing (npm ran with --ignore-scripts?): reinstall with scripts enabled, or run "
            "`node node_modules/@anthropic-ai/claude-code/install.cjs`"
            if "not installed" in said
            else f"reinstall the CLI; {_INSTALL_CLAUDE}"
        )
        return Check(name, "fail", f"`{claude} --version` exited {output.returncode}: {said}", fix)
    version = tuple(int(part) for part in match.groups())
    if version < MIN_CLAUDE_VERSION:
        fix = "upgrade: `npm install -g @anthropic-ai/claude-code@latest` (or `claude update`)"
        return Check(name, "fail", f"{match.group(0)} is older than the minimum supported {minimum}", fix)
    return Check(name, "ok", f"{match.group(0)} (minimum supported {minimum})")


# --- environment ------------------------------------------------------------------------------------------------


def check_credentials(env: Mapping[str, str]) -> Check:
    name = "credentials"
    for var, what in (
        ("ANTHROPIC_API_KEY", "API key"),
        ("ANTHROPIC_AUTH_TOKEN", "bearer token"),
        ("CLAUDE_CODE_OAUTH_TOKEN", "long-lived login token (claude setup-token)"),
    ):
        if env.get(var, "").strip():
            return Check(name, "ok", f"{what} in ${var}")
    for var in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY"):
        if env.get(var, "") not in ("", "0", "false"):
            return Check(name, "ok", f"${var} is set: claude uses that cloud provider's credentials (not checked)")
    login = _logged_in(env)
    if login:
        return Check(name, "ok", login)
    home = env.get("HOME", "~")
    detail = (
        "no ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN / CLAUDE_CODE_OAUTH_TOKEN, and no login in "
        f"{_config_dir(env)}/.credentials.json or {home}/.claude.json"
    )
    fix = (
        "log in once: run `claude` in a terminal and use /login (Claude subscription), or `export "
        "ANTHROPIC_API_KEY=sk-ant-...`; for servers, `claude setup-token` and export CLAUDE_CODE_OAUTH_TOKEN"
    )
    return Check(name, "fail", detail, fix)


def _config_dir(env: Mapping[str, str]) -> Path:
    configured = env.get("CLAUDE_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path(env.get("HOME", str(Path.home()))) / ".claude"


def _logged_in(env: Mapping[str, str]) -> str | None:
    """A logged-in CLI: ~/.claude/.credentials.json (Linux), or an oauthAccount in ~/.claude.json (macOS keychain)."""
    config_dir = _config_dir(env)
    credentials = config_dir / ".credentials.json"
    if credentials.is_file():
        return f"logged-in CLI ({credentials})"
    home = Path(env.get("HOME", str(Path.home())))
    for state in (home / ".claude.json", config_dir / ".claude.json"):
        try:
            account = json.loads(state.read_text(encoding="utf-8")).get("oauthAccount")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(account, dict):
            who = account.get("emailAddress") or account.get("accountUuid") or "an account"
            return f"logged-in CLI as {who} ({state})"
    return None


def check_nested(env: Mapping[str, str]) -> Check:
    name = "nested session"
    if not env.get("CLAUDECODE"):
        return Check(name, "ok", "not inside a Claude Code session")
    detail = (
        f"CLAUDECODE={env['CLAUDECODE']}: this runs inside a Claude Code session; a plain `claude -p` started "
        "from here can hang (anthropics/claude-code#39449)"
    )
    fix = (
        "nothing to do for cc-executor: it strips CLAUDECODE and the CLAUDE_CODE_* session variables from every "
        "run's environment; run claude by hand from here as `env -u CLAUDECODE claude -p ...`"
    )
    return Check(name, "warn", detail, fix)


def check_root(env: Mapping[str, str], permission_mode: str | None) -> Check:
    name = "root + bypass"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return Check(name, "ok", "not running as root: every permission mode is available")
    if env.get("IS_SANDBOX") == "1":
        return Check(name, "ok", "root with IS_SANDBOX=1: claude accepts bypassPermissions")
    current = env.get("IS_SANDBOX")
    setting = f"with IS_SANDBOX={current} (claude only accepts 1)" if current is not None else "without IS_SANDBOX=1"
    detail = f"running as root {setting}: claude refuses --permission-mode bypassPermissions"
    fix = (
        "use acceptEdits (the default) with --allowed-tools, or run as a normal user; set IS_SANDBOX=1 only inside a "
        "disposable sandbox or container"
    )
    if permission_mode == "bypassPermissions":
        return Check(name, "fail", detail, fix)
    return Check(name, "ok", detail + " (other modes work)")


def check_policy(env: Mapping[str, str]) -> Check:
    """The operator's policy in force (cc_executor.policy): what callers may ask for, with each setting's name."""
    from cc_executor.errors import PolicyError
    from cc_executor.policy import Policy

    name = "policy"
    try:
        policy = Policy.from_env(env)
    except PolicyError as exc:
        return Check(name, "fail", str(exc), f"fix or unset {exc.setting}; every run is refused until then")
    detail = "; ".join(f"{setting}={value}" for setting, value in policy.describe().items())
    return Check(name, "ok", detail)


def check_state_dir() -> Check:
    from cc_executor.errors import UnsafeDirectoryError
    from cc_executor.paths import state_dir

    name = "state dir"
    try:
        directory = state_dir()
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except UnsafeDirectoryError as exc:
        return Check(name, "fail", str(exc), "use a private directory: unset CC_EXECUTOR_HOME or point it elsewhere")
    except OSError as exc:
        fix = "make it writable by this user, or point CC_EXECUTOR_HOME at a writable directory"
        return Check(name, "fail", f"cannot write the state dir: {exc}", fix)
    return Check(name, "ok", f"{directory} is writable")


async def check_sqlite(state_ok: bool) -> Check:
    import sqlite3

    from cc_executor.api import open_store
    from cc_executor.paths import db_path

    name = "sqlite"
    if not state_ok:
        return Check(name, "skip", "the state dir is not writable")
    path = db_path()
    try:
        with anyio.fail_after(STORE_TIMEOUT_S):
            async with open_store(path) as store:
                unfinished = len(await store.unfinished_runs())
                recent = len(await store.list_runs(limit=1000))
    except (sqlite3.Error, OSError, TimeoutError) as exc:
        fix = f"if {path} is corrupt or locked by a stuck process, move it aside (it only holds run history)"
        return Check(name, "fail", f"cannot open {path}: {type(exc).__name__}: {exc}", fix)
    more = "+" if recent == 1000 else ""
    detail = f"{path} (SQLite {sqlite3.sqlite_version}): {recent}{more} runs, {unfinished} queued/running"
    return Check(name, "ok", detail)


async def check_worktrees(state_ok: bool) -> list[Check]:
    """Worktrees a crashed isolated run left behind: one warning each, with what it holds and how to recover."""
    from cc_executor.worktrees import leftover_worktrees

    name = "worktrees"
    if not state_ok:
        return [Check(name, "skip", "the state dir is not writable")]
    try:
        with anyio.fail_after(STORE_TIMEOUT_S):
            leftovers = await leftover_worktrees()
    except (OSError, TimeoutError) as exc:
        return [Check(name, "warn", f"could not look for leftover worktrees: {exc}")]
    if not leftovers:
        return [Check(name, "ok", "no leftover worktrees of isolated runs")]
    return [
        Check(
            f"{name}: {leftover.run_id[:8] if leftover.run_id else leftover.path.name}",
            "warn",
            f"leftover worktree {leftover.path} (run {leftover.run_id or 'unknown'}): {leftover.describe()}",
            leftover.recovery(),
        )
        for leftover in leftovers
    ]


def check_state_size(state_ok: bool) -> Check:
    """How much room run history takes, and whether anything prunes it."""
    from cc_executor.errors import InvalidRequestError
    from cc_executor.retention import RETENTION_ENV, format_bytes, retention_days, state_size

    name = "state size"
    if not state_ok:
        return Check(name, "skip", "the state dir is not writable")
    size = state_size()
    detail = (
        f"{format_bytes(size.total_bytes)} in {size.path}: runs.db {format_bytes(size.database_bytes)}, "
        f"{size.transcript_files} transcript file(s) {format_bytes(size.transcript_bytes)}"
    )
    try:
        days = retention_days()
    except InvalidRequestError as exc:
        return Check(name, "fail", f"{detail}; {exc}", f"set {RETENTION_ENV} to a number of days, or unset it")
    if days is None:
        return Check(
            name, "ok", f"{detail}; nothing prunes it (cc-executor prune --older-than 30d, or {RETENTION_ENV})"
        )
    return Check(name, "ok", f"{detail}; the MCP server prunes finished runs older than {days:g} days at start")


async def check_node(env: Mapping[str, str]) -> list[Check]:
    checks = []
    for tool in ("node", "npm"):
        found = shutil.which(tool, path=env.get("PATH"))
        if found is None:
            fix = "install Node.js 20+ (https://nodejs.org) to install or update the claude CLI with npm"
            checks.append(Check(tool, "warn", f"{tool} not on PATH (only needed to install/update claude)", fix))
            continue
        output = await run_bounded([found, "--version"], env=env)
        if output.returncode != 0:
            said = "timed out" if output.returncode is None else (output.stderr or output.stdout)[-200:]
            checks.append(Check(tool, "warn", f"`{found} --version` failed: {said}", "reinstall Node.js"))
        else:
            checks.append(Check(tool, "ok", f"{output.stdout} ({found})"))
    return checks


async def check_git(env: Mapping[str, str]) -> Check:
    """git's version against what isolation="worktree" (2.31) and merge_run (2.38) use."""
    from cc_executor.engine.git import MIN_GIT_ISOLATION, MIN_GIT_MERGE, parse_git_version, version_text

    found = shutil.which("git", path=env.get("PATH"))
    upgrade = "install a newer git (or put one first on PATH)"
    if found is None:
        return Check("git", "warn", "git not on PATH: isolation='worktree' is unavailable", upgrade)
    output = await run_bounded([found, "--version"], env=env)
    version = parse_git_version(output.stdout) if output.returncode == 0 else None
    if version is None:
        said = "timed out" if output.returncode is None else (output.stderr or output.stdout)[-200:]
        return Check("git", "warn", f"`{found} --version` failed: {said}", upgrade)
    text = f"git {version_text(version)} ({found})"
    if version[:2] < MIN_GIT_ISOLATION:
        return Check(
            "git", "warn", f"{text}: isolation='worktree' needs git {version_text(MIN_GIT_ISOLATION)}+", upgrade
        )
    if version[:2] < MIN_GIT_MERGE:
        detail = f"{text}: isolated runs work; merge_run needs git {version_text(MIN_GIT_MERGE)}+ (merge by hand)"
        return Check("git", "warn", detail, upgrade)
    return Check("git", "ok", text)


def check_worktree_engine() -> Check:
    """Which path worktree steps take: in-process libgit2 (the [worktrees] extra) or the git CLI."""
    from cc_executor.engine import worktree_libgit2
    from cc_executor.errors import InvalidRequestError

    name = "worktree engine"
    try:
        in_process = worktree_libgit2.available()
    except InvalidRequestError as exc:
        return Check(name, "fail", str(exc), f"unset {worktree_libgit2.ENGINE_SETTING} or set it to auto or cli")
    if in_process:
        return Check(name, "ok", f"in-process: {worktree_libgit2.describe()}; {worktree_libgit2.GIT_PATH_CASES}")
    if os.environ.get(worktree_libgit2.ENGINE_SETTING, "").strip().lower() == "cli":
        return Check(name, "ok", f"the git CLI for every step ({worktree_libgit2.ENGINE_SETTING}=cli)")
    return Check(
        name,
        "ok",
        "the git CLI (13 git processes per isolated run); `pip install 'cc-executor[worktrees]'` makes plain "
        "repositories' worktrees in-process, several times cheaper",
    )


def check_mcp_server() -> Check:
    name = "mcp server"
    try:
        spec = importlib.util.find_spec("cc_executor_mcp")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        fix = "reinstall cc-executor (`pip install -e .` in the checkout); `cc-executor serve` needs it"
        return Check(name, "fail", "the cc_executor_mcp package is not importable", fix)
    return Check(name, "ok", f"cc_executor_mcp importable ({spec.origin})")


# --- smoke test -------------------------------------------------------------------------------------------------

SMOKE_TASK = "Reply with exactly one word: pong"
_SMOKE_FIXES = {
    "AuthenticationError": "the API rejected the credentials: log in again (`claude`, then /login) or check the key",
    "RunTimeoutError": "claude stayed silent: run `claude` once in a terminal to clear first-run/trust dialogs, "
    "and check network/proxy settings (HTTPS_PROXY)",
    "RateLimitError": "rate limited: wait a little and retry",
    "UsageLimitError": "the subscription's usage limit is reached: wait for the reset time in the error",
    "OverloadedError": "the API is overloaded: retry later",
    "CLICrashError": "claude exited without an answer: run `claude -p hi` yourself to see why",
}


async def check_smoke(claude: str | None, *, model: str | None, timeout_s: float) -> Check:
    """A one-turn task through the library (recorded like any run)."""
    from cc_executor.api import cc_execute
    from cc_executor.models import CCExecutorConfig

    name = "smoke run"
    if claude is None:
        return Check(name, "skip", "no claude executable")
    config = CCExecutorConfig(
        claude_path=claude,
        model=model,
        timeout=timeout_s,
        idle_timeout=min(timeout_s, 120.0),
        max_turns=1,
        max_attempts=1,
        track_files=False,
    )
    with tempfile.TemporaryDirectory(prefix="cc-executor-smoke-") as tmp:
        result = await cc_execute(SMOKE_TASK, cwd=tmp, config=config, check=False)
    facts = f"run {result.run_id[:8]}, {result.duration_s or 0:.1f}s, ${result.cost_usd or 0:.4f}"
    if result.ok:
        reply = " ".join((result.result or "").split())[:60]
        return Check(name, "ok", f"claude answered {reply!r} ({facts})")
    error_class = result.error_class or ""
    fix = _SMOKE_FIXES.get(error_class)
    if fix is None and error_class == "IdleTimeoutError":
        fix = _SMOKE_FIXES["RunTimeoutError"]
    fix = fix or f"see `cc-executor show {result.run_id[:8]} --transcript`"
    return Check(name, "fail", f"{result.status.value} ({error_class or '?'}): {result.error} ({facts})", fix)
