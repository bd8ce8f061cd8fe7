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


def test_every_direct_import_is_declared_with_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normal(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]): spec for spec in project["dependencies"]}
    imported: set[str] = set()
    for path in (ROOT / "src" / "hubgate").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = sorted(imported - set(sys.stdlib_module_names) - {"hubgate", "__future__"})
    owners = packages_distributions()
    missing = {name: owners.get(name) for name in third_party
               if not any(_normal(dist) in declared for dist in owners.get(name, [name]))}
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"
    unbounded = [spec for spec in declared.values() if "<" not in spec and "==" not in spec]
    assert not unbounded, f"dependencies without an upper bound: {unbounded}"
