"""``mailctl admin``: the API's admin accounts, their roles, domains and tokens, from the host."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli import totp
from mailctl.cli.common import actor, console, context, read_password, reports_errors
from mailctl.errors import InvalidInputError
from mailctl.services import accounts, admins
from mailctl.services.admins import AdminView
from mailctl.services.scope import DOMAIN_ADMIN, SUPERADMIN

app = typer.Typer(
    help="Manage the admins who use the API: roles, domains, passwords, tokens, two-factor.",
    no_args_is_help=True,
)
app.add_typer(totp.app, name="totp")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
USERNAME = typer.Argument(None, help="The admin (default: MAILCTL_ADMIN_USERNAME, admin).")
NAME = typer.Argument(..., metavar="NAME", help="The admin's username.")
DOMAINS = typer.Argument(..., metavar="DOMAIN...", help="One or more domain names.")


def _username(ctx_username: str, given: str | None) -> str:
    return given if given else ctx_username


@app.command("passwd")
@reports_errors
def change_password(
    username: str | None = USERNAME,
    password_stdin: bool = typer.Option(
        False, help="Read the new password from standard input (one line)."
    ),
) -> None:
    """Set an admin's password; every token it holds stops working.

    The password is prompted for (twice), or read from standard input: never from the
    command line, where other users could read it.
    """
    secret = read_password(None, password_stdin)
    with context() as ctx:
        name = _username(ctx.settings.admin_username, username)
        changed = accounts.set_password(ctx, actor(), name, secret)
    console.print(
        f"Changed the password of [bold]{changed.username}[/]; "
        f"{changed.revoked} token(s) no longer work.",
        highlight=False,
    )


@app.command("tokens")
@reports_errors
def list_tokens(username: str | None = USERNAME) -> None:
    """List an admin's active tokens (their ids, never the tokens themselves)."""
    with context() as ctx:
        name = _username(ctx.settings.admin_username, username)
        views = accounts.list_tokens(ctx, name)
    table = Table()
    # Ids and times whole, so an id can be copied into `mailctl admin revoke --id`.
    for column in ("id", "issued (UTC)", "expires (UTC)"):
        table.add_column(column, no_wrap=True)
    table.add_column("address", overflow="fold")
    table.add_column("agent", overflow="fold")
    for view in views:
        table.add_row(
            view.id,
            view.issued.strftime(TIME_FORMAT),
            view.expires.strftime(TIME_FORMAT),
            view.client_address or "",
            view.user_agent or "",
        )
    console.print(table)


@app.command("revoke")
@reports_errors
def revoke(
    username: str | None = USERNAME,
    token_id: str | None = typer.Option(None, "--id", help="The id of the token to revoke."),
    every: bool = typer.Option(False, "--all", help="Revoke every token of the admin."),
) -> None:
    """Revoke one token of an admin (--id, from `mailctl admin tokens`) or all (--all)."""
    if every == bool(token_id):
        raise InvalidInputError("Give either --id ID or --all.")
    with context() as ctx:
        name = _username(ctx.settings.admin_username, username)
        if every:
            count = accounts.revoke_all(ctx, actor(), name)
            console.print(f"Revoked {count} token(s) of [bold]{name}[/].", highlight=False)
            return
        accounts.revoke_token(ctx, actor(), name, token_id or "")
    console.print(f"Revoked the token {token_id} of [bold]{name}[/].", highlight=False)


def _domains_text(view: AdminView) -> str:
    if view.role == SUPERADMIN:
        return "every domain"
    return ", ".join(view.domains) or "no domain"


def _role_text(role: str) -> str:
    return "superadmin" if role == SUPERADMIN else "domain admin"


