"""Re-hash a pulled copy against its lock: every missing, changed or extra file."""

from __future__ import annotations

from dataclasses import dataclass, field

from hubgate.client.layout import Target, sha256_of
from hubgate.client.lockfile import Lock


@dataclass
class Report:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def lines(self) -> list[str]:
        return ([f"missing  {p}" for p in self.missing] + [f"changed  {p}" for p in self.changed]
                + [f"extra    {p}" for p in self.extra])


def verify(lock: Lock, where: Target) -> Report:
    report = Report()
    for repo in lock.repos:
        for f in repo.files:
            report.checked += 1
            path = where.location(repo, f)
            shown = f"{repo.ref.repo_id}@{repo.commit[:12]} {f.path} ({path})"
            if not path.is_file():
                report.missing.append(shown)
            elif path.stat().st_size != f.size or sha256_of(path) != f.sha256:
                report.changed.append(shown)
        elsewhere = where.revision_points_elsewhere(repo)
        if elsewhere:
            report.changed.append(f"{repo.label}: {elsewhere}")
        locked = {f.path for f in repo.files}
        report.extra += [f"{repo.ref.repo_id}@{repo.commit[:12]} {p}" for p in sorted(where.listing(repo)) if p not in locked]
    return report
