"""JSON shapes shared by several routes (dates, tree entries, commits)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hubgate.git.objects import CommitData
from hubgate.repos.base import Entry


def iso(value: dt.datetime | int) -> str:
    if isinstance(value, int):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def entry_json(entry: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {"type": entry.type, "oid": entry.oid, "size": entry.size, "path": entry.path}
    if entry.lfs:
        data["lfs"] = {"oid": entry.lfs.sha256, "size": entry.lfs.size, "pointerSize": entry.lfs.pointer_size}
        if entry.lfs.xet_hash:  # uploaded through Xet: Xet clients fetch it from the CAS
            data["xetHash"] = entry.lfs.xet_hash
    return data


def commit_json(commit: CommitData) -> dict[str, Any]:
    return {
        "id": commit.sha1,
        "title": commit.title,
        "message": commit.message,
        "date": iso(commit.timestamp),
        "authors": [{"user": commit.author}],
    }
