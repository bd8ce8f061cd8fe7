"""The `hubgate` command: a thin face over the same Hub the server uses."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hubgate import __version__
from hubgate.client.commands import COMMANDS as CLIENT_COMMANDS
from hubgate.commands.accounts import org_app, user_app
from hubgate.commands.common import ConfigOpt, DataOpt, audit_change, load, open_hub, run
from hubgate.commands.mirror import mirror_app
from hubgate.commands.settings import config_app
from hubgate.errors import BadRequest

if TYPE_CHECKING:  # the server's modules load only for the commands that use them
    from hubgate.auth.tokens import Issued, TokenRow
    from hubgate.hub import Hub

app = typer.Typer(help="hubgate: a self-hosted gateway to the Hugging Face Hub.", no_args_is_help=True)
token_app = typer.Typer(help="Manage access tokens.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(token_app, name="token")
app.add_typer(mirror_app, name="mirror")
app.add_typer(config_app, name="config")


def _client_command(name: str, summary: str) -> None:
    """List a client command here too; `hubgate.__main__` normally runs it before typer loads."""

    def forward(ctx: typer.Context) -> None:
        from hubgate.client.commands import run as run_client

        raise typer.Exit(run_client([name, *ctx.args]))

    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    app.command(name, help=summary, add_help_option=False, context_settings=settings)(forward)


for _name, _summary in CLIENT_COMMANDS.items():
    _client_command(_name, _summary)
upstream_token_app = typer.Typer(help="Users' own tokens for upstream hubs (encrypted at rest).", no_args_is_help=True)
app.add_typer(upstream_token_app, name="upstream-token")
repo_app = typer.Typer(help="Manage hosted repos.", no_args_is_help=True)
collaborator_app = typer.Typer(help="Give users a role on one repo, outside its organisation.", no_args_is_help=True)
app.add_typer(repo_app, name="repo")
repo_app.add_typer(collaborator_app, name="collaborator")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hubgate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """hubgate: a self-hosted gateway to the Hugging Face Hub."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (HUBGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (HUBGATE_PORT).")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (HUBGATE_WORKERS).")] = None,
    offline: Annotated[bool | None, typer.Option("--offline/--online", help="Never contact upstreams (HUBGATE_OFFLINE).")] = None,
    log_level: Annotated[str | None, typer.Option(help="critical, error, warning, info, debug (HUBGATE_LOG_LEVEL).")] = None,
    log_format: Annotated[str | None, typer.Option(help="text or json (HUBGATE_LOG_FORMAT).")] = None,
) -> None:
    """Start the server."""
    from hubgate.server import serve as run_server

    settings, _ = load(
        runtime=True, host=host, port=port, data=data, config=config, workers=workers, offline=offline,
        log_level=log_level, log_format=log_format,
    )
    run_server(settings)


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
        hub = open_hub(data, config)
        issued = hub.accounts.tokens.create(user, role=role, grants=grants, name=name, expires=expires, pins=pins)
        audit_change(hub, "token", change="created", token=issued.row.id, token_owner=user, scope=issued.row.scope.describe())
        return issued

    issued = run(create)
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

    rows = run(lambda: open_hub(data, config, existing=True).accounts.tokens.list(user))
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
        hub = open_hub(data, config, existing=True)
        row = hub.accounts.tokens.revoke(hub.accounts.tokens.find(token).id)
        audit_change(hub, "token", change="revoked", token=row.id, token_owner=row.user)
        return row

    row = run(revoke)
    typer.echo(f"token {row.id} ({row.name}) of {row.user} revoked")


@token_app.command("rotate")
def token_rotate(token: TokenArg, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Give a token a new secret (same id, name, scope and expiry); the old secret stops working."""

    def rotate() -> Issued:
        hub = open_hub(data, config, existing=True)
        issued = hub.accounts.tokens.rotate(hub.accounts.tokens.find(token).id)
        audit_change(hub, "token", change="rotated", token=issued.row.id, token_owner=issued.row.user)
        return issued

    issued = run(rotate)
    typer.echo(f"token {issued.row.id} ({issued.row.name}) of {issued.row.user} rotated; the new secret will not be shown again:")
    typer.echo(issued.secret)


RepoTypeOpt = Annotated[str, typer.Option("--type", help="model, dataset or space.")]


def _repo_label(repo: str, repo_type: str) -> str:
    """How audit records name a repo (as `str(RepoRef)` does)."""
    from hubgate.ids import RepoRef

    return str(RepoRef.parse(repo_type, repo))


def _repo_pk(hub: Hub, repo: str, repo_type: str) -> int:
    from hubgate.errors import NotFound
    from hubgate.ids import RepoRef

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
        hub = open_hub(data, config, existing=True)
        hub.access.set_collaborator(_repo_pk(hub, repo, repo_type), user, role)
        audit_change(hub, "permission", repo=_repo_label(repo, repo_type), member=user, role=role)

    run(add)
    typer.echo(f"{user} is a {role} collaborator of {repo}")


@collaborator_app.command("remove")
def collaborator_remove(
    repo: str, user: str, repo_type: RepoTypeOpt = "model", data: DataOpt = None, config: ConfigOpt = None
) -> None:
    """Remove a collaborator."""

    def remove() -> None:
        hub = open_hub(data, config, existing=True)
        hub.access.remove_collaborator(_repo_pk(hub, repo, repo_type), user)
        audit_change(hub, "permission", repo=_repo_label(repo, repo_type), member=user, role=None)

    run(remove)
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
        hub = open_hub(data, config, existing=True)
        return hub.access.collaborators(_repo_pk(hub, repo, repo_type))

    for user, role in run(listing).items():
        typer.echo(json.dumps({"user": user, "role": role}) if as_json else f"{user:<24} {role}")


UserOpt = Annotated[str, typer.Option("--user", help="The hubgate user it belongs to.")]


@upstream_token_app.command("set")
def upstream_token_set(upstream: str, user: UserOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Store USER's own token for UPSTREAM, read from standard input (never from the command line)."""
    import sys

    secret = sys.stdin.readline()

    def store() -> None:
        hub = open_hub(data, config, existing=True)
        hub.upstream_tokens.set(user, upstream, secret)
        audit_change(hub, "upstream_token", member=user, upstream=upstream, change="set")

    run(store)
    typer.echo(f"{user}'s token for {upstream} stored (encrypted)")


@upstream_token_app.command("remove")
def upstream_token_remove(upstream: str, user: UserOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Forget USER's token for UPSTREAM."""

    def remove() -> None:
        hub = open_hub(data, config, existing=True)
        hub.upstream_tokens.remove(user, upstream)
        audit_change(hub, "upstream_token", member=user, upstream=upstream, change="removed")

    run(remove)
    typer.echo(f"{user}'s token for {upstream} removed")


@upstream_token_app.command("list")
def upstream_token_list(user: UserOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """The upstreams USER has a token for (never the tokens)."""
    for name in run(lambda: open_hub(data, config, existing=True).upstream_tokens.names(user)):
        typer.echo(name)


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
    for event in open_hub(data, config, existing=True).audit.events(AuditQuery(repo=repo, user=user, since=moment, kind=kind)):
        if as_json:
            typer.echo(json.dumps(event))
            continue
        rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "kind", "user", "repo"))
        typer.echo(f"{event['at']} {event['kind']:<14} {event.get('user') or '-':<14} {event.get('repo') or '-':<28} {rest}")


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
    report = open_hub(data, config, existing=True).collector(grace, upload_grace).run()
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
    report = open_hub(data, config, existing=True).fsck().run(repair=repair, scrub=scrub)
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
