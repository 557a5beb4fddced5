"""Server-wide settings, read from the environment once at start-up (tests pass their own)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_RETURN_AFTER_S = 50.0  # well under Claude Desktop's ~4 min wall clock and the 60 s of many hosts
DEFAULT_MAX_RESULT_CHARS = 20_000  # ~5k tokens: fits the 25k-token tool-result caps hosts enforce
MAX_RETURN_AFTER_S = 3600.0
MAX_WAIT_S = 300.0

ENV_RETURN_AFTER = "CC_EXECUTOR_RETURN_AFTER_S"
ENV_MAX_CONCURRENT = "CC_EXECUTOR_MAX_CONCURRENT"
ENV_HOME = "CC_EXECUTOR_HOME"
ENV_CLAUDE = "CC_EXECUTOR_CLAUDE"
ENV_DEFAULT_CWD = "CC_EXECUTOR_DEFAULT_CWD"
ENV_MAX_RESULT_CHARS = "CC_EXECUTOR_MAX_RESULT_CHARS"
ENV_MODEL = "CC_EXECUTOR_MODEL"
ENV_LOG_LEVEL = "CC_EXECUTOR_LOG_LEVEL"
ENV_BACKEND = "CC_EXECUTOR_BACKEND"

BACKENDS = ("durable", "local", "temporal")
DEFAULT_BACKEND = "durable"
"""durable: each run has its own supervisor process and outlives this server (hosts restart servers all the time:
a quit, an idle-session kill, a crash must not kill a two-hour run); local: runs live in the server's task group
and are cancelled (trees killed, rows recorded) when it exits; temporal: runs are Temporal activities on workers
(docs/scale-out.md)."""
ENV_SETTING_SOURCES = "CC_EXECUTOR_SETTING_SOURCES"
ENV_ALLOW_OUTSIDE_ROOTS = "CC_EXECUTOR_ALLOW_OUTSIDE_ROOTS"
ENV_ALLOW_RUN_MCP_CONFIG = "CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG"  # the core policy's variable; stricter default here
ENV_PERMISSION_PROMPTS = "CC_EXECUTOR_PERMISSION_PROMPTS"
ENV_APPROVAL_TIMEOUT = "CC_EXECUTOR_APPROVAL_TIMEOUT_S"
ENV_MCP_CONFIG = "CC_EXECUTOR_MCP_CONFIG"
ENV_STRICT_MCP_CONFIG = "CC_EXECUTOR_STRICT_MCP_CONFIG"
_SOURCES = ("user", "project", "local")
ENV_RETENTION_DAYS = "CC_EXECUTOR_RETENTION_DAYS"
MAX_RETENTION_DAYS = 36500.0


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use; the message names it."""


