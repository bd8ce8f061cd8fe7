"""The audit log: one JSON line per event, appended to a file per UTC day under `data/audit/`.

Each record is one `write()` on a file opened with O_APPEND, so records from every worker
process and the CLI never interleave, and a record is written only once what it reports has
happened (a download once its last byte is sent, a commit once it is committed): a crash can lose
the record of something in flight, never record something that did not happen. A line cut by a
crash is skipped when reading. Files older than the retention are deleted when a day begins.
Tokens are never recorded, only their id and name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubgate.auth.scopes import parse_duration

FILE_MODE = 0o600


@dataclass(frozen=True)
class AuditQuery:
    repo: str | None = None  # "acme/x", "datasets/acme/x"
    user: str | None = None
    since: dt.datetime | None = None  # aware, UTC
    kind: str | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        if self.repo and event.get("repo") != self.repo:
            return False
        if self.user and event.get("user") != self.user:
            return False
        return not self.kind or event.get("kind") == self.kind


class AuditLog:
    def __init__(self, folder: Path, retention_days: int) -> None:
        self.folder = folder
        self.retention_days = retention_days

    def record(self, kind: str, **fields: Any) -> None:
        now = dt.datetime.now(dt.UTC)
        event = {"at": now.isoformat(timespec="milliseconds"), "kind": kind}
        event.update({k: v for k, v in fields.items() if v is not None})
        line = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()
        path = self.folder / f"{now:%Y-%m-%d}.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            fresh = os.fstat(fd).st_size == 0
            os.write(fd, line)
        finally:
            os.close(fd)
        if fresh:
            self.prune(now)

    def prune(self, now: dt.datetime) -> None:
        """Delete the day files older than the retention (0: keep everything)."""
        if self.retention_days <= 0:
            return
        oldest = (now - dt.timedelta(days=self.retention_days)).date()
        for path in self._files():
            if _day(path) < oldest:
                path.unlink(missing_ok=True)

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.jsonl") if _is_day(p))

    def events(self, query: AuditQuery) -> Iterator[dict[str, Any]]:
        """Matching events, oldest first."""
        for path in self._files():
            if query.since is not None and _day(path) < query.since.date():
                continue
            with path.open("rb") as handle:
                for raw in handle:
                    try:
                        event = json.loads(raw)
                    except ValueError:  # a line a crash cut short
                        continue
                    if query.since is not None and dt.datetime.fromisoformat(event["at"]) < query.since:
                        continue
                    if query.matches(event):
                        yield event


def _is_day(path: Path) -> bool:
    try:
        _day(path)
    except ValueError:
        return False
    return True


def _day(path: Path) -> dt.date:
    return dt.date.fromisoformat(path.stem)


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """`2026-12-01`, `2026-12-01T10:00`, or a duration back from now (`90m`, `24h`, `7d`); aware UTC."""
    back = parse_duration(text)
    if back is not None:
        return now - back
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
