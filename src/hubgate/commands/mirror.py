"""`hubgate mirror …`: fill the cache for offline use, and show what the running server sees."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hubgate.commands.common import ConfigOpt, DataOpt, fail, open_hub, run

mirror_app = typer.Typer(help="Operate the pull-through mirror of upstream hubs.", no_args_is_help=True)


@mirror_app.command("pull")
def mirror_pull(
    repo: Annotated[str, typer.Argument(help="REPO or REPO@REVISION, e.g. sentence-transformers/all-MiniLM-L6-v2@main.")],
    repo_type: Annotated[str, typer.Option("--type", help="model, dataset or space.")] = "model",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fetch every file of a repo revision into the cache, for offline use.

    A namespace that belongs to a local user or organisation is never asked of an upstream.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from hubgate.ids import RepoRef

    hub = open_hub(data, config, runtime=True)
    repo_id, _, revision = repo.partition("@")
    ref = run(lambda: RepoRef.parse(repo_type, repo_id))
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(repo_id, total=None)
        commit, files, size = run(
            lambda: hub.pull(
                ref,
                revision or None,
                on_plan=lambda _files, total: bar.update(task, total=total),
                progress=lambda n: bar.advance(task, n),
            )
        )
    typer.echo(f"{repo_id}@{commit}: {files} files, {size} bytes cached")


@mirror_app.command("status")
def mirror_status(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Each upstream's health, the cache size and the hit ratio, as every process recorded them;
    `offline` is the running server's mode (the configured one when no server runs)."""
    from hubgate import runstate

    hub = open_hub(data, config, existing=True)
    if hub.mirror is None:
        fail(["no [[upstream]] is configured; expected --config naming the server's config file"])
    status = hub.mirror.status()
    server = runstate.running(hub.settings.data)
    if server is not None:
        status["offline"] = bool(server.get("offline"))
    status["server"] = server
    typer.echo(json.dumps(status, indent=2))
