"""What a token may do: a role (`read`, `write`) or fine-grained grants over repo patterns and
namespaces, and how the Hub's `whoami-v2` describes them.

A grant never adds to what the token's user may do: access needs both the user's right and the
token's (the single authorisation point checks the user first, then `Scope.allows`).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

from hubgate import constants
from hubgate.errors import BadRequest
from hubgate.ids import RepoRef

ROLES = ("read", "write")
FINE_GRAINED = "fineGrained"
LOCKED = "locked"  # a read token bound to a lockfile's commits and files (`hubgate token create --lock`)
# The Hub's fine-grained permission names for each role.
PERMISSIONS = {"read": ["repo.content.read"], "write": ["repo.content.read", "repo.write"]}
_TYPE_PREFIX = {"datasets/": "dataset", "spaces/": "space", "models/": "model"}
_PATTERN = re.compile(r"^[A-Za-z0-9._*?\[\]-]+/[A-Za-z0-9._*?\[\]-]+$")


@dataclass(frozen=True)
class Grant:
    """`role` over the repos of `repo_type` whose id matches `pattern` (a namespace grant: `kind`
    "namespace" and a plain name, covering every repo of that user or organisation)."""

    kind: str  # "repo" | "namespace"
    pattern: str
    role: str
    repo_type: str | None = None

    def covers(self, ref: RepoRef) -> bool:
        if self.kind == "namespace":
            return ref.namespace.lower() == self.pattern.lower()
        return ref.type == self.repo_type and fnmatch.fnmatchcase(ref.repo_id.lower(), self.pattern.lower())

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "pattern": self.pattern, "role": self.role, "type": self.repo_type}


def _role(text: str, what: str) -> str:
    if text not in ROLES:
        raise BadRequest(f"{what}: the role must be read or write, not {text!r}")
    return text


def parse_repo_grant(text: str) -> Grant:
    """`[datasets/|spaces/]NAMESPACE/PATTERN=read|write`, e.g. `acme/tts-*=read`."""
    pattern, sep, role = text.rpartition("=")
    if not sep:
        raise BadRequest(f"{text!r}: expected PATTERN=read|write, e.g. 'acme/tts-*=read'")
    repo_type = "model"
    for prefix, kind in _TYPE_PREFIX.items():
        if pattern.startswith(prefix):
            repo_type, pattern = kind, pattern.removeprefix(prefix)
    if not _PATTERN.match(pattern):
        raise BadRequest(f"{text!r}: the pattern must be NAMESPACE/NAME, either part with * or ? wildcards")
    return Grant("repo", pattern, _role(role, text), repo_type)


def parse_namespace_grant(text: str) -> Grant:
    """`ORG=read|write`: every repo of that organisation (or user)."""
    name, sep, role = text.rpartition("=")
    if not sep or not re.match(r"^[A-Za-z0-9._-]+$", name):
        raise BadRequest(f"{text!r}: expected ORG=read|write, e.g. 'acme=read'")
    return Grant("namespace", name, _role(role, text))


@dataclass(frozen=True)
class Pin:
    """One locked repo of a lock-bound token: the commit and the paths it may download."""

    repo_type: str
    repo_id: str
    commit: str
    paths: frozenset[str]

    def covers(self, ref: RepoRef) -> bool:
        return ref.type == self.repo_type and ref.repo_id.lower() == self.repo_id.lower()

    def to_json(self) -> dict[str, object]:
        return {"type": self.repo_type, "repo": self.repo_id, "commit": self.commit, "paths": sorted(self.paths)}


@dataclass(frozen=True)
class Scope:
    """A token's rights: its role, (role `fineGrained`) its grants, or (role `locked`) its pins."""

    role: str
    grants: tuple[Grant, ...] = ()
    pins: tuple[Pin, ...] = ()

    @property
    def fine_grained(self) -> bool:
        return self.role == FINE_GRAINED

    @property
    def locked(self) -> bool:
        return self.role == LOCKED

    def pinned(self, ref: RepoRef, commit: str | None = None, path: str | None = None) -> bool:
        """Whether a lock-bound token covers this repo (and this file at this commit, when given)."""
        return any(p.covers(ref) and (commit is None or (p.commit == commit and path in p.paths)) for p in self.pins)

    def allows(self, ref: RepoRef, write: bool) -> bool:
        if self.locked:
            return not write and self.pinned(ref)
        if not self.fine_grained:
            return self.role == "write" or not write
        return any(g.covers(ref) and (g.role == "write" or not write) for g in self.grants)

    def may_create_in(self, namespace: str) -> bool:
        if not self.fine_grained:
            return self.role == "write"
        return any(g.kind == "namespace" and g.role == "write" and g.pattern.lower() == namespace.lower() for g in self.grants)

    def dump(self) -> str | None:
        if self.locked:
            return json.dumps({"pins": [p.to_json() for p in self.pins]})
        return json.dumps([g.to_json() for g in self.grants]) if self.fine_grained else None

    @classmethod
    def load(cls, role: str, grants: str | None) -> Scope:
        items: Any = json.loads(grants) if grants else []
        if role == LOCKED:
            pins = tuple(Pin(i["type"], i["repo"], i["commit"], frozenset(i["paths"])) for i in items["pins"])
            return cls(role, pins=pins)
        return cls(role, tuple(Grant(i["kind"], i["pattern"], i["role"], i.get("type")) for i in items))

    def describe(self) -> str:
        if self.locked:
            return "locked to " + ", ".join(f"{p.repo_id}@{p.commit[:12]} ({len(p.paths)} files)" for p in self.pins)
        if not self.fine_grained:
            return self.role
        return ", ".join(f"{_label(g)}={g.role}" for g in self.grants)

    def whoami(self) -> dict[str, object]:
        """The `fineGrained` object of whoami-v2, in the Hub's vocabulary."""
        scoped = []
        for grant in self.grants:
            entity_type = "org" if grant.kind == "namespace" else grant.repo_type
            scoped.append({"entity": {"type": entity_type, "name": grant.pattern}, "permissions": PERMISSIONS[grant.role]})
        return {"canReadGatedRepos": True, "global": [], "scoped": scoped}


def _label(grant: Grant) -> str:
    if grant.kind == "namespace":
        return f"org:{grant.pattern}"
    return f"{constants.REPO_TYPE_PREFIX[grant.repo_type or 'model']}{grant.pattern}"


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> dt.timedelta | None:
    """`90s`, `15m`, `12h`, `30d`, `2w`; None if `text` is not a duration."""
    found = _DURATION.match(text.strip())
    return dt.timedelta(**{_UNITS[found.group(2)]: int(found.group(1))}) if found else None


def parse_expiry(text: str, now: dt.datetime) -> dt.datetime:
    """`90s`, `15m`, `12h`, `30d`, `2w`, or an ISO date/time (UTC unless it says otherwise); naive UTC."""
    try:
        duration = parse_duration(text)
        if duration is not None:
            expires = now + duration
        else:
            parsed = dt.datetime.fromisoformat(text.strip())
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            expires = parsed
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"--expires {text!r}: expected a duration (90s, 12h, 30d) or a date (2026-12-31)") from exc
    if expires <= now:
        raise BadRequest(f"--expires {text!r} is not in the future")
    return expires
