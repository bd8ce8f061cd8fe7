"""A commit of N files costs O(N log N) at most (issue 6, item 8), counted in executed lines, not time.

The measured timings are in bench/commit_scale.py (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

from hubgate.repos.commits import AddBytes, DeleteFile, DeleteFolder, LfsPolicy, Operation, TreeEdit, new_commit_objects
from hubgate.storage.blobs import LocalBlobStore


def _paths(n: int, tag: str) -> list[str]:
    return [f"{tag}{i % 7}/d{i // 40}/f{i}.txt" for i in range(n)]


def _lines_executed(tmp: Path, n: int) -> int:
    """Lines of hubgate code run to commit n new files onto a tree of n files, deleting n/2 files
    and n/80 folders of it."""
    blobs = LocalBlobStore(tmp / "blobs", tmp / "tmp")
    policy = LfsPolicy(threshold=1 << 30, patterns=[])
    base = TreeEdit({}, [])
    base.apply([AddBytes(p, b"x") for p in _paths(n, "old")], blobs, policy)
    old = sorted(base.files)
    ops: list[Operation] = [AddBytes(p, b"y") for p in _paths(n, "new")]
    ops += [DeleteFile(p) for p in old[: n // 2]]
    folders = sorted({p.rsplit("/", 1)[0] for p in old[n // 2 :]})
    ops += [DeleteFolder(f) for f in folders[-(n // 80) :]]
    count = 0

    def tracer(frame: FrameType, event: str, _arg: Any) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.endswith(("commits.py", "objects.py")):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        edit = TreeEdit(dict(base.files), [])
        edit.apply(ops, blobs, policy)
        new_commit_objects(edit, None, "a", "a@example.com", "scale", "")
    finally:
        sys.settrace(None)
    return count


def test_commit_work_grows_linearly(tmp_path: Path) -> None:
    small = _lines_executed(tmp_path / "s", 1000)
    large = _lines_executed(tmp_path / "l", 8000)
    # 8x the files: ~8x the lines if linear, ~64x if quadratic (the old code: 45x here)
    assert large < 10 * small, (small, large)
