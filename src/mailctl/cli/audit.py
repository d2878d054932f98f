"""``mailctl audit``: the audit log on this host, newest first, a page at a time."""

from __future__ import annotations

import json
import shlex

import typer
from rich.table import Table
from rich.text import Text

from mailctl.cli.common import console, context, err_console, reports_errors
from mailctl.services import audit
from mailctl.services.paging import MAX_LIMIT

WHEN = "ISO 8601 date-time (UTC unless it gives an offset) or Unix seconds"


def _table(entries: list[audit.AuditEntryView]) -> Table:
    table = Table("id", "at (UTC)", "admin", "action", "target", "domain", "from", "detail")
    for entry in entries:
        # Text, not markup: a name or detail holding [brackets] is shown as it is.
        cells = (
            str(entry.id),
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.admin,
            entry.action,
            entry.target,
            entry.domain or "",
            entry.client_address or "",
            entry.detail or "",
        )
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _next_page(given: dict[str, str | None], after: int) -> str:
    """The command that shows the next page: the same filters and limit, from ``after``."""
    words = ["mailctl", "audit"]
    for option, value in given.items():
        if value is not None:
            words += [option, value]
    return shlex.join([*words, "--after", str(after)])


@reports_errors
def audit_command(
    admin: str | None = typer.Option(None, "--admin", help="Only the changes of this admin."),
    domain: str | None = typer.Option(None, "--domain", help="Only the changes of this domain."),
    action: str | None = typer.Option(
        None, "--action", help="Only this action, such as create_user."
    ),
    since: str | None = typer.Option(None, "--since", help=f"From this moment on: {WHEN}."),
    until: str | None = typer.Option(None, "--until", help=f"Up to this moment: {WHEN}."),
    limit: int | None = typer.Option(
        None,
        "--limit",
        help=f"At most this many entries, 1 to {MAX_LIMIT} (default {audit.DEFAULT_LIMIT}).",
    ),
    after: int | None = typer.Option(
        None, "--after", metavar="ID", help="Only entries older than this id (the next page)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per line, each entry as GET /audit answers it."
    ),
) -> None:
    """Show who changed what and when, newest first (every domain: this is the host)."""
    filters = audit.read_filters(admin, domain, action, since, until)
    page = audit.read_audit_page(
        None if limit is None else str(limit), None if after is None else str(after)
    )
    with context() as ctx:
        found = audit.list_entries(ctx, None, filters, page)
    if as_json:
        for entry in found.items:
            typer.echo(json.dumps(entry.as_json()))
    elif found.items:
        console.print(_table(found.items))
    else:
        console.print("No audit entries match.")
    if found.next_after is not None:
        given = {
            "--admin": admin,
            "--domain": domain,
            "--action": action,
            "--since": since,
            "--until": until,
            "--limit": None if limit is None else str(limit),
        }
        # On standard error with --json, so that standard output stays one entry per line.
        shown = err_console if as_json else console
        shown.print(
            f"More entries: {_next_page(given, found.next_after)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
