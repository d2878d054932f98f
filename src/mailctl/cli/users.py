"""``mailctl user list|add|passwd|rm``."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, domain_id_of, read_password, reports_errors
from mailctl.domain.names import parse_address
from mailctl.services import domains, mailboxes

app = typer.Typer(help="Manage mailboxes.", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_users(domain: str) -> None:
    """List the mailboxes of a domain (by name or id)."""
    with context() as ctx:
        domain_id = domain_id_of(ctx, domain)
        views = mailboxes.list_users(ctx, domain_id)
    table = Table("id", "domain_id", "email")
    for view in views:
        table.add_row(str(view.id), str(view.domain_id), view.email)
    console.print(table)


@app.command("add")
@reports_errors
def add_user(
    email: str,
    password: str | None = typer.Option(None, help="The password (prompted for if absent)."),
    password_stdin: bool = typer.Option(False, help="Read the password from standard input."),
) -> None:
    """Create a mailbox in an existing domain."""
    address = parse_address(email)
    secret = read_password(password, password_stdin)
    with context() as ctx:
        domain = domains.get_domain(ctx, address.domain)
        view = mailboxes.create_user(ctx, actor(), domain.id, address.email, secret)
    console.print(f"Created mailbox [bold]{view.email}[/] (id {view.id}).", highlight=False)


@app.command("passwd")
@reports_errors
def change_password(
    email: str,
    password: str | None = typer.Option(None, help="The new password (prompted for if absent)."),
    password_stdin: bool = typer.Option(False, help="Read the password from standard input."),
) -> None:
    """Change a mailbox's password."""
    secret = read_password(password, password_stdin)
    with context() as ctx:
        user = mailboxes.find_user(ctx, email)
        mailboxes.change_password(ctx, actor(), user.id, secret, user.domain_id)
    console.print(f"Changed the password of [bold]{user.email}[/].", highlight=False)


@app.command("rm")
@reports_errors
def remove_user(
    email: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a mailbox; its mail moves to the trash."""
    if not yes:
        typer.confirm(f"Delete the mailbox {email}?", abort=True)
    with context() as ctx:
        trash = mailboxes.delete_user(ctx, actor(), email)
    console.print(f"Deleted {trash.target}; its mail is in {trash.path}.", highlight=False)
    if trash.aliases:
        console.print(
            f"Its aliases went with it: {', '.join(trash.aliases)} (a restore brings them back).",
            highlight=False,
        )
