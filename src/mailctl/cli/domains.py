"""``mailctl domain list|add|rm``."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, read_password, reports_errors
from mailctl.services import domains

app = typer.Typer(help="Manage mail domains.", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_domains() -> None:
    """List domains with their number of mailboxes."""
    with context() as ctx:
        views = domains.list_domains(ctx)
    table = Table("id", "name", "users")
    for view in views:
        table.add_row(str(view.id), view.name, str(view.users_count))
    console.print(table)


@app.command("add")
@reports_errors
def add_domain(
    name: str,
    user: str | None = typer.Option(None, "--user", help="Also create this first mailbox."),
    password: str | None = typer.Option(None, help="Password of the first mailbox."),
    password_stdin: bool = typer.Option(False, help="Read that password from standard input."),
) -> None:
    """Create a domain, optionally with its first mailbox."""
    secret = read_password(password, password_stdin) if user else None
    with context() as ctx:
        view, user_view = domains.create_domain(ctx, actor(), name, user, secret)
    console.print(f"Created domain [bold]{view.name}[/] (id {view.id}).", highlight=False)
    if user_view is not None:
        console.print(
            f"Created mailbox [bold]{user_view.email}[/] (id {user_view.id}).", highlight=False
        )


@app.command("rm")
@reports_errors
def remove_domain(
    name: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a domain; its mail moves to the trash."""
    if not yes:
        typer.confirm(f"Delete the domain {name} and all its mailboxes?", abort=True)
    with context() as ctx:
        trash = domains.delete_domain(ctx, actor(), name)
    console.print(f"Deleted {trash.target}; its mail is in {trash.path}.", highlight=False)
