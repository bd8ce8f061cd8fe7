"""What every command shares: its options, loading settings (mistakes refused with exit status 2),
opening the Hub, turning domain errors into one `error:` line, and table or JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from hubgate.errors import HubError

if TYPE_CHECKING:  # the server's modules load only for the commands that use them
    from hubgate.config import Settings
    from hubgate.config_sources import Layers
    from hubgate.hub import Hub

T = TypeVar("T")
USAGE_ERROR = 2  # what click answers to a bad option; the same for a bad setting

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data folder (HUBGATE_DATA).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (HUBGATE_CONFIG).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def fail(lines: Sequence[str], status: int = 1) -> NoReturn:
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(status)


def load(*, runtime: bool = False, **flags: Any) -> tuple[Settings, Layers]:
    """Settings from flags, environment and config file; with `runtime`, also refuse what only a
    server or a mirror pull needs (upstream tokens that are not set)."""
    from hubgate.config import Settings
    from hubgate.config_sources import ConfigError, load_layers

    try:
        layers = load_layers(Settings, flags)
        settings = Settings.from_layers(layers)
    except ConfigError as exc:
        fail(exc.lines, USAGE_ERROR)
    if runtime and (unset := settings.unset_tokens(layers)):
        fail(unset, USAGE_ERROR)
    return settings, layers


def open_hub(data: Path | None, config: Path | None, *, existing: bool = False, runtime: bool = False) -> Hub:
    """The Hub of `--data`; with `existing`, refuse a folder that holds no hubgate instance
    (a read-only command must not create one where a path was mistyped)."""
    from hubgate import logs
    from hubgate.hub import Hub

    settings, _ = load(data=data, config=config, runtime=runtime)
    logs.configure(settings, command=True)  # a mirror pull's warnings hold upstream URLs: scrubbed
    if existing and settings.database_url is None and not (settings.data / "hubgate.db").is_file():
        fail([f"{settings.data} holds no hubgate instance (no hubgate.db); expected the data folder of a server"],
             USAGE_ERROR)
    return Hub(settings)


def audit_change(hub: Hub, kind: str, **fields: object) -> None:
    """Audit a change made from the command line (the operator is the OS user running it)."""
    import getpass

    hub.audit.record(kind, via="cli", operator=getpass.getuser(), **fields)


def run(action: Callable[[], T]) -> T:
    """`action()`, with a domain error told as one line and exit status 1."""
    try:
        return action()
    except HubError as error:
        fail([error.message])


def show(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A table with a header line, or (`--json`) the same objects, one JSON object per line."""
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    for line in ([c.upper() for c in columns], *cells):
        typer.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)
