"""``mailctl domain list|add|limits|rm``."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, read_password, reports_errors
from mailctl.domain.sizes import shown_size
from mailctl.services import domains, quotas

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


@app.command("limits")
@reports_errors
def domain_limits(
    name: str,
    max_mailboxes: str | None = typer.Option(
        None, "--max-mailboxes", help="How many mailboxes it may have (0: no limit)."
    ),
    max_aliases: str | None = typer.Option(
        None, "--max-aliases", help="How many aliases it may have (0: no limit)."
    ),
    max_quota: str | None = typer.Option(
        None, "--max-quota", help="Its mailboxes' quotas added up: 10G, 500M... (0: no limit)."
    ),
) -> None:
    """Show a domain's limits, or change those given; checked when something is created."""
    with context() as ctx:
        if max_mailboxes is None and max_aliases is None and max_quota is None:
            limits = quotas.domain_limits(ctx, actor(), name)
        else:
            limits = quotas.set_domain_limits(
                ctx,
                actor(),
                name,
                max_mailboxes=max_mailboxes,
                max_aliases=max_aliases,
                max_quota=max_quota,
            )
    table = Table("limit", "has", "may have")
    table.add_row("mailboxes", str(limits.mailboxes), str(limits.max_mailboxes or "unlimited"))
    table.add_row("aliases", str(limits.aliases), str(limits.max_aliases or "unlimited"))
    table.add_row(
        "total quota",
        shown_size(limits.quota_bytes) if limits.quota_bytes else "0",
        shown_size(limits.max_quota_bytes),
    )
    console.print(f"Limits of [bold]{limits.domain}[/]:", highlight=False)
    console.print(table)


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
