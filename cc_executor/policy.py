"""The operator's policy: limits no caller can widen, read from the environment and applied in the core.

Whoever starts cc-executor (the MCP server's entry in a host's config, a shell running the CLI, a script using the
library) sets these variables; every run passes through ``Policy.enforce`` in ``runner.prepare_run``, so the library,
the CLI and every MCP tool obey the same limits. A refusal is a ``PolicyError`` whose sentence names the variable
that would allow the request. Nothing a caller sends can change the policy: it is read from this process's own
environment, never from a run's ``config.env``.

| variable | default | meaning |
|---|---|---|
| CC_EXECUTOR_ALLOWED_PERMISSION_MODES | every mode but bypassPermissions | modes callers may ask for (comma list) |
| CC_EXECUTOR_ALLOWED_DIRS | no limit | cwd and add_dirs must lie inside one of these (os.pathsep list, absolute) |
| CC_EXECUTOR_MAX_TIMEOUT_S | none | ceiling for timeout; a predicted or default timeout is capped to it |
| CC_EXECUTOR_MAX_TURNS | none | ceiling for max_turns; runs that name none get it |
| CC_EXECUTOR_MAX_BUDGET_USD | none | ceiling for max_budget_usd; runs that name none get it |
| CC_EXECUTOR_ALWAYS_ALLOWED_TOOLS | none | tool rules added to every run's allowed_tools (comma list) |
| CC_EXECUTOR_ALWAYS_DISALLOWED_TOOLS | none | tool rules added to every run's disallowed_tools (deny wins in claude) |
| CC_EXECUTOR_ALLOWED_SETTING_SOURCES | user,project,local | settings a run may load (drop `user`: no user hooks) |
| CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG | 1 | 0: a run's mcp_config may only be CC_EXECUTOR_MCP_CONFIG's |

Directories are compared after resolving symlinks and ``..`` on both sides, so neither a link inside an allowed
dir nor ``allowed/../elsewhere`` gets out.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cc_executor.errors import PolicyError
from cc_executor.models import MAX_TIMEOUT_S, PERMISSION_MODES, TOOL_RULE, RunRequest

__all__ = [
    "ENV_ALLOWED_DIRS",
    "ENV_ALLOWED_PERMISSION_MODES",
    "ENV_ALLOWED_SETTING_SOURCES",
    "ENV_ALLOW_RUN_MCP_CONFIG",
    "ENV_ALWAYS_ALLOWED_TOOLS",
    "ENV_ALWAYS_DISALLOWED_TOOLS",
    "ENV_MAX_BUDGET_USD",
    "ENV_MAX_TIMEOUT_S",
    "ENV_MAX_TURNS",
    "POLICY_VARIABLES",
    "Policy",
    "current_policy",
    "split_rules",
]

ENV_ALLOWED_PERMISSION_MODES = "CC_EXECUTOR_ALLOWED_PERMISSION_MODES"
ENV_ALLOWED_DIRS = "CC_EXECUTOR_ALLOWED_DIRS"
ENV_MAX_TIMEOUT_S = "CC_EXECUTOR_MAX_TIMEOUT_S"
ENV_MAX_TURNS = "CC_EXECUTOR_MAX_TURNS"
ENV_MAX_BUDGET_USD = "CC_EXECUTOR_MAX_BUDGET_USD"
ENV_ALWAYS_ALLOWED_TOOLS = "CC_EXECUTOR_ALWAYS_ALLOWED_TOOLS"
ENV_ALWAYS_DISALLOWED_TOOLS = "CC_EXECUTOR_ALWAYS_DISALLOWED_TOOLS"
ENV_ALLOWED_SETTING_SOURCES = "CC_EXECUTOR_ALLOWED_SETTING_SOURCES"
ENV_ALLOW_RUN_MCP_CONFIG = "CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG"
ENV_OPERATOR_MCP_CONFIG = "CC_EXECUTOR_MCP_CONFIG"  # the operator's own servers (a JSON file), always allowed
SETTING_SOURCES = ("user", "project", "local")
POLICY_VARIABLES = (
    ENV_ALLOWED_PERMISSION_MODES,
    ENV_ALLOWED_DIRS,
    ENV_MAX_TIMEOUT_S,
    ENV_MAX_TURNS,
    ENV_MAX_BUDGET_USD,
    ENV_ALWAYS_ALLOWED_TOOLS,
    ENV_ALWAYS_DISALLOWED_TOOLS,
    ENV_ALLOWED_SETTING_SOURCES,
    ENV_ALLOW_RUN_MCP_CONFIG,
)

_N = TypeVar("_N", int, float)

# bypassPermissions lets the model run anything as this user: an operator opts in, a caller never can.
DEFAULT_PERMISSION_MODES = tuple(mode for mode in PERMISSION_MODES if mode != "bypassPermissions")


@dataclass(frozen=True, slots=True)
class Policy:
    """What callers may ask for. The default policy only withholds bypassPermissions."""

    permission_modes: tuple[str, ...] = DEFAULT_PERMISSION_MODES
    allowed_dirs: tuple[Path, ...] | None = None  # None: no limit beyond the request's own checks
    max_timeout_s: float | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    always_allowed_tools: tuple[str, ...] = ()
    always_disallowed_tools: tuple[str, ...] = ()
    setting_sources: tuple[str, ...] = SETTING_SOURCES
    # None: a run may bring its own MCP servers (each is a command the nested CLI starts); else only these
    # (the operator's CC_EXECUTOR_MCP_CONFIG, or none at all).
    only_mcp_config: dict[str, Any] | None = None
    run_mcp_config_allowed: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Policy:
        """The policy set in ``environ`` (default: this process's environment); a PolicyError names a bad value."""
        env = os.environ if environ is None else environ
        return cls(
            permission_modes=_names(
                env.get(ENV_ALLOWED_PERMISSION_MODES),
                known=PERMISSION_MODES,
                default=DEFAULT_PERMISSION_MODES,
                name=ENV_ALLOWED_PERMISSION_MODES,
                what="permission mode",
            ),
            allowed_dirs=_dirs(env.get(ENV_ALLOWED_DIRS)),
            max_timeout_s=_number(env, ENV_MAX_TIMEOUT_S, upper=MAX_TIMEOUT_S),
            max_turns=_whole(env, ENV_MAX_TURNS),
            max_budget_usd=_number(env, ENV_MAX_BUDGET_USD),
            always_allowed_tools=_rules(env, ENV_ALWAYS_ALLOWED_TOOLS),
            always_disallowed_tools=_rules(env, ENV_ALWAYS_DISALLOWED_TOOLS),
            setting_sources=_names(
                env.get(ENV_ALLOWED_SETTING_SOURCES),
                known=SETTING_SOURCES,
                default=SETTING_SOURCES,
                name=ENV_ALLOWED_SETTING_SOURCES,
                what="setting source",
            ),
            run_mcp_config_allowed=_flag(env, ENV_ALLOW_RUN_MCP_CONFIG),
            only_mcp_config=None if _flag(env, ENV_ALLOW_RUN_MCP_CONFIG) else _operator_mcp_config(env),
        )

    def enforce(self, request: RunRequest) -> RunRequest:
        """``request`` within this policy: refused (PolicyError) if it asks for more than allowed, else returned with
        the ceilings filled in where it named no limit and the always-added tool rules appended."""
        config = request.config
        self._check_mode(config.permission_mode)
        self._check_dirs(request)
        self._check_profile(request)
        if config.timeout is not None and self.max_timeout_s is not None and config.timeout > self.max_timeout_s:
            raise PolicyError(
                f"timeout_s: {config.timeout:g} seconds is more than the operator allows "
                f"({ENV_MAX_TIMEOUT_S}={self.max_timeout_s:g}); ask for less or raise {ENV_MAX_TIMEOUT_S}",
                setting=ENV_MAX_TIMEOUT_S,
            )
        max_turns = _ceiling("max_turns", config.max_turns, self.max_turns, ENV_MAX_TURNS)
        budget = _ceiling("max_budget_usd", config.max_budget_usd, self.max_budget_usd, ENV_MAX_BUDGET_USD)
        update: dict[str, object] = {
            "max_turns": max_turns,
            "max_budget_usd": budget,
            "allowed_tools": _merged(config.allowed_tools, self.always_allowed_tools),
            "disallowed_tools": _merged(config.disallowed_tools, self.always_disallowed_tools),
        }
        if all(getattr(config, name) == value for name, value in update.items()):
            return request
        return request.model_copy(update={"config": config.model_copy(update=update)})

    def cap_timeout(self, request: RunRequest) -> RunRequest:
        """A timeout the caller left open (predicted from history, or the default) is capped to the ceiling."""
        timeout = request.config.timeout
        if self.max_timeout_s is None or timeout is None or timeout <= self.max_timeout_s:
            return request
        basis = f"{request.timeout_basis or 'default'}; capped at {ENV_MAX_TIMEOUT_S}={self.max_timeout_s:g}"
        config = request.config.model_copy(update={"timeout": self.max_timeout_s})
        return request.model_copy(update={"config": config, "timeout_basis": basis})

    def describe(self) -> dict[str, str]:
        """Each setting and its effective value, as `doctor` shows them."""
        dirs = os.pathsep.join(map(str, self.allowed_dirs)) if self.allowed_dirs is not None else "any (no limit)"
        return {
            ENV_ALLOWED_PERMISSION_MODES: ",".join(self.permission_modes),
            ENV_ALLOWED_DIRS: dirs,
            ENV_MAX_TIMEOUT_S: _or_none(self.max_timeout_s),
            ENV_MAX_TURNS: _or_none(self.max_turns),
            ENV_MAX_BUDGET_USD: _or_none(self.max_budget_usd),
            ENV_ALWAYS_ALLOWED_TOOLS: ",".join(self.always_allowed_tools) or "none",
            ENV_ALWAYS_DISALLOWED_TOOLS: ",".join(self.always_disallowed_tools) or "none",
            ENV_ALLOWED_SETTING_SOURCES: ",".join(self.setting_sources) or "none",
            ENV_ALLOW_RUN_MCP_CONFIG: "1" if self.run_mcp_config_allowed else "0",
        }

    def _check_profile(self, request: RunRequest) -> None:
        """Settings sources and MCP servers start commands of their own (hooks, servers): the operator decides."""
        config = request.config
        sources = SETTING_SOURCES if config.setting_sources is None else config.setting_sources  # None: all of them
        refused = [source for source in sources if source not in self.setting_sources]
        if refused:
            what = (
                "setting_sources: None loads every source, including"
                if config.setting_sources is None
                else ("setting_sources:")
            )
            raise PolicyError(
                f"{what} {refused[0]!r} is not allowed by the operator (allowed: {', '.join(self.setting_sources)}); "
                f"the operator can add it to {ENV_ALLOWED_SETTING_SOURCES}",
                setting=ENV_ALLOWED_SETTING_SOURCES,
            )
        if self.run_mcp_config_allowed or config.mcp_config is None or config.mcp_config == self.only_mcp_config:
            return
        raise PolicyError(
            "mcp_config: a run's own MCP servers are not allowed by the operator (each is a command the nested CLI "
            f"starts); only the operator's {ENV_OPERATOR_MCP_CONFIG} may be used. The operator can set "
            f"{ENV_ALLOW_RUN_MCP_CONFIG}=1",
            setting=ENV_ALLOW_RUN_MCP_CONFIG,
        )

    def _check_mode(self, mode: str) -> None:
        if mode in self.permission_modes:
            return
        allowed = ", ".join(self.permission_modes) or "none"
        raise PolicyError(
            f"permission_mode: {mode!r} is not allowed by the operator (allowed: {allowed}); the operator can add it "
            f"to {ENV_ALLOWED_PERMISSION_MODES}",
            setting=ENV_ALLOWED_PERMISSION_MODES,
        )

    def _check_dirs(self, request: RunRequest) -> None:
        if self.allowed_dirs is None:
            return
        named = [("cwd", request.cwd), *((f"add_dirs[{i}]", d) for i, d in enumerate(request.config.add_dirs))]
        for field, directory in named:
            real = Path(os.path.realpath(directory.expanduser()))
            if not any(real == root or real.is_relative_to(root) for root in self.allowed_dirs):
                roots = os.pathsep.join(map(str, self.allowed_dirs)) or "none"
                raise PolicyError(
                    f"{field}: {str(directory)!r} (really {str(real)!r}) is outside the directories the operator "
                    f"allows ({ENV_ALLOWED_DIRS}={roots}); work inside one of them, or the operator can add it to "
                    f"{ENV_ALLOWED_DIRS}",
                    setting=ENV_ALLOWED_DIRS,
                )


def current_policy() -> Policy:
    """The policy in force for this process, read from its environment now (changes apply to the next run)."""
    return Policy.from_env()


# --- parsing ----------------------------------------------------------------------------------------------------


def _names(
    value: str | None, *, known: tuple[str, ...], default: tuple[str, ...], name: str, what: str
) -> tuple[str, ...]:
    """A comma (or space) list of ``known`` names, deduplicated in order; ``default`` when unset or blank."""
    if value is None or not value.strip():
        return default
    names = [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]
    unknown = [item for item in names if item not in known]
    if unknown:
        raise PolicyError(
            f"{name}: unknown {what} {unknown[0]!r}; expected a comma list of {', '.join(known)}", setting=name
        )
    return tuple(dict.fromkeys(names))


def _dirs(value: str | None) -> tuple[Path, ...] | None:
    if value is None or not value.strip():
        return None
    roots = []
    for part in (p.strip() for p in value.split(os.pathsep)):
        if not part:
            continue
        path = Path(part).expanduser()
        if not path.is_absolute():
            raise PolicyError(f"{ENV_ALLOWED_DIRS}: {part!r} is not an absolute path", setting=ENV_ALLOWED_DIRS)
        real = Path(os.path.realpath(path))
        if not real.is_dir():
            raise PolicyError(f"{ENV_ALLOWED_DIRS}: {part!r} is not a directory", setting=ENV_ALLOWED_DIRS)
        roots.append(real)
    return tuple(roots)


def _number(env: Mapping[str, str], name: str, *, upper: float | None = None) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or (upper is not None and value > upper):
        bound = f" and at most {upper:g}" if upper is not None else ""
        raise PolicyError(f"{name}: {raw!r} is not a number greater than 0{bound}", setting=name)
    return value


def _whole(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise PolicyError(f"{name}: {raw!r} is not a whole number of at least 1", setting=name)
    return int(raw)


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise PolicyError(f"{name}: {raw!r} is not 0 or 1", setting=name)


def _operator_mcp_config(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The operator's own MCP servers (the JSON file CC_EXECUTOR_MCP_CONFIG names), the only ones then allowed."""
    raw = env.get(ENV_OPERATOR_MCP_CONFIG, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(Path(raw).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyError(
            f"{ENV_OPERATOR_MCP_CONFIG}: {raw!r} is not a readable JSON file ({exc})", setting=ENV_OPERATOR_MCP_CONFIG
        ) from None
    return value if isinstance(value, dict) else None


def split_rules(raw: str) -> tuple[str, ...]:
    """A comma list of tool rules; commas inside a rule's parentheses ("Bash(a,b)") do not split it. Not checked."""
    rules, depth, current = [], 0, ""
    for char in raw:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            rules.append(current.strip())
            current = ""
        else:
            current += char
    rules.append(current.strip())
    return tuple(rule for rule in rules if rule)


def _rules(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = split_rules(env.get(name, ""))
    for rule in found:
        if not TOOL_RULE.fullmatch(rule):
            raise PolicyError(
                f"{name}: {rule!r} is not a tool rule (e.g. 'Read', 'mcp__server__tool', 'Bash(git log:*)')",
                setting=name,
            )
    return found


def _ceiling(field: str, asked: _N | None, ceiling: _N | None, setting: str) -> _N | None:
    if ceiling is None:
        return asked
    if asked is None:
        return ceiling
    if asked > ceiling:
        raise PolicyError(
            f"{field}: {asked:g} is more than the operator allows ({setting}={ceiling:g}); ask for less or raise "
            f"{setting}",
            setting=setting,
        )
    return asked


def _merged(rules: Iterable[str], added: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*rules, *added]))


def _or_none(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"
