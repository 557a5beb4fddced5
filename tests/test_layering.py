"""The layering rule of issue 10, read from the code's imports: the front ends (the MCP server in server/, installed as
cc_executor_mcp, and the command line in cc_executor/cli/) reach runs only through the public API and the backend
seam. They never import the engine (cc_executor.engine) or the registry (cc_executor.registry): not at the top, not
inside a function, not under TYPE_CHECKING, not through ``from cc_executor import engine``, a relative import or
``importlib.import_module``. A new need goes through the ``Backend`` protocol or a public module (then add it to
``PUBLIC_MODULES`` below, on purpose).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Installed package name -> its folder. server/ is installed as cc_executor_mcp (see pyproject.toml).
PACKAGE_DIRS = {"cc_executor_mcp": ROOT / "server", "cc_executor": ROOT / "cc_executor"}
FRONT_ENDS = {"cc_executor_mcp": ROOT / "server", "cc_executor.cli": ROOT / "cc_executor" / "cli"}

FORBIDDEN = ("cc_executor.engine", "cc_executor.registry")
PUBLIC_MODULES = frozenset(
    {
        "cc_executor",
        "cc_executor.api",
        "cc_executor.doctor",
        "cc_executor.errors",
        "cc_executor.ids",
        "cc_executor.models",
        "cc_executor.paths",
        "cc_executor.retention",
        "cc_executor.task_lists",
        "cc_executor.text",
        "cc_executor.timeparse",
        "cc_executor.transcript_text",
        "cc_executor.validation",
        "cc_executor.worktrees",  # merge_run / discard_run / run_diff / check_requests (issue 14)
    }
)
# Whole packages a front end may use: the seam, and the bundled fake Messages API (what `cc-executor demo` runs).
PUBLIC_PACKAGES = ("cc_executor.backends", "cc_executor.testing")
_IMPORT_FUNCTIONS = ("import_module", "__import__", "LazyModule")  # LazyModule: server/startup.py


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} imports {self.module}"


def module_name(path: Path, package: str, directory: Path) -> str:
    parts = list(path.relative_to(directory).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of ours (so ``from pkg import name`` imports it)."""
    for package, directory in PACKAGE_DIRS.items():
        if name == package or name.startswith(package + "."):
            place = directory.joinpath(*name.split(".")[len(package.split(".")) :])
            return place.with_suffix(".py").is_file() or (place / "__init__.py").is_file()
    return False


def imports_in(source: str, module: str, *, is_package: bool, path: Path) -> Iterator[Import]:
    """Every module ``source`` (the text of ``module``) imports, wherever the import statement sits."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            yield Import(path, node.lineno, base)
            for alias in node.names:
                if is_module(f"{base}.{alias.name}"):
                    yield Import(path, node.lineno, f"{base}.{alias.name}")
        elif isinstance(node, ast.Call) and _called_name(node.func) in _IMPORT_FUNCTIONS and node.args:
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                name = target.value.lstrip(".")  # a relative name (".run_tools", __package__) as `from . import`
                yield Import(path, node.lineno, _absolute(name or None, len(target.value) - len(name), package))


def _absolute(name: str | None, level: int, package: str) -> str:
    if level == 0:
        return name or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def front_end_imports() -> Iterator[tuple[str, Import]]:
    """(the front end's package, one import) for every import in every module of every front end."""
    for package, directory in FRONT_ENDS.items():
        for path in sorted(directory.rglob("*.py")):
            module = module_name(path, package, directory)
            source = path.read_text(encoding="utf-8")
            for found in imports_in(source, module, is_package=path.name == "__init__.py", path=path):
                yield package, found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def forbidden(found: Import) -> bool:
    return any(_within(found.module, prefix) for prefix in FORBIDDEN)


def outside_public_api(found: Import, own_package: str) -> bool:
    """A cc_executor module that is neither public, nor the seam, nor the front end's own package."""
    module = found.module
    if not _within(module, "cc_executor") or _within(module, own_package):
        return False
    return module not in PUBLIC_MODULES and not any(_within(module, prefix) for prefix in PUBLIC_PACKAGES)


def test_front_ends_never_import_the_engine_or_the_registry() -> None:
    found = [str(i) for _, i in front_end_imports() if forbidden(i)]
    assert found == [], "front ends must use the Backend seam or a public module:\n" + "\n".join(found)


def test_front_ends_import_only_the_public_api_and_the_seam() -> None:
    found = [str(i) for package, i in front_end_imports() if outside_public_api(i, package)]
    assert found == [], "not part of the public API (add it to PUBLIC_MODULES on purpose):\n" + "\n".join(found)


def test_the_front_ends_are_where_the_rule_looks() -> None:
    """The rule cannot pass by looking at nothing: both front ends are found and they do import the seam."""
    seen = list(front_end_imports())
    assert {package for package, _ in seen} == set(FRONT_ENDS)
    for package in FRONT_ENDS:
        assert any(_within(i.module, "cc_executor.backends") for p, i in seen if p == package), package


_EVERY_FORM = """
from __future__ import annotations
from typing import TYPE_CHECKING
import cc_executor.engine.process
from cc_executor.registry.store import RunStore
from cc_executor import registry
from .. import engine
from ..engine import slots as renamed
if TYPE_CHECKING:
    from cc_executor.engine.runner import Run
def later() -> None:
    import importlib
    from cc_executor.registry import transcripts
    importlib.import_module("cc_executor.engine.cancel")
    __import__("cc_executor.registry.recovery")
    LazyModule("..engine.attempt", __package__)
from cc_executor import LocalBackend, models
from cc_executor.backends import RunFilter
from . import common
"""


@pytest.mark.parametrize(
    ("module", "is_package"), [("cc_executor.cli.example", False), ("cc_executor.cli", True)], ids=["module", "init"]
)
def test_the_check_sees_every_form_of_a_forbidden_import(module: str, is_package: bool) -> None:
    path = ROOT / "cc_executor" / "cli" / ("__init__.py" if is_package else "example.py")
    found = list(imports_in(_EVERY_FORM, module, is_package=is_package, path=path))

    bad = sorted({(i.line, i.module) for i in found if forbidden(i)})
    assert bad == [
        (4, "cc_executor.engine.process"),
        (5, "cc_executor.registry.store"),
        (6, "cc_executor.registry"),
        (7, "cc_executor.engine"),
        (8, "cc_executor.engine"),
        (8, "cc_executor.engine.slots"),
        (10, "cc_executor.engine.runner"),
        (13, "cc_executor.registry"),
        (13, "cc_executor.registry.transcripts"),
        (14, "cc_executor.engine.cancel"),
        (15, "cc_executor.registry.recovery"),
        (16, "cc_executor.engine.attempt"),
    ]
    allowed = {i.module for i in found if not forbidden(i) and not outside_public_api(i, "cc_executor.cli")}
    assert {"cc_executor", "cc_executor.models", "cc_executor.backends", "cc_executor.cli.common"} <= allowed
    assert not any(outside_public_api(i, "cc_executor_mcp") for i in found if i.module == "cc_executor.models")
