"""`hubgate config check`: the effective settings and where each one comes from."""

from __future__ import annotations

from typing import Annotated

import typer

from hubgate.commands.common import USAGE_ERROR, ConfigOpt, DataOpt, fail, load

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@config_app.command("check")
def config_check(
    data: DataOpt = None,
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="As `serve --port`.")] = None,
    host: Annotated[str | None, typer.Option(help="As `serve --host`.")] = None,
    workers: Annotated[int | None, typer.Option(help="As `serve --workers`.")] = None,
) -> None:
    """Validate the settings as `hubgate serve` would and print each one with its source
    (default, file, env or flag); secrets are masked. Exit status 2 if any is wrong."""
    settings, layers = load(data=data, config=config, port=port, host=host, workers=workers)
    rows = list(layers.effective(settings))
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        typer.echo(f"{key.ljust(width)} = {value}  ({source})")
    if unset := settings.unset_tokens(layers):
        fail(unset, USAGE_ERROR)
    typer.echo("configuration OK")
