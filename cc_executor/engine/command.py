"""Pure functions that turn a RunRequest into the CLI's argv and environment.

The prompt never goes into argv (Linux caps one argument at 128 KiB, and argv is visible in `ps`); it goes to
stdin as a stream-json user message (engine/control.py), where the CLI's permission prompts are answered too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cc_executor.errors import ClaudeNotFoundError, InvalidRequestError
from cc_executor.models import RunRequest

RUN_MARKER_ENV = "CC_EXECUTOR_RUN_ID"
CLAUDE_PATH_ENV = "CC_EXECUTOR_CLAUDE"

# Variables a child `claude` must not inherit from a host that is itself Claude Code: CLAUDECODE makes a
# nested `claude -p` hang (anthropics/claude-code#39449), the others tie it to the host's session.
_STRIPPED_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_SSE_PORT")
_SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_-]{6,}|(?i:(?:api[_-]?key|token|secret|password))\s*[=:]\s*\S+)")


def candidate_paths(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Where `claude` is looked for, in order."""
    env = os.environ if environ is None else environ
    places: list[str] = []
    if explicit:
        places.append(explicit)
    if env.get(CLAUDE_PATH_ENV):
        places.append(env[CLAUDE_PATH_ENV])
    on_path = shutil.which("claude", path=env.get("PATH"))
    places.append(on_path or "claude on PATH")
    places.append(str(Path(env.get("HOME", str(Path.home()))) / ".claude" / "local" / "claude"))
    repo_root = Path(__file__).resolve().parents[1]
    places.append(str(repo_root / "node_modules" / ".bin" / "claude"))
    places.append(str(Path.cwd() / "node_modules" / ".bin" / "claude"))
    return places


def find_claude(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The first executable `claude` among ``candidate_paths``; ClaudeNotFoundError lists them all."""
    places = candidate_paths(explicit, environ)
    for place in places:
        path = Path(place)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.absolute())  # a relative path would break once the CLI runs in another cwd
        if explicit and place == explicit:
            raise ClaudeNotFoundError([f"{explicit} (given explicitly: not an executable file)"])
    raise ClaudeNotFoundError(places)


def build_argv(request: RunRequest, claude: str, *, mcp_config_file: Path | None = None) -> list[str]:
    """The CLI's argv. ``mcp_config_file``: where ``write_mcp_config`` put the run's MCP servers (a file we wrote,
    never a caller's string: nothing a caller sends becomes a flag)."""
    config = request.config
    argv = [claude, "-p", "--output-format", "stream-json", "--verbose", "--input-format", "stream-json"]
    argv += ["--permission-prompt-tool", "stdio", "--permission-mode", config.permission_mode]
    if config.model:
        argv += ["--model", config.model]
    if config.allowed_tools:
        argv += ["--allowedTools", *config.allowed_tools]
    if config.disallowed_tools:
        argv += ["--disallowedTools", *config.disallowed_tools]
    if config.add_dirs:
        argv += ["--add-dir", *(str(d.expanduser().resolve()) for d in config.add_dirs)]
    if config.max_turns is not None:
        argv += ["--max-turns", str(config.max_turns)]
    if config.max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{config.max_budget_usd:g}"]
    if config.setting_sources is not None:
        argv += ["--setting-sources", ",".join(config.setting_sources)]
    if mcp_config_file is not None:
        argv += ["--mcp-config", str(mcp_config_file)]
    if config.strict_mcp_config:
        argv.append("--strict-mcp-config")
    if config.append_system_prompt:
        argv += ["--append-system-prompt", config.append_system_prompt]
    schema = effective_schema(request)
    if schema is not None:
        argv += ["--json-schema", json.dumps(schema, separators=(",", ":"))]
    if request.resume_session_id:
        argv += ["--resume", request.resume_session_id]
        if request.fork_session:
            argv.append("--fork-session")
    return argv


def write_mcp_config(request: RunRequest) -> Path | None:
    """The run's ``mcp_config`` in a private temp file (0600: server env may hold secrets, and argv is public in
    `ps` and recorded); the caller removes it when the run ends. None when the run has no MCP servers of its own."""
    if request.config.mcp_config is None:
        return None
    fd, name = tempfile.mkstemp(prefix=f"cc-executor-{request.run_id[:8]}-", suffix=".mcp.json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(request.config.mcp_config, handle)
    return Path(name)


def effective_schema(request: RunRequest) -> dict[str, object] | None:
    from cc_executor.engine.structured_output import SEED_RESULT_SCHEMA

    if request.json_schema is not None:
        return request.json_schema
    return SEED_RESULT_SCHEMA if request.return_json else None


def build_env(request: RunRequest, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours minus host-session variables, plus config.env and the run marker."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _STRIPPED_ENV}
    env.update(request.config.env)
    env[RUN_MARKER_ENV] = request.run_id
    check_bypass_allowed(request, env)
    return env


def check_bypass_allowed(request: RunRequest, env: Mapping[str, str]) -> None:
    """As root the CLI refuses bypassPermissions unless IS_SANDBOX=1; say so before spawning."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if request.config.permission_mode == "bypassPermissions" and is_root and env.get("IS_SANDBOX") != "1":
        raise InvalidRequestError(
            "permission_mode 'bypassPermissions' is refused by the Claude CLI when running as root; "
            "set IS_SANDBOX=1 in the environment (only inside a real sandbox) or use acceptEdits/allowed_tools"
        )


def redact_argv(argv: list[str]) -> list[str]:
    """argv as recorded: anything that looks like a key or token is masked."""
    return [_SECRET_VALUE.sub("***", arg) for arg in argv]
