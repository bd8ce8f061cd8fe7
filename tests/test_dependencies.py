"""Every package hubgate imports is declared in pyproject.toml, with bounds."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _spec_names(specs: list[str]) -> dict[str, str]:
    return {_normal(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]): spec for spec in specs}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Top-level package names imported at run time, and those imported only for type checking."""
    run_time: set[str] = set()
    typing_only: set[str] = set()

    def visit(node: ast.AST, into: set[str]) -> None:
        if isinstance(node, ast.Import):
            into.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            into.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only if _type_checking(node) else into)

    visit(tree, run_time)
    return run_time, typing_only


def test_every_direct_import_is_declared_with_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    declared = _spec_names(project["dependencies"])
    # An optional backend (the S3 store) may import what its extra declares; type-only imports
    # are satisfied by the test extra, which installs the stubs mypy reads.
    optional = _spec_names([spec for name, specs in extras.items() if name != "test" for spec in specs])
    stubs = _spec_names(extras.get("test", []))
    run_time: set[str] = set()
    typing_only: set[str] = set()
    for path in (ROOT / "src" / "hubgate").rglob("*.py"):
        found, only_types = _imports(ast.parse(path.read_text(), str(path)))
        run_time |= found
        typing_only |= only_types
    owners = packages_distributions()

    def undeclared(names: set[str], allowed: dict[str, str]) -> dict[str, list[str] | None]:
        third_party = sorted(names - set(sys.stdlib_module_names) - {"hubgate", "__future__"})
        return {name: owners.get(name) for name in third_party
                if not any(_normal(dist) in allowed for dist in owners.get(name, [name]))}

    missing = undeclared(run_time, {**declared, **optional}) | undeclared(typing_only - run_time, {**declared, **stubs})
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    unbounded = [spec for spec in {**declared, **optional}.values() if "<" not in spec and "==" not in spec]
    assert not unbounded, f"dependencies without an upper bound: {unbounded}"
