"""`hubgate lock | pull | verify | bundle`: the client commands, light enough to run on every boot.

Nothing here imports the server (starlette, SQLAlchemy, dulwich, uvicorn); only `bundle import
--data`, which loads a bundle into a server's store, reaches for the server's own code.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from hubgate.client import bundle as bundles
from hubgate.client.layout import Target, is_present, show, target
from hubgate.client.lockfile import (
    Lock,
    Request,
    diff,
    read_lock,
    read_spec,
    write_lock,
)
from hubgate.errors import HubError

if TYPE_CHECKING:  # httpx loads only when a command goes to the network
    from hubgate.client.download import Summary
    from hubgate.client.remote import Hubs

T = TypeVar("T")

LockOpt = Annotated[Path, typer.Option("--lock", "-l", help="The lockfile.")]
EndpointOpt = Annotated[list[str] | None, typer.Option(
    "--endpoint", "-e", help="Hub URL, tried in order (repeatable); URL#VAR takes that endpoint's token from $VAR. "
    "Default: the lock's endpoints, else HF_ENDPOINT, else huggingface.co.")]
LocalDirOpt = Annotated[Path | None, typer.Option("--local-dir",
        help="A plain folder (DIR/namespace/name/...) instead of the HF cache.")]
CacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir",
        help="The HF cache (default: HF_HUB_CACHE or ~/.cache/huggingface/hub).")]


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except HubError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except HubError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


@contextmanager
def _hubs(given: list[str] | None, lock: Lock | None = None) -> Iterator[Hubs]:
    from hubgate.client.remote import Hubs, endpoints

    hubs = Hubs(_run(lambda: endpoints(given or [], lock.endpoints if lock else ())))
    try:
        yield hubs
    finally:
        hubs.close()


def lock(
    repos: Annotated[list[str] | None, typer.Argument(
        help="REPO or REPO@REVISION (branch, tag or commit).", show_default=False)] = None,
    repo_type: Annotated[str, typer.Option("--type", help="model, dataset or space (for the REPO arguments).")] = "model",
    include: Annotated[list[str] | None, typer.Option("--include", help="Only paths matching this glob (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude",
            help="Leave out paths matching this glob (repeatable).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The lockfile to write.")] = Path("hubgate.lock"),
    endpoint: EndpointOpt = None,
    spec: Annotated[Path | None, typer.Option("--spec",
            help="TOML file of [[repo]] tables (id, type, revision, include, exclude).")] = None,
    upgrade: Annotated[bool, typer.Option("--upgrade", help="Re-resolve the lock's repos, show what changed, write.")] = False,
    check: Annotated[bool, typer.Option("--check",
            help="Re-resolve, show what changed, exit 1 if anything did; writes nothing.")] = False,
    sbom: Annotated[Path | None, typer.Option("--sbom", help="Also write a CycloneDX SBOM of the lock to this file.")] = None,
) -> None:
    """Pin repos: the commit each revision names now and every file's size, SHA-256 and git blob id."""
    from hubgate.client.locking import resolve
    from hubgate.client.sbom import sbom as make_sbom

    old = _run(lambda: read_lock(output)) if output.exists() else None
    if repos:
        requests = _run(lambda: [Request.parse(r, repo_type, tuple(include or ()), tuple(exclude or ())) for r in repos])
    elif spec is not None:
        requests = _run(lambda: read_spec(spec))
    elif old is not None and (upgrade or check):
        requests = [r.request for r in old.repos]
    elif old is not None and sbom is not None:
        sbom.write_text(make_sbom(old))
        typer.echo(f"SBOM of {output} written to {sbom}")
        return
    else:
        typer.echo("error: name repos (REPO[@REVISION] or --spec FILE), or use --upgrade/--check on an existing lock", err=True)
        raise typer.Exit(2)
    endpoint_texts = tuple(endpoint or (old.endpoints if old else ()))
    with _hubs(list(endpoint_texts)) as hubs:
        new = _run(lambda: resolve(hubs, requests, endpoint_texts))
    changes = diff(old, new)
    for line in changes:
        typer.echo(line)
    if check:
        if changes:
            typer.echo(f"{output} is out of date: upstream moved (run `hubgate lock --upgrade`)", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    write_lock(new, output)
    files = sum(len(r.files) for r in new.repos)
    typer.echo(f"{output}: {len(new.repos)} repos, {files} files" + ("" if changes or old is None else " (unchanged)"))
    if sbom is not None:
        sbom.write_text(make_sbom(new))
        typer.echo(f"SBOM written to {sbom}")


def pull(
    lock_path: LockOpt = Path("hubgate.lock"),
    endpoint: EndpointOpt = None,
    local_dir: LocalDirOpt = None,
    cache_dir: CacheDirOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="Parallel transfers.")] = 8,
    range_size: Annotated[int | None, typer.Option("--range-size",
            help="Files of at least twice this many bytes come in parallel ranges of this size (default 16 MiB).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download exactly what the lock names, verified, into the HF cache (or --local-dir)."""
    the_lock = _run(lambda: read_lock(lock_path))
    where = target(local_dir, cache_dir)
    files = the_lock.all_files()
    if all(is_present(where, repo, f) for repo, f in files):  # a machine's every boot: no network, no httpx
        show(where, the_lock)
        typer.echo(f"0 files fetched (0.0 MB in 0.0 s), {len(files)} already present, 0 failed; into {where.root}")
        return
    with _hubs(endpoint, the_lock) as hubs:
        summary = _pull(the_lock, hubs, where, workers, quiet, range_size)
    typer.echo(f"{summary.fetched} files fetched ({summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s), "
               f"{summary.present} already present, {len(summary.failures)} failed; into {where.root}")
    if summary.failures:
        for failure in summary.failures:
            typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(1)


def _pull(the_lock: Lock, hubs: Hubs, where: Target, workers: int, quiet: bool, range_size: int | None = None) -> Summary:
    from hubgate.client.download import CHUNK, Puller

    chunk = range_size or CHUNK
    puller = Puller(hubs, where, workers=workers, chunk=chunk, ranged_from=2 * chunk)
    jobs, _ = puller.plan(the_lock)
    if quiet or not jobs:
        return _run(lambda: puller.run(the_lock))
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(f"{len(jobs)} files", total=sum(j.file.size for j in jobs))
        puller.progress = lambda n: bar.advance(task, n)
        return _run(lambda: puller.run(the_lock))


def verify(
    lock_path: LockOpt = Path("hubgate.lock"),
    local_dir: LocalDirOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Re-hash the pulled copy: report every missing, changed or extra file (exit 1 if any is missing or changed)."""
    from hubgate.client.verify import verify as check

    report = check(_run(lambda: read_lock(lock_path)), target(local_dir, cache_dir))
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        counts = f"{len(report.missing)} missing, {len(report.changed)} changed"
        typer.echo(f"error: {counts} of {report.checked} locked files", err=True)
        raise typer.Exit(1)
    typer.echo(f"{report.checked} files match {lock_path}" + (f"; {len(report.extra)} extra" if report.extra else ""))


bundle_app = typer.Typer(help="Air-gapped bundles: the lock and exactly its files in one tar.", no_args_is_help=True)


@bundle_app.command("export")
def bundle_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The bundle to write (a tar).")],
    lock_path: LockOpt = Path("hubgate.lock"),
    endpoint: Annotated[list[str] | None, typer.Option("--endpoint", "-e",
            help="Fetch from these hubs instead of the local copy (repeatable).")] = None,
    local_dir: LocalDirOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Pack the locked files (from the HF cache a pull filled, or from --endpoint) with the lock."""
    the_lock = _run(lambda: read_lock(lock_path))
    if endpoint:
        with tempfile.TemporaryDirectory(prefix="hubgate-bundle-") as tmp, _hubs(endpoint, the_lock) as hubs:
            where = target(None, Path(tmp))
            summary = _pull(the_lock, hubs, where, 8, not sys.stderr.isatty())
            if summary.failures:
                for failure in summary.failures:
                    typer.echo(f"error: {failure}", err=True)
                raise typer.Exit(1)
            files, size = _run(lambda: bundles.export(the_lock, where, output))
    else:
        files, size = _run(lambda: bundles.export(the_lock, target(local_dir, cache_dir), output))
    typer.echo(f"{output}: {len(the_lock.repos)} repos, {files} files, {size / 1e6:.1f} MB")


@bundle_app.command("import")
def bundle_import(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `hubgate bundle export`.")],
    local_dir: LocalDirOpt = None,
    cache_dir: CacheDirOpt = None,
    data: Annotated[Path | None, typer.Option("--data", help="Import into this hubgate server's data folder instead.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The server's TOML config (with --data).")] = None,
    private: Annotated[bool, typer.Option("--private",
            help="With --data: only the server's users may read the imported repos.")] = False,
) -> None:
    """Verify every file of a bundle, then load it into the HF cache, a folder, or a hubgate server."""
    if data is not None or config is not None:
        from hubgate.config import Settings
        from hubgate.hub import Hub
        from hubgate.mirror.seed import Seed, seed

        hub = Hub(Settings.load(data=data, config=config))
        try:
            with _errors(), bundles.unpacked(bundle, hub.settings.tmp_dir) as (the_lock, files):
                seed(hub, [Seed(r.ref, r.request.revision, r.commit, [(f.path, f.size, f.sha256, f.blob, f.lfs) for f in r.files])
                           for r in the_lock.repos], files, private=private)
        finally:
            hub.close()
        typer.echo(f"{bundle}: {len(the_lock.repos)} repos imported into {hub.settings.data}; "
                   f"`hubgate serve --offline` serves them")
        return
    where = target(local_dir, cache_dir)
    with _errors(), bundles.unpacked(bundle, where.root) as (the_lock, files):
        placed = bundles.install(the_lock, files, where)
    typer.echo(f"{bundle}: {len(the_lock.repos)} repos verified, {placed} files placed into {where.root}")


def register(app: typer.Typer) -> None:
    app.command()(lock)
    app.command()(pull)
    app.command()(verify)
    app.add_typer(bundle_app, name="bundle")

