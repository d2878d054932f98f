"""``mailctl trash list|restore|purge``: undo a delete, or drop old deleted mail for good."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, err_console, reports_errors
from mailctl.services import trash
from mailctl.services.agent import reconcile_safely

app = typer.Typer(help="Deleted mailboxes and domains: list, restore, purge.", no_args_is_help=True)


def _table(items: list[trash.TrashItem]) -> Table:
    table = Table("id", "kind", "target", "deleted at (UTC)", "mailboxes", "mail")
    for item in items:
        when = item.deleted_at.strftime("%Y-%m-%d %H:%M:%S") if item.deleted_at else "?"
        table.add_row(
            item.id,
            item.kind,
            item.target,
            when,
            str(item.mailboxes),
            "yes" if item.has_data else "no",
        )
    return table


@app.command("list")
@reports_errors
def list_trash() -> None:
    """List what is in the trash, oldest first."""
    with context() as ctx:
        items = trash.list_trash(ctx)
    if not items:
        console.print("The trash is empty.")
        return
    console.print(_table(items))


@app.command("restore")
@reports_errors
def restore(
    trash_id: str = typer.Argument(..., metavar="ID", help="The id from trash list."),
) -> None:
    """Restore a deleted mailbox or domain with its passwords, aliases, keys and mail."""
    with context() as ctx:
        restored = trash.restore(ctx, actor(), trash_id)
        # This process has no change listener: render the restored DKIM keys now.
        outcome = reconcile_safely(ctx) if restored.kind == "domain" else None
    console.print(
        f"Restored the {restored.kind} [bold]{restored.target}[/] "
        f"({restored.mailboxes} mailboxes).",
        highlight=False,
    )
    if outcome is not None and not outcome.ok:
        err_console.print(
            f"[yellow]warning:[/] the host files were not updated: {outcome.error or 'reload'}; "
            "run `mailctl reconcile`.",
            highlight=False,
        )


@app.command("purge")
@reports_errors
def purge(
    older_than: int | None = typer.Option(
        None, "--older-than", min=0, help="Age in days (default: the retention setting)."
    ),
    trash_id: str | None = typer.Option(None, "--id", help="Purge only this entry."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete old trash entries for good; this is the only command that destroys mail."""
    with context() as ctx:
        doomed = trash.purge(ctx, older_than, trash_id, dry_run=True)
        if not doomed:
            console.print("Nothing in the trash is old enough to purge.")
            return
        if not yes:
            console.print(_table(doomed))
            typer.confirm(f"Delete these {len(doomed)} entries for good?", abort=True)
        purged = trash.purge(ctx, older_than, trash_id)
    for item in purged:
        console.print(f"Purged {item.kind} {item.target} ({item.id}).", highlight=False)
