"""``mailctl alias list|add|rm``."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, domain_id_of, reports_errors
from mailctl.domain.names import parse_alias_source
from mailctl.services import aliases, domains

app = typer.Typer(help="Manage aliases (forwarding addresses).", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_aliases(domain: str) -> None:
    """List the aliases of a domain (by name or id)."""
    with context() as ctx:
        domain_id = domain_id_of(ctx, domain)
        views = aliases.list_aliases(ctx, domain_id)
    if not views:
        console.print("The domain has no aliases.")
        return
    table = Table("id", "source", "destination")
    for view in views:
        table.add_row(str(view.id), view.source, view.destination)
    console.print(table)


@app.command("add")
@reports_errors
def add_alias(
    source: str = typer.Argument(..., help="user@domain, or @domain for every other address."),
    destination: str = typer.Argument(..., help="Where to send it; several: a@x,b@y."),
) -> None:
    """Send the mail of an address of a served domain to other addresses."""
    with context() as ctx:
        name = parse_alias_source(source).rsplit("@", 1)[1]
        domain = domains.get_domain(ctx, name)
        view = aliases.add_alias(ctx, actor(), domain.id, source, destination)
    console.print(f"Created the alias {view.source} to {view.destination}.", highlight=False)


@app.command("rm")
@reports_errors
def remove_alias(
    source: str,
    destination: str | None = typer.Argument(None, help="Only the alias to this destination."),
) -> None:
    """Remove the aliases of an address, or only the one to DESTINATION."""
    with context() as ctx:
        removed = aliases.delete_aliases(ctx, actor(), source, destination)
    for view in removed:
        console.print(f"Removed the alias {view.source} to {view.destination}.", highlight=False)
