"""Every route declares the action it performs, and only the app's one authorisation point checks it."""

from __future__ import annotations

import ast
from pathlib import Path

import hubgate.http.routes as routes_package
from hubgate.auth.gate import Action
from hubgate.http.routes import ALL

ROUTES_DIR = Path(routes_package.__file__).parent


def test_every_route_declares_an_action() -> None:
    assert ALL, "no routes found"
    undeclared = [
        f"{sorted(r.methods)} {r.pattern.pattern}" for r in ALL if not (isinstance(r.action, Action) or callable(r.action))
    ]
    assert undeclared == []


def test_no_handler_checks_access_by_hand() -> None:
    """Route modules neither import the access rules nor call a check themselves."""
    offenders = []
    for module in sorted(ROUTES_DIR.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("hubgate.auth.policy", "hubgate.auth"):
                offenders.append(f"{module.name}: imports {node.module}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("check_") and node.attr in {
                "check_read", "check_write", "check_admin", "check_download", "check_namespace_write"
            }:
                offenders.append(f"{module.name}:{node.lineno}: calls {node.attr}")
            if isinstance(node, ast.Attribute) and node.attr in ("readable_repo", "writable_repo"):
                offenders.append(f"{module.name}:{node.lineno}: {node.attr}")
    assert offenders == []


def test_repo_routes_have_a_repo_action() -> None:
    """A route whose path names a repo reads or changes it: PUBLIC would skip the repo's access rules."""
    loose = [r.pattern.pattern for r in ALL if "repo_id" in r.pattern.groupindex and r.action in (Action.PUBLIC, Action.AUTHENTICATED)]
    assert loose == []
