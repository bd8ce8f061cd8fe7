"""`hubgate lock | pull | verify | bundle`: the client commands, light enough to run on every boot.

They are parsed with argparse and started by `hubgate.__main__` before typer (which builds pydantic
adapters for every option) or any server module is imported: this package never imports server code; `bundle import --data`,
which loads a bundle into a server's store, calls the function the entry point hands to `run`. httpx is imported only
when a command goes to the network: a pull that finds everything present does not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hubgate.client.layout import Target, is_present, show, target
from hubgate.client.lockfile import Lock, Request, diff, read_lock, read_spec, write_lock
from hubgate.errors import HubError

if TYPE_CHECKING:
    from hubgate.client.download import Summary
    from hubgate.client.remote import Hubs

COMMANDS = {
    "lock": "Pin repos: the commit each revision names now and every file's size, SHA-256 and git blob id.",
    "pull": "Download exactly what the lock names, verified, into the HF cache (or --local-dir).",
    "verify": "Re-hash the pulled copy: report every missing, changed or extra file.",
    "bundle": "Air-gapped bundles: the lock and exactly its files in one tar (export, import).",
}
ENDPOINT_HELP = ("hub URL, tried in order (repeatable); URL#VAR takes that endpoint's token from $VAR "
                 "(default: the lock's endpoints, else HF_ENDPOINT, else huggingface.co)")


# `bundle import --data`: (bundle, data folder, config file, private) -> exit status.
IntoServer = Callable[[Path, Path | None, Path | None, bool], int]


class Failed(Exception):
    """A command failed; its message is printed and the exit status is 1."""


def say(text: str) -> None:
    print(text, flush=True)


def complain(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


def _hubs(given: Sequence[str], lock: Lock | None = None) -> Hubs:
    from hubgate.client.remote import Hubs, endpoints

    return Hubs(endpoints(given, lock.endpoints if lock else ()))


# -- lock ------------------------------------------------------------------------------------
def lock(opts: argparse.Namespace) -> int:
    from hubgate.client.locking import resolve
    from hubgate.client.sbom import sbom as make_sbom

    output: Path = opts.output
    old = read_lock(output) if output.exists() else None
    if opts.repos:
        requests = [Request.parse(r, opts.type, tuple(opts.include), tuple(opts.exclude)) for r in opts.repos]
    elif opts.spec is not None:
        requests = read_spec(opts.spec)
    elif old is not None and (opts.upgrade or opts.check):
        requests = [r.request for r in old.repos]
    elif old is not None and opts.sbom is not None:
        opts.sbom.write_text(make_sbom(old))
        say(f"SBOM of {output} written to {opts.sbom}")
        return 0
    else:
        complain("name repos (REPO[@REVISION] or --spec FILE), or use --upgrade/--check on an existing lock")
        return 2
    endpoint_texts = tuple(opts.endpoint or (old.endpoints if old else ()))
    hubs = _hubs(endpoint_texts)
    try:
        new = resolve(hubs, requests, endpoint_texts)
    finally:
        hubs.close()
    changes = diff(old, new)
    for line in changes:
        say(line)
    if opts.check:
        if changes:
            complain(f"{output} is out of date: upstream moved (run `hubgate lock --upgrade`)")
            return 1
        say(f"{output} is up to date")
        return 0
    write_lock(new, output)
    files = sum(len(r.files) for r in new.repos)
    say(f"{output}: {len(new.repos)} repos, {files} files" + ("" if changes or old is None else " (unchanged)"))
    if opts.sbom is not None:
        opts.sbom.write_text(make_sbom(new))
        say(f"SBOM written to {opts.sbom}")
    return 0


# -- pull ------------------------------------------------------------------------------------
def pull(opts: argparse.Namespace) -> int:
    the_lock = read_lock(opts.lock)
    where = target(opts.local_dir, opts.cache_dir)
    files = the_lock.all_files()
    if not opts.rehash and all(is_present(where, repo, f) for repo, f in files):  # every boot of a fleet machine: no network
        show(where, the_lock)
        say(f"0 files fetched (0.0 MB in 0.0 s), {len(files)} already present, 0 failed; into {where.root}")
        return 0
    hubs = _hubs(opts.endpoint, the_lock)
    try:
        summary = _pull(the_lock, hubs, where, opts.workers, opts.quiet, opts.range_size, opts.rehash)
    finally:
        hubs.close()
    say(f"{summary.fetched} files fetched ({summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s), "
        f"{summary.present} already present, {len(summary.failures)} failed; into {where.root}")
    for failure in summary.failures:
        complain(failure)
    return 1 if summary.failures else 0


def _pull(the_lock: Lock, hubs: Hubs, where: Target, workers: int, quiet: bool, range_size: int | None = None,
          rehash: bool = False) -> Summary:
    from hubgate.client.download import CHUNK, Puller

    chunk = range_size or CHUNK
    puller = Puller(hubs, where, workers=workers, chunk=chunk, ranged_from=2 * chunk, rehash=rehash)
    jobs, _ = puller.plan(the_lock)
    if quiet or not jobs:
        return puller.run(the_lock)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(f"{len(jobs)} files", total=sum(j.file.size for j in jobs))
        puller.progress = lambda n: bar.advance(task, n)
        return puller.run(the_lock)


# -- verify ----------------------------------------------------------------------------------
def verify(opts: argparse.Namespace) -> int:
    from hubgate.client.verify import verify as check

    report = check(read_lock(opts.lock), target(opts.local_dir, opts.cache_dir))
    for line in report.lines():
        say(line)
    if not report.ok:
        complain(f"{len(report.missing)} missing, {len(report.changed)} changed of {report.checked} locked files")
        return 1
    say(f"{report.checked} files match {opts.lock}" + (f"; {len(report.extra)} extra" if report.extra else ""))
    return 0


# -- bundles ---------------------------------------------------------------------------------
def bundle_export(opts: argparse.Namespace) -> int:
    from hubgate.client import bundle as bundles

    the_lock = read_lock(opts.lock)
    if opts.endpoint:
        with tempfile.TemporaryDirectory(prefix="hubgate-bundle-") as tmp:
            where = target(None, Path(tmp))
            hubs = _hubs(opts.endpoint, the_lock)
            try:
                summary = _pull(the_lock, hubs, where, 8, not sys.stderr.isatty())
            finally:
                hubs.close()
            if summary.failures:
                raise Failed("; ".join(summary.failures))
            files, size = bundles.export(the_lock, where, opts.output)
    else:
        files, size = bundles.export(the_lock, target(opts.local_dir, opts.cache_dir), opts.output)
    say(f"{opts.output}: {len(the_lock.repos)} repos, {files} files, {size / 1e6:.1f} MB")
    return 0


def bundle_import(opts: argparse.Namespace) -> int:
    from hubgate.client import bundle as bundles

    if opts.data is not None or opts.config is not None:
        if opts.into_server is None:
            raise Failed("--data/--config need the server package: run `hubgate bundle import` (not the client module alone)")
        return int(opts.into_server(opts.bundle, opts.data, opts.config, opts.private))
    where = target(opts.local_dir, opts.cache_dir)
    with bundles.unpacked(opts.bundle, where.root) as (the_lock, files):
        placed = bundles.install(the_lock, files, where)
    say(f"{opts.bundle}: {len(the_lock.repos)} repos verified, {placed} files placed into {where.root}")
    return 0


# -- the parser ------------------------------------------------------------------------------
def _places(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--local-dir", type=Path, help="a plain folder (DIR/namespace/name/...) instead of the HF cache")
    parser.add_argument("--cache-dir", type=Path, help="the HF cache (default: HF_HUB_CACHE or ~/.cache/huggingface/hub)")


def _lock_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock", "-l", type=Path, default=Path("hubgate.lock"), help="the lockfile (default: hubgate.lock)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hubgate", description="hubgate's client commands.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("lock", help=COMMANDS["lock"], description=COMMANDS["lock"])
    p.add_argument("repos", nargs="*", metavar="REPO[@REVISION]", help="a repo at a branch, tag or commit (default: main)")
    p.add_argument("--type", default="model", choices=("model", "dataset", "space"), help="repo type of the REPO arguments")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only paths matching GLOB (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="leave out paths matching GLOB (repeatable)")
    p.add_argument("--output", "-o", type=Path, default=Path("hubgate.lock"),
        help="the lockfile to write (default: hubgate.lock)")
    p.add_argument("--endpoint", "-e", action="append", default=[], metavar="URL", help=ENDPOINT_HELP)
    p.add_argument("--spec", type=Path, help="TOML file of [[repo]] tables (id, type, revision, include, exclude)")
    p.add_argument("--upgrade", action="store_true", help="re-resolve the lock's repos, show what changed, write")
    p.add_argument("--check", action="store_true", help="re-resolve, show what changed, exit 1 if anything did; write nothing")
    p.add_argument("--sbom", type=Path, metavar="FILE", help="also write a CycloneDX SBOM of the lock to FILE")
    p.set_defaults(run=lock)

    p = sub.add_parser("pull", help=COMMANDS["pull"], description=COMMANDS["pull"])
    _lock_option(p)
    p.add_argument("--endpoint", "-e", action="append", default=[], metavar="URL", help=ENDPOINT_HELP)
    _places(p)
    p.add_argument("--workers", type=int, default=8, help="parallel transfers (default 8)")
    p.add_argument("--range-size", type=int, metavar="BYTES",
                   help="files of at least twice this size come in parallel ranges of this size (default 16 MiB)")
    p.add_argument("--rehash", action="store_true",
                   help="re-hash the files already present and fetch again those that changed (what verify reports)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=pull)

    p = sub.add_parser("verify",
        help=COMMANDS["verify"], description=COMMANDS["verify"] + " Exit 1 if any is missing or changed.")
    _lock_option(p)
    _places(p)
    p.set_defaults(run=verify)

    p = sub.add_parser("bundle", help=COMMANDS["bundle"], description=COMMANDS["bundle"])
    bundle_sub = p.add_subparsers(dest="bundle_command", required=True)
    e = bundle_sub.add_parser("export",
        help="pack the locked files (from the HF cache a pull filled, or --endpoint) with the lock")
    e.add_argument("--output", "-o", type=Path, required=True, help="the bundle to write (a tar)")
    _lock_option(e)
    e.add_argument("--endpoint", "-e", action="append", default=[], metavar="URL",
                   help="fetch from these hubs instead of the local copy (repeatable)")
    _places(e)
    e.set_defaults(run=bundle_export)
    i = bundle_sub.add_parser("import",
        help="verify every file of a bundle, then load it into the HF cache, a folder, or a server")
    i.add_argument("bundle", type=Path, help="a bundle written by `hubgate bundle export`")
    _places(i)
    i.add_argument("--data", type=Path, help="import into this hubgate server's data folder instead")
    i.add_argument("--config", type=Path, help="the server's TOML config (with --data)")
    i.add_argument("--private", action="store_true", help="with --data: only the server's users may read the imported repos")
    i.set_defaults(run=bundle_import)
    return top


def run(argv: Sequence[str], into_server: IntoServer | None = None) -> int:
    """Run a client command; `into_server` performs `bundle import --data` (server code, so the
    caller, not this package, supplies it)."""
    opts = parser().parse_args(list(argv))
    opts.into_server = into_server
    try:
        return int(opts.run(opts))
    except (HubError, Failed) as error:
        complain(error.message if isinstance(error, HubError) else str(error))
        return 1
