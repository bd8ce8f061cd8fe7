"""The `hubgate` command: a thin face over the same Hub the server uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from hubgate.client.commands import register as register_client_commands
from hubgate.errors import BadRequest, HubError

if TYPE_CHECKING:  # the server's modules load only for the commands that use them
    from hubgate.auth.tokens import Issued, TokenRow
    from hubgate.hub import Hub

T = TypeVar("T")

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
register_client_commands(app)
repo_app = typer.Typer(help="Manage hosted repos.", no_args_is_help=True)
collaborator_app = typer.Typer(help="Give users a role on one repo, outside its organisation.", no_args_is_help=True)
app.add_typer(repo_app, name="repo")
repo_app.add_typer(collaborator_app, name="collaborator")

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data folder (HUBGATE_DATA).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (HUBGATE_CONFIG).")]


def _hub(data: Path | None, config: Path | None) -> Hub:
    from hubgate.config import Settings
    from hubgate.hub import Hub

    return Hub(Settings.load(data=data, config=config))


def _changed(hub: Hub, kind: str, **fields: object) -> None:
    """Audit a change made from the command line (the operator is the OS user running it)."""
    import getpass

    hub.audit.record(kind, via="cli", operator=getpass.getuser(), **fields)


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
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
    from hubgate.config import Settings
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
    def add() -> None:
        hub = _hub(data, config)
        hub.accounts.add_user(name, admin=admin, email=email)
        _changed(hub, "membership", member=name, change="user added", admin=admin)

    _run(add)
    typer.echo(f"user {name} added")


@org_app.command("add")
def org_add(
    name: str,
    owner: Annotated[str, typer.Option("--owner", help="User who becomes the organisation's admin.")],
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add an organisation."""
    def add() -> None:
        hub = _hub(data, config)
        hub.accounts.add_org(name, owner)
        _changed(hub, "membership", org=name, member=owner, role="admin", change="organisation added")

    _run(add)
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
    def add() -> None:
        hub = _hub(data, config)
        hub.accounts.set_member(org, user, role)
        _changed(hub, "membership", org=org, member=user, role=role)

    _run(add)
    typer.echo(f"{user} is a {role} member of {org}")


