"""The host's roots: where a run works when the caller gave no ``cwd``, and the fence around the directories a
run may be pointed at.

Roots come through the SDK's ``Resolve(ListRoots())`` mechanism, which works in both protocol eras (an
input_required round in 2026-07-28, a classic ``roots/list`` request in 2025-11-25; ~2 ms; Claude Code answers with
its working directory). A host that did not declare the roots capability is not asked.

Rules (issue 13): no ``cwd`` → one root: it; several: an error listing them; none: CC_EXECUTOR_DEFAULT_CWD, else
"cwd is required". When the host gave roots, a ``cwd`` or ``add_dirs`` outside all of them is refused (symlinks
resolved first) unless the operator set CC_EXECUTOR_ALLOW_OUTSIDE_ROOTS: a prompt-injected model must not point
Claude Code at /etc or ~.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import ListRoots
from mcp.types import ListRootsResult

ENV_ALLOW_OUTSIDE_ROOTS = "CC_EXECUTOR_ALLOW_OUTSIDE_ROOTS"


def ask_host_roots(ctx: Context) -> ListRoots | None:
    """Resolver: ask for the roots only when the host declared it has some to give."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    return ListRoots()


def root_paths(result: ListRootsResult | None) -> list[Path]:
    """The host's file:// roots as resolved directories (others, e.g. https://, cannot be a cwd and are skipped)."""
    if result is None:
        return []
    paths: list[Path] = []
    for root in result.roots:
        uri = urlparse(str(root.uri))
        if uri.scheme != "file":
            continue
        path = Path(os.path.realpath(unquote(uri.path)))
        if path not in paths:
            paths.append(path)
    return paths


def choose_cwd(cwd: str | None, roots: list[Path], default_cwd: Path | None) -> Path:
    """Where the run works: the caller's cwd, else the host's single root, else the server default."""
    if cwd is not None:
        return Path(cwd).expanduser()
    if len(roots) == 1:
        return roots[0]
    if len(roots) > 1:
        listed = ", ".join(str(r) for r in roots)
        raise ToolError(f"cwd: is required: the host has several roots ({listed}); pass cwd, one of them or inside one")
    if default_cwd is not None:
        return default_cwd
    raise ToolError(
        "cwd: is required (the server has no CC_EXECUTOR_DEFAULT_CWD): pass the absolute path of the directory "
        "to work in"
    )


def check_inside_roots(path: Path, roots: list[Path], *, allow_outside: bool, what: str = "cwd") -> None:
    """Refuse ``path`` outside every root (after resolving symlinks), unless the operator allowed it."""
    if not roots or allow_outside:
        return
    real = Path(os.path.realpath(path.expanduser()))
    if any(real == root or real.is_relative_to(root) for root in roots):
        return
    listed = ", ".join(str(r) for r in roots)
    raise ToolError(
        f"{what} {str(path)!r} is outside the host's roots ({listed}); work inside them, or the operator can set "
        f"{ENV_ALLOW_OUTSIDE_ROOTS}=1 on the server to lift this"
    )
