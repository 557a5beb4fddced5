"""Pure functions that turn a RunRequest into the CLI's argv and environment.

The prompt never goes into argv (Linux caps one argument at 128 KiB, and argv is visible in `ps`); it goes to
stdin as a stream-json user message (engine/control.py), where the CLI's permission prompts are answered too.

Nothing a caller sends may become a CLI flag. Every option carrying a caller's value is ONE argument of the
form ``--flag=value`` (checked against the real CLI 2.1.331, see docs/security.md): the CLI's parser then
takes the whole rest of the argument as the value, even one starting with ``-``, and a variadic option
(``--allowedTools``) cannot swallow a following argument, because argv holds no free-standing values at all.
Values are also checked first (``check_argv_values``), so a tool rule such as ``--permission-mode=...`` is
refused with a sentence instead of being passed on as a strange rule.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cc_executor.errors import ClaudeNotFoundError, InvalidRequestError
from cc_executor.models import MODEL_NAME, SESSION_ID, TOOL_RULE, RunRequest, tool_rule_problem

RUN_MARKER_ENV = "CC_EXECUTOR_RUN_ID"
CLAUDE_PATH_ENV = "CC_EXECUTOR_CLAUDE"

# Variables a child `claude` must not inherit from a host that is itself Claude Code: CLAUDECODE makes a
# nested `claude -p` hang (anthropics/claude-code#39449), the others tie it to the host's session.
_STRIPPED_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_SSE_PORT")
_SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_-]{6,}|(?i:(?:api[_-]?key|token|secret|password))\s*[=:]\s*\S+)")


def candidate_paths(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Where `claude` is looked for, in order: the explicit path, $CC_EXECUTOR_CLAUDE, PATH (absolute entries
    only), then the installers' known locations. Never the process's cwd: a checkout we are asked to work in
    can ship its own ``node_modules/.bin/claude`` (or a ``claude`` next to a relative PATH entry)."""
    env = os.environ if environ is None else environ
    places: list[str] = []
    if explicit:
        places.append(explicit)
    if env.get(CLAUDE_PATH_ENV):
        places.append(env[CLAUDE_PATH_ENV])
    on_path = shutil.which("claude", path=_absolute_path_entries(env.get("PATH")))
    places.append(on_path or "claude on PATH")
    home = Path(env.get("HOME", str(Path.home())))
    places.append(str(home / ".claude" / "local" / "claude"))  # `claude migrate-installer`
    places.append(str(home / ".local" / "bin" / "claude"))  # the native installer
    return places


def _absolute_path_entries(path: str | None) -> str:
    """PATH without "", "." or other relative entries, which would resolve against the cwd."""
    entries = (path if path is not None else os.defpath).split(os.pathsep)
    return os.pathsep.join(entry for entry in entries if entry and os.path.isabs(entry))


def find_claude(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The first executable `claude` among ``candidate_paths``; ClaudeNotFoundError lists them all."""
    places = candidate_paths(explicit, environ)
    for place in places:
        path = Path(place)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.absolute())  # an explicit relative path is taken from where we started, never the run's cwd
        if explicit and place == explicit:
            raise ClaudeNotFoundError([f"{explicit} (given explicitly: not an executable file)"])
    raise ClaudeNotFoundError(places)


def build_argv(request: RunRequest, claude: str, *, mcp_config_file: Path | None = None) -> list[str]:
    """The CLI's argv: after ``claude``, only flags; every value rides in its flag as ``--flag=value``.
    ``mcp_config_file``: where ``write_mcp_config`` put the run's MCP servers (a file we wrote, never a caller's
    string)."""
    check_argv_values(request)
    config = request.config
    argv = [claude, "-p", "--output-format=stream-json", "--verbose", "--input-format=stream-json"]
    argv += ["--permission-prompt-tool=stdio", _flag("--permission-mode", config.permission_mode)]
    if config.model:
        argv.append(_flag("--model", config.model))
    argv += [_flag("--allowedTools", rule) for rule in config.allowed_tools]  # one rule per flag: repeats add up
    argv += [_flag("--disallowedTools", rule) for rule in config.disallowed_tools]
    argv += [_flag("--add-dir", str(d.expanduser().resolve())) for d in config.add_dirs]
    if config.max_turns is not None:
        argv.append(_flag("--max-turns", str(config.max_turns)))
    if config.max_budget_usd is not None:
        argv.append(_flag("--max-budget-usd", f"{config.max_budget_usd:g}"))
    if config.setting_sources is not None:
        argv.append(_flag("--setting-sources", ",".join(config.setting_sources)))
    if mcp_config_file is not None:
        argv.append(_flag("--mcp-config", str(mcp_config_file)))
    if config.strict_mcp_config:
        argv.append("--strict-mcp-config")
    if config.append_system_prompt:
        argv.append(_flag("--append-system-prompt", config.append_system_prompt))
    schema = effective_schema(request)
    if schema is not None:
        argv.append(_flag("--json-schema", json.dumps(schema, separators=(",", ":"))))
    if request.resume_session_id:
        argv.append(_flag("--resume", request.resume_session_id))
        if request.fork_session:
            argv.append("--fork-session")
    return argv


def _flag(name: str, value: str) -> str:
    return f"{name}={value}"


def check_argv_values(request: RunRequest) -> None:
    """Refuse, with a sentence naming the field, any caller value that could be read as a flag or break argv.

    ``--flag=value`` already keeps values values; this also refuses what the CLI would misread (a rule list
    smuggled in one string, a model that looks like an option) and NUL bytes, which no argv can carry.
    """
    config = request.config
    for field, rules in (("allowed_tools", config.allowed_tools), ("disallowed_tools", config.disallowed_tools)):
        for rule in rules:
            if not TOOL_RULE.fullmatch(rule):
                raise InvalidRequestError(f"{field}: {tool_rule_problem(rule)}")
    if config.model is not None and not MODEL_NAME.fullmatch(config.model):
        raise InvalidRequestError(
            f"model: {config.model!r} is not a model name; expected letters, digits and . _ - : / [ ] (e.g. 'sonnet')"
        )
    session = request.resume_session_id
    if session is not None and not SESSION_ID.fullmatch(session):
        raise InvalidRequestError(f"resume_session_id: {session!r} is not a Claude session id (expected a UUID)")
    for index, directory in enumerate(config.add_dirs):
        if "\x00" in str(directory):
            raise InvalidRequestError(f"add_dirs[{index}]: contains a NUL byte")
    if config.append_system_prompt is not None and "\x00" in config.append_system_prompt:
        raise InvalidRequestError("append_system_prompt: contains a NUL byte")
    budget = config.max_budget_usd
    if budget is not None and not math.isfinite(budget):
        raise InvalidRequestError(f"max_budget_usd: must be a finite number of dollars, got {budget}")


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