@member_app.command("remove")
def member_remove(org: str, user: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Remove a member from an organisation."""
    def remove() -> None:
        hub = _hub(data, config)
        hub.accounts.remove_member(org, user)
        _changed(hub, "membership", org=org, member=user, role=None)

    _run(remove)
    typer.echo(f"{user} removed from {org}")


REPO_GRANT_HELP = "Fine-grained: [datasets/|spaces/]PATTERN=read|write, e.g. 'acme/tts-*=read' (repeatable)."
TokenArg = Annotated[str, typer.Argument(help="ID or NAME (see `hubgate token list`).")]


@token_app.command("create")
def token_create(
    user: str,
    role: Annotated[str, typer.Option("--role", help="read or write (ignored with --repo/--org).")] = "read",
    repo: Annotated[list[str] | None, typer.Option("--repo", help=REPO_GRANT_HELP)] = None,
    org: Annotated[list[str] | None, typer.Option("--org", help="Fine-grained: ORG=read|write (repeatable).")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="A duration (90s, 12h, 30d) or a date.")] = None,
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
    lock: Annotated[Path | None, typer.Option(
        "--lock", help="A read token bound to this lockfile: only its commits and files may be downloaded.")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token; it is printed once, alone on the last line, and stored only hashed."""
    from hubgate.auth.scopes import Pin, parse_namespace_grant, parse_repo_grant
    from hubgate.auth.tokens import utc_text
    from hubgate.client.lockfile import read_lock

    def create() -> Issued:
        grants = (*(parse_repo_grant(r) for r in repo or []), *(parse_namespace_grant(o) for o in org or []))
        pins = tuple(Pin(r.ref.type, r.ref.repo_id, r.commit, frozenset(f.path for f in r.files))
                     for r in (read_lock(lock).repos if lock is not None else ()))
        if lock is not None and not pins:
            raise BadRequest(f"{lock} locks no repo")
        hub = _hub(data, config)
        issued = hub.accounts.tokens.create(user, role=role, grants=grants, name=name, expires=expires, pins=pins)
        _changed(hub, "token", change="created", token=issued.row.id, token_owner=user, scope=issued.row.scope.describe())
        return issued

    issued = _run(create)
    row = issued.row
    typer.echo(f"token {row.id} ({row.name}) for {user}: {row.scope.describe()}, expires {utc_text(row.expires_at) or 'never'}")
    typer.echo("it will not be shown again:")
    typer.echo(issued.secret)


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List tokens (never their secret); times are UTC."""
    import json

    from hubgate.storage.metadata import utcnow

    rows = _hub(data, config).accounts.tokens.list(user)
    now = utcnow()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.to_json(now)))
        return
    typer.echo(
        f"{'ID':>4}  {'USER':<16} {'STATE':<8} {'PREFIX':<8} {'EXPIRES (UTC)':<20} {'LAST USED (UTC)':<20} "
        f"{'FROM':<15} {'SCOPE':<20} NAME"
    )
    for row in rows:
        expires = _utc_minute(row.expires_at) or "never"
        used = _utc_minute(row.last_used_at) or "never"
        typer.echo(
            f"{row.id:>4}  {row.user:<16} {row.state(now):<8} {row.prefix:<8} {expires:<20} {used:<20} "
            f"{row.last_used_from or '-':<15} {row.scope.describe():<20} {row.name}"
        )


def _utc_minute(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else None


@token_app.command("revoke")
def token_revoke(token: TokenArg, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Revoke a token; it stops working on the next request, in every worker."""

    def revoke() -> TokenRow:
        hub = _hub(data, config)
        row = hub.accounts.tokens.revoke(hub.accounts.tokens.find(token).id)
        _changed(hub, "token", change="revoked", token=row.id, token_owner=row.user)
        return row

    row = _run(revoke)
    typer.echo(f"token {row.id} ({row.name}) of {row.user} revoked")


@token_app.command("rotate")
def token_rotate(token: TokenArg, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Give a token a new secret (same id, name, scope and expiry); the old secret stops working."""

    def rotate() -> Issued:
        hub = _hub(data, config)
        issued = hub.accounts.tokens.rotate(hub.accounts.tokens.find(token).id)
        _changed(hub, "token", change="rotated", token=issued.row.id, token_owner=issued.row.user)
        return issued

    issued = _run(rotate)
    typer.echo(f"token {issued.row.id} ({issued.row.name}) of {issued.row.user} rotated; the new secret will not be shown again:")
    typer.echo(issued.secret)


RepoTypeOpt = Annotated[str, typer.Option("--type", help="model, dataset or space.")]


def _repo_label(repo: str, repo_type: str) -> str:
    """How audit records name a repo (as `str(RepoRef)` does)."""
    from hubgate.repos.ids import RepoRef

    return str(RepoRef.parse(repo_type, repo))


def _repo_pk(hub: Hub, repo: str, repo_type: str) -> int:
    from hubgate.errors import NotFound
    from hubgate.repos.ids import RepoRef

    found = hub.repos.open(RepoRef.parse(repo_type, repo))
    if found is None:
        raise NotFound(f"No hosted {repo_type} repo {repo}")
    return found.pk


@collaborator_app.command("add")
def collaborator_add(
    repo: str,
    user: str,
    role: Annotated[str, typer.Option("--role", help="read or write.")] = "read",
    repo_type: RepoTypeOpt = "model",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make USER a collaborator of REPO with ROLE (or change their role)."""

    def add() -> None:
        hub = _hub(data, config)
        hub.access.set_collaborator(_repo_pk(hub, repo, repo_type), user, role)
        _changed(hub, "permission", repo=_repo_label(repo, repo_type), member=user, role=role)

    _run(add)
    typer.echo(f"{user} is a {role} collaborator of {repo}")


@collaborator_app.command("remove")
def collaborator_remove(
    repo: str, user: str, repo_type: RepoTypeOpt = "model", data: DataOpt = None, config: ConfigOpt = None
) -> None:
    """Remove a collaborator."""

    def remove() -> None:
        hub = _hub(data, config)
        hub.access.remove_collaborator(_repo_pk(hub, repo, repo_type), user)
        _changed(hub, "permission", repo=_repo_label(repo, repo_type), member=user, role=None)

    _run(remove)
    typer.echo(f"{user} removed from the collaborators of {repo}")


@collaborator_app.command("list")
def collaborator_list(
    repo: str,
    repo_type: RepoTypeOpt = "model",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List a repo's collaborators and their roles."""
    import json

    def listing() -> dict[str, str]:
        hub = _hub(data, config)
        return hub.access.collaborators(_repo_pk(hub, repo, repo_type))

    for user, role in _run(listing).items():
        typer.echo(json.dumps({"user": user, "role": role}) if as_json else f"{user:<24} {role}")


@app.command("audit")
def audit(
    repo: Annotated[str | None, typer.Option("--repo", help="Only this repo (datasets/ or spaces/ prefix for those).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only what this user did.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="A date (2026-12-01) or a duration back (24h, 7d).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="download, upload, commit, repo, token, ...")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show the audit log, oldest first (times in UTC)."""
    import json

    from hubgate.audit import AuditQuery, parse_since

    try:
        moment = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        typer.echo(f"error: --since {since!r}: expected a date (2026-12-01) or a duration (24h, 7d)", err=True)
        raise typer.Exit(2) from exc
    for event in _hub(data, config).audit.events(AuditQuery(repo=repo, user=user, since=moment, kind=kind)):
        if as_json:
            typer.echo(json.dumps(event))
            continue
        rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "kind", "user", "repo"))
        typer.echo(f"{event['at']} {event['kind']:<14} {event.get('user') or '-':<14} {event.get('repo') or '-':<28} {rest}")


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


@app.command()
def gc(
    grace: Annotated[float | None, typer.Option(help="Keep blobs written less than this many seconds ago ([gc] grace).")] = None,
    upload_grace: Annotated[
        float | None, typer.Option(help="Keep uncommitted LFS uploads this many seconds ([gc] upload_grace).")
    ] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Collect what nothing references: deleted repos' objects, unused uploads, failed commits' blobs."""
    report = _hub(data, config).collector(grace, upload_grace).run()
    typer.echo(report.summary())
    if report.skipped:
        raise typer.Exit(2)


@app.command()
def fsck(
    repair: Annotated[bool, typer.Option("--repair", help="Quarantine damaged blobs, drop lost mirror records.")] = False,
    scrub: Annotated[bool, typer.Option("--scrub/--no-scrub", help="Re-hash every stored byte.")] = True,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check the store: damaged or missing content, unreferenced blobs. Exit status 1 if unclean."""
    report = _hub(data, config).fsck().run(repair=repair, scrub=scrub)
    for finding in report.findings:
        typer.echo(finding.line())
    typer.echo(report.summary())
    if not report.clean:
        raise typer.Exit(1)


def main() -> None:
    # Everything hubgate creates (database, blobs, part files, folders) is its owner's alone: other
    # local users must not read private models. Server workers inherit this mask.
    os.umask(0o077)
    app()
