"""``mailctl key create|list|revoke``: API keys for scripts, made and revoked on the host."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, reports_errors
from mailctl.errors import InvalidInputError
from mailctl.services import api_keys
from mailctl.services.api_keys import MAX_DAYS, ApiKeyView

app = typer.Typer(help="Manage the API keys scripts use.", no_args_is_help=True)

DATE_FORMAT = "%Y-%m-%d"


def _domains_text(view: ApiKeyView) -> str:
    if view.domains is None:
        return f"every domain of {view.admin}"
    return ", ".join(view.domains) or "no domain"


def _access_text(view: ApiKeyView) -> str:
    return "read-only" if view.read_only else "read-write"


@app.command("create")
@reports_errors
def create_key(
    name: str = typer.Option(..., "--name", help="What the key is for (1-64 characters)."),
    admin: str | None = typer.Option(
        None, "--admin", help="The admin it acts for (default: MAILCTL_ADMIN_USERNAME, admin)."
    ),
    domain: list[str] | None = typer.Option(
        None,
        "--domain",
        help="Bind it to this domain (repeat for more; default: every domain of its admin).",
    ),
    read_only: bool = typer.Option(False, "--read-only", help="It may read, never change."),
    days: int | None = typer.Option(
        None, "--days", help=f"Days until it expires, 1-{MAX_DAYS} (default 365)."
    ),
    network: list[str] | None = typer.Option(
        None, "--network", help="Accept it only from this address range (repeat for more)."
    ),
) -> None:
    """Make an API key and print it: it is shown this once, and stored only as a hash."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"--days must be between 1 and {MAX_DAYS}.")
    with context() as ctx:
        made = api_keys.create_key(
            ctx,
            actor(),
            name=name,
            admin=admin or ctx.settings.admin_username,
            domains=domain or None,
            access="read" if read_only else "write",
            expires_days=days,
            networks=",".join(network) if network else None,
        )
    view = made.view
    expires = view.expires.strftime(DATE_FORMAT) if view.expires else "never"
    console.print(
        f"Made the API key [bold]{view.id}[/] ({view.name}) for {view.admin}: "
        f"{_access_text(view)}, {_domains_text(view)}, expires {expires}"
        + (f", from {', '.join(view.networks)}" if view.networks else "")
        + ".",
        highlight=False,
        soft_wrap=True,
    )
    # On a line of its own, never wrapped or marked up, so it can be copied whole.
    console.print(made.key, soft_wrap=True, highlight=False, markup=False)
    console.print(
        "The key is shown only this once: store it now. "
        "Scripts send it in the Auth-token header (or as a bearer token).",
        highlight=False,
        soft_wrap=True,
    )


@app.command("list")
@reports_errors
def list_keys(
    admin: str | None = typer.Option(
        None, "--admin", help="Whose keys (default: MAILCTL_ADMIN_USERNAME, admin)."
    ),
    every: bool = typer.Option(False, "--all", help="The keys of every admin."),
) -> None:
    """List the keys that still work: their ids and rights, never the keys themselves."""
    if every and admin:
        raise InvalidInputError("Give either --admin ADMIN or --all, not both.")
    with context() as ctx:
        wanted = "*" if every else admin or ctx.settings.admin_username
        views = api_keys.list_keys(ctx, actor(), wanted)
    if not views:
        console.print(
            "No API key works now." if every else f"{wanted} has no API key that works now.",
            highlight=False,
        )
        return
    table = Table()
    # The id whole, so it can be copied into `mailctl key revoke`.
    table.add_column("id", no_wrap=True, min_width=16)
    table.add_column("name", overflow="fold")
    if every:
        table.add_column("admin", overflow="fold")
    table.add_column("access", no_wrap=True)
    table.add_column("domains", overflow="fold")
    table.add_column("networks", overflow="fold")
    table.add_column("expires", no_wrap=True)
    for view in views:
        table.add_row(
            view.id,
            view.name,
            *([view.admin] if every else []),
            "read" if view.read_only else "write",
            "all" if view.domains is None else ", ".join(view.domains) or "none",
            ", ".join(view.networks) or "any",
            view.expires.strftime(DATE_FORMAT) if view.expires else "never",
        )
    console.print(table)


@app.command("revoke")
@reports_errors
def revoke_key(
    key: str = typer.Argument(..., metavar="ID", help="The key's id (from key list), or the key."),
) -> None:
    """Revoke an API key: it is refused from the next request on, by every API process."""
    with context() as ctx:
        view = api_keys.revoke_key(ctx, actor(), key)
    console.print(
        f"Revoked the API key [bold]{view.id}[/] ({view.name}) of {view.admin}.",
        highlight=False,
        soft_wrap=True,
    )