@dataclass(frozen=True)
class ServerSettings:
    """What every tool call shares. ``cli_env`` and ``claude_path`` go into every run's config (tests use them)."""

    return_after_s: float = DEFAULT_RETURN_AFTER_S
    max_concurrent: int | None = None  # None: the core's default (CPU count)
    home: Path | None = None  # state dir (runs.db, transcripts/); None: the core's resolver
    claude_path: str | None = None
    default_cwd: Path | None = None
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS
    model: str | None = None
    cli_env: dict[str, str] = field(default_factory=dict)
    kill_grace_s: float | None = None  # None: the core's default
    retention_days: float | None = None  # prune finished runs older than this at start (None: keep everything)
    handle_signals: bool = False  # SIGTERM/SIGINT: cancel runs, record why, then exit (the stdio entry point only)
    backend: str = DEFAULT_BACKEND  # "durable" (runs outlive the server) or "local" (runs die with it): BACKENDS
    # The nested profile's defaults; None: the core's (project+local settings, no MCP servers of the run's own).
    setting_sources: list[str] | None = None
    use_all_setting_sources: bool = False  # CC_EXECUTOR_SETTING_SOURCES=all: the CLI's own default
    mcp_config: dict[str, Any] | None = None
    strict_mcp_config: bool | None = None
    allow_outside_roots: bool = False  # a cwd outside the host's roots is refused unless the operator lifts it
    # A caller's own mcp_config is refused unless the operator sets CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG=1: each server in
    # it is a command the nested CLI starts, whatever the permission mode, and the caller here is a model that may
    # be prompt-injected. (The library and the CLI, whose caller is the operator, allow it unless the variable is 0.)
    allow_run_mcp_config: bool = False
    permission_prompts: str | None = None  # deny | ask; None: the core's (deny)
    approval_timeout_s: float | None = None  # None: the core's (300 s)

    def __post_init__(self) -> None:
        if not 0 <= self.return_after_s <= MAX_RETURN_AFTER_S:
            raise SettingsError(f"return_after_s must be within 0..{MAX_RETURN_AFTER_S:g}, got {self.return_after_s}")
        if self.max_concurrent is not None and not 1 <= self.max_concurrent <= 1000:
            raise SettingsError(f"max_concurrent must be within 1..1000, got {self.max_concurrent}")
        if not 1000 <= self.max_result_chars <= 10_000_000:
            raise SettingsError(f"max_result_chars must be within 1000..10000000, got {self.max_result_chars}")
        if self.backend not in BACKENDS:
            raise SettingsError(f"{ENV_BACKEND} must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.retention_days is not None and not 0 < self.retention_days <= MAX_RETENTION_DAYS:
            raise SettingsError(
                f"{ENV_RETENTION_DAYS} must be a number of days within 0..{MAX_RETENTION_DAYS:g}, "
                f"got {self.retention_days:g}"
            )

    @property
    def durable(self) -> bool:
        """Runs outlive the server: shutting it down (EOF, SIGTERM) leaves them running. True for durable runs (a
        supervisor owns each) and for Temporal runs (the Temporal server owns them)."""
        return self.backend in ("durable", "temporal")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if environ is None else environ
        return cls(
            return_after_s=_float(env, ENV_RETURN_AFTER, DEFAULT_RETURN_AFTER_S),
            max_concurrent=_int(env, ENV_MAX_CONCURRENT, None),
            home=_path(env, ENV_HOME),
            claude_path=env.get(ENV_CLAUDE) or None,
            default_cwd=_path(env, ENV_DEFAULT_CWD),
            max_result_chars=_int(env, ENV_MAX_RESULT_CHARS, DEFAULT_MAX_RESULT_CHARS) or DEFAULT_MAX_RESULT_CHARS,
            model=env.get(ENV_MODEL) or None,
            backend=(env.get(ENV_BACKEND) or DEFAULT_BACKEND).strip().lower(),
            setting_sources=_sources(env),
            use_all_setting_sources=env.get(ENV_SETTING_SOURCES, "").strip() == "all",
            mcp_config=_json_file(env, ENV_MCP_CONFIG),
            strict_mcp_config=_bool(env, ENV_STRICT_MCP_CONFIG),
            allow_outside_roots=bool(_bool(env, ENV_ALLOW_OUTSIDE_ROOTS)),
            allow_run_mcp_config=bool(_bool(env, ENV_ALLOW_RUN_MCP_CONFIG)),
            permission_prompts=_choice(env, ENV_PERMISSION_PROMPTS, ("deny", "ask")),
            approval_timeout_s=_optional_float(env, ENV_APPROVAL_TIMEOUT),
            retention_days=_optional_float(env, ENV_RETENTION_DAYS),
        )

    def profile_defaults(self) -> dict[str, Any]:
        """Config fields the server sets under every run's own options (only those the operator chose)."""
        fields: dict[str, Any] = {}
        if self.use_all_setting_sources:
            fields["setting_sources"] = None
        elif self.setting_sources is not None:
            fields["setting_sources"] = self.setting_sources
        if self.mcp_config is not None:
            fields["mcp_config"] = self.mcp_config
        if self.strict_mcp_config is not None:
            fields["strict_mcp_config"] = self.strict_mcp_config
        if self.permission_prompts is not None:
            fields["permission_prompts"] = self.permission_prompts
        if self.approval_timeout_s is not None:
            fields["approval_timeout_s"] = self.approval_timeout_s
        return fields


def _sources(env: Mapping[str, str]) -> list[str] | None:
    raw = env.get(ENV_SETTING_SOURCES)
    if raw is None or raw.strip() == "all":
        return None
    sources = [part.strip() for part in raw.split(",") if part.strip()]
    for source in sources:
        if source not in _SOURCES:
            raise SettingsError(f"{ENV_SETTING_SOURCES}: {source!r} is not one of user, project, local (or 'all')")
    return sources


def _json_file(env: Mapping[str, str], name: str) -> dict[str, Any] | None:
    path = _path(env, name)
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{name}={str(path)!r} is not a readable JSON file: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{name}={str(path)!r} must hold a JSON object")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return raw


def _bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (1/0, true/false)")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = _optional_float(env, name)
    return default if value is None else value


def _optional_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None