@app.command("create")
@reports_errors
def create_admin(
    username: str = NAME,
    role: str | None = typer.Option(
        None,
        help="superadmin or domain_admin (default: domain_admin with --domain, else superadmin).",
    ),
    domain: list[str] | None = typer.Option(
        None, "--domain", help="A domain a domain admin is granted (repeat for more)."
    ),
    password_stdin: bool = typer.Option(
        False, help="Read the password from standard input (one line)."
    ),
) -> None:
    """Add an admin who logs in to the API: a superadmin, or a domain admin of --domain.

    The password is prompted for (twice), or read from standard input: never from the
    command line, where other users could read it.
    """
    secret = read_password(None, password_stdin)
    with context() as ctx:
        wanted = role if role is not None else DOMAIN_ADMIN if domain else SUPERADMIN
        view = admins.create_admin(ctx, actor(), username, secret, wanted, domain or None)
    console.print(
        f"Created the {_role_text(view.role)} [bold]{view.username}[/] ({_domains_text(view)}).",
        highlight=False,
    )


@app.command("list")
@reports_errors
def list_admins() -> None:
    """List the admins: role, whether disabled, and a domain admin's domains."""
    with context() as ctx:
        views = admins.list_admins(ctx, actor())
    table = Table()
    for column in ("username", "role", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("domains", overflow="fold")
    for view in views:
        table.add_row(
            view.username,
            view.role,
            "disabled" if view.disabled else "enabled",
            _domains_text(view),
        )
    console.print(table)


def _print_admin(view: AdminView) -> None:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    created = view.created_at.strftime(TIME_FORMAT) + " UTC" if view.created_at else "?"
    table.add_row("username", view.username)
    table.add_row("role", view.role)
    table.add_row("status", "disabled" if view.disabled else "enabled")
    table.add_row("domains", _domains_text(view))
    table.add_row("created", created)
    console.print(table, highlight=False)


@app.command("show")
@reports_errors
def show_admin(username: str = NAME) -> None:
    """Show one admin: role, status, domains and when it was created."""
    with context() as ctx:
        view = admins.get_admin(ctx, actor(), username)
    _print_admin(view)


@app.command("delete")
@reports_errors
def delete_admin(
    username: str = NAME,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an admin; its tokens and API keys stop working at once."""
    if not yes:
        typer.confirm(f"Delete the admin {username} and its API keys?", abort=True)
    with context() as ctx:
        admins.delete_admin(ctx, actor(), username)
    console.print(f"Deleted the admin [bold]{username.strip()}[/].", highlight=False)


@app.command("disable")
@reports_errors
def disable_admin(username: str = NAME) -> None:
    """Disable an admin: it cannot log in, and its tokens and API keys are refused."""
    with context() as ctx:
        view = admins.set_disabled(ctx, actor(), username, True)
    console.print(f"Disabled the admin [bold]{view.username}[/].", highlight=False)


@app.command("enable")
@reports_errors
def enable_admin(username: str = NAME) -> None:
    """Enable a disabled admin again."""
    with context() as ctx:
        view = admins.set_disabled(ctx, actor(), username, False)
    console.print(f"Enabled the admin [bold]{view.username}[/].", highlight=False)


@app.command("role")
@reports_errors
def set_role(
    username: str = NAME,
    role: str = typer.Argument(..., metavar="ROLE", help="superadmin or domain_admin."),
) -> None:
    """Make an admin a superadmin or a domain admin (a domain admin keeps its domains)."""
    with context() as ctx:
        view = admins.set_role(ctx, actor(), username, role)
    console.print(
        f"[bold]{view.username}[/] is now a {_role_text(view.role)} ({_domains_text(view)}).",
        highlight=False,
    )


@app.command("grant")
@reports_errors
def grant_domains(username: str = NAME, domains: list[str] = DOMAINS) -> None:
    """Grant domains to a domain admin (one it has already is no error)."""
    with context() as ctx:
        view = admins.grant(ctx, actor(), username, domains)
    console.print(f"[bold]{view.username}[/] now has: {_domains_text(view)}.", highlight=False)


@app.command("ungrant")
@reports_errors
def ungrant_domains(username: str = NAME, domains: list[str] = DOMAINS) -> None:
    """Take domains back from a domain admin, at once for its tokens and API keys."""
    with context() as ctx:
        view = admins.revoke(ctx, actor(), username, domains)
    console.print(f"[bold]{view.username}[/] now has: {_domains_text(view)}.", highlight=False)
