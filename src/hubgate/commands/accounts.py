"""`hubgate user …`, `hubgate org …` and `hubgate org member …`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from hubgate.commands.common import ConfigOpt, DataOpt, JsonOpt, audit_change, open_hub, run, show

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
org_app = typer.Typer(help="Manage organisations.", no_args_is_help=True)
member_app = typer.Typer(help="Manage organisation members.", no_args_is_help=True)
org_app.add_typer(member_app, name="member")

RoleArg = Annotated[str, typer.Argument(help="read, write or admin.")]


@user_app.command("list")
def user_list(as_json: JsonOpt = False, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List users, their server-admin flag and organisations (times in UTC)."""
    rows = open_hub(data, config, existing=True).accounts.list_users()
    show([asdict(r) for r in rows], ("name", "admin", "email", "orgs", "created"), as_json)


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
        hub = open_hub(data, config)
        hub.accounts.add_user(name, admin=admin, email=email)
        audit_change(hub, "membership", member=name, change="user added", admin=admin)

    run(add)
    typer.echo(f"user {name} added" + (" (server admin)" if admin else ""))


@user_app.command("remove")
def user_remove(name: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Remove a user and their tokens (refused while they own repos or are an org's last admin)."""
    def remove() -> None:
        hub = open_hub(data, config, existing=True)
        hub.accounts.remove_user(name)
        audit_change(hub, "membership", member=name, change="user removed")

    run(remove)
    typer.echo(f"user {name} removed")


@user_app.command("set-admin")
def user_set_admin(name: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Make a user an administrator of the whole server."""
    _set_admin(name, True, data, config)
    typer.echo(f"{name} is a server admin")


@user_app.command("unset-admin")
def user_unset_admin(name: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Take server administration away from a user."""
    _set_admin(name, False, data, config)
    typer.echo(f"{name} is no longer a server admin")


def _set_admin(name: str, admin: bool, data: DataOpt, config: ConfigOpt) -> None:
    def change() -> None:
        hub = open_hub(data, config, existing=True)
        hub.accounts.set_admin(name, admin)
        audit_change(hub, "membership", member=name, change="server admin" if admin else "no longer server admin")

    run(change)


@org_app.command("list")
def org_list(as_json: JsonOpt = False, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List organisations, their admins and how many members they have (times in UTC)."""
    rows = open_hub(data, config, existing=True).accounts.list_orgs()
    show([asdict(r) for r in rows], ("name", "admins", "members", "created"), as_json)


@org_app.command("add")
def org_add(
    name: str,
    owner: Annotated[str, typer.Option("--owner", help="User who becomes the organisation's admin.")],
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add an organisation."""
    def add() -> None:
        hub = open_hub(data, config)
        hub.accounts.add_org(name, owner)
        audit_change(hub, "membership", org=name, member=owner, role="admin", change="organisation added")

    run(add)
    typer.echo(f"organisation {name} added, owned by {owner}")


@org_app.command("remove")
def org_remove(name: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Remove an organisation and its memberships (refused while it owns repos)."""
    def remove() -> None:
        hub = open_hub(data, config, existing=True)
        hub.accounts.remove_org(name)
        audit_change(hub, "membership", org=name, change="organisation removed")

    run(remove)
    typer.echo(f"organisation {name} removed")


@member_app.command("list")
def member_list(org: str, as_json: JsonOpt = False, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List an organisation's members and their roles."""
    rows = run(lambda: open_hub(data, config, existing=True).accounts.list_members(org))
    show([asdict(r) for r in rows], ("user", "role"), as_json)


@member_app.command("add")
def member_add(
    org: str,
    user: str,
    role: Annotated[str, typer.Option("--role", help="read, write or admin.")] = "read",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a member to an organisation (`set-role` changes an existing member's role)."""
    def add() -> None:
        hub = open_hub(data, config, existing=True)
        hub.accounts.add_member(org, user, role)
        audit_change(hub, "membership", org=org, member=user, role=role)

    run(add)
    typer.echo(f"{user} is a {role} member of {org}")


@member_app.command("set-role")
def member_set_role(org: str, user: str, role: RoleArg, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Change a member's role (an organisation never loses its last admin)."""
    def change() -> None:
        hub = open_hub(data, config, existing=True)
        hub.accounts.set_member(org, user, role)
        audit_change(hub, "membership", org=org, member=user, role=role)

    run(change)
    typer.echo(f"{user} is a {role} member of {org}")


@member_app.command("remove")
def member_remove(org: str, user: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Remove a member from an organisation (never its last admin)."""
    def remove() -> None:
        hub = open_hub(data, config, existing=True)
        hub.accounts.remove_member(org, user)
        audit_change(hub, "membership", org=org, member=user, role=None)

    run(remove)
    typer.echo(f"{user} removed from {org}")
