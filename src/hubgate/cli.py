"""The `hubgate` command: a thin face over the same Hub the server uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hubgate.config import Settings
from hubgate.errors import HubError
from hubgate.hub import Hub

app = typer.Typer(help="hubgate: a self-hosted gateway to the Hugging Face Hub.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
org_app = typer.Typer(help="Manage organisations.", no_args_is_help=True)
member_app = typer.Typer(help="Manage organisation members.", no_args_is_help=True)
token_app = typer.Typer(help="Manage access tokens.", no_args_is_help=True)
mirror_app = typer.Typer(help="Operate the pull-through mirror of upstream hubs.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
org_app.add_typer(member_app, name="member")
app.add_typer(token_app, name="token")
app.add_typer(mirror_app, name="mirror")

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data folder (HUBGATE_DATA).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (HUBGATE_CONFIG).")]


def _hub(data: Path | None, config: Path | None) -> Hub:
    return Hub(Settings.load(data=data, config=config))


def _run(action) -> None:  # type: ignore[no-untyped-def]
    try:
        action()
    except HubError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (HUBGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (HUBGATE_PORT).")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (HUBGATE_WORKERS).")] = None,
    offline: Annotated[bool | None, typer.Option("--offline/--online", help="Never contact upstreams (HUBGATE_OFFLINE).")] = None,
) -> None:
    """Start the server."""
    from hubgate.server import serve as run_server

    run_server(Settings.load(host=host, port=port, data=data, config=config, workers=workers, offline=offline))


@user_app.command("add")
def user_add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Administrator of the whole server.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a user."""
    _run(lambda: _hub(data, config).accounts.add_user(name, admin=admin, email=email))
    typer.echo(f"user {name} added")


@org_app.command("add")
def org_add(
    name: str,
    owner: Annotated[str, typer.Option("--owner", help="User who becomes the organisation's admin.")],
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add an organisation."""
    _run(lambda: _hub(data, config).accounts.add_org(name, owner))
    typer.echo(f"organisation {name} added, owned by {owner}")


@member_app.command("add")
def member_add(
    org: str,
    user: str,
    role: Annotated[str, typer.Option("--role", help="read, write or admin.")] = "read",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a member to an organisation, or change their role."""
    _run(lambda: _hub(data, config).accounts.set_member(org, user, role))
    typer.echo(f"{user} is a {role} member of {org}")


@member_app.command("remove")
def member_remove(org: str, user: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Remove a member from an organisation."""
    _run(lambda: _hub(data, config).accounts.remove_member(org, user))
    typer.echo(f"{user} removed from {org}")


@token_app.command("create")
def token_create(
    user: str,
    role: Annotated[str, typer.Option("--role", help="read or write.")] = "read",
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
    expires_days: Annotated[float | None, typer.Option("--expires-days", help="Expire after this many days.")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token; it is printed once, alone on the last line, and stored only hashed."""
    result: list[str] = []
    _run(lambda: result.append(_hub(data, config).accounts.create_token(user, role=role, name=name, expires_days=expires_days)))
    typer.echo(f"token for {user} ({role}); it will not be shown again:")
    typer.echo(result[0])


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List tokens (never their secret)."""
    rows = _hub(data, config).accounts.list_tokens(user)
    typer.echo(f"{'ID':>4}  {'USER':<16} {'ROLE':<6} {'PREFIX':<8} {'STATE':<8} {'EXPIRES':<20} NAME")
    for row in rows:
        state = "revoked" if row.revoked else "active"
        expires = row.expires_at.strftime("%Y-%m-%d %H:%M") if row.expires_at else "never"
        typer.echo(f"{row.id:>4}  {row.user:<16} {row.role:<6} {row.prefix:<8} {state:<8} {expires:<20} {row.name}")


@token_app.command("revoke")
def token_revoke(token_id: int, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Revoke a token by its id (see `hubgate token list`)."""
    _run(lambda: _hub(data, config).accounts.revoke_token(token_id))
    typer.echo(f"token {token_id} revoked")


@mirror_app.command("pull")
def mirror_pull(
    repo: Annotated[str, typer.Argument(help="REPO or REPO@REVISION, e.g. sentence-transformers/all-MiniLM-L6-v2@main.")],
    repo_type: Annotated[str, typer.Option("--type", help="model, dataset or space.")] = "model",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fetch every file of a repo revision into the cache, for offline use."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from hubgate.repos.ids import RepoRef

    hub = _hub(data, config)
    if hub.mirror is None:
        typer.echo("error: no [[upstream]] is configured", err=True)
        raise typer.Exit(1)
    repo_id, _, revision = repo.partition("@")
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(repo_id, total=None)
        result: list[tuple[str, int, int]] = []

        def pull() -> None:
            result.append(hub.mirror.pull(  # type: ignore[union-attr]
                RepoRef.parse(repo_type, repo_id), revision or None,
                on_plan=lambda files, size: bar.update(task, total=size),
                progress=lambda n: bar.advance(task, n),
            ))

        _run(pull)
    commit, files, size = result[0]
    typer.echo(f"{repo_id}@{commit}: {files} files, {size} bytes cached")


@mirror_app.command("status")
def mirror_status(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Show each upstream's health, the cache size and the hit ratio."""
    import json

    hub = _hub(data, config)
    if hub.mirror is None:
        typer.echo("error: no [[upstream]] is configured", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(hub.mirror.status(), indent=2))


def main() -> None:
    app()
