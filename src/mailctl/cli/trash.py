"""``mailctl trash list|restore|purge``: undo a delete, or drop old deleted mail for good."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from mailctl.cli import remote
from mailctl.cli.common import (
    REMOTE_PASSWORD,
    REMOTE_TOKEN,
    REMOTE_URL,
    REMOTE_USERNAME,
    actor,
    console,
    context,
    remote_client,
    reports_errors,
)
from mailctl.errors import UpstreamError
from mailctl.services import leftovers, trash

app = typer.Typer(help="Deleted mailboxes and domains: list, restore, purge.", no_args_is_help=True)


def _print_items(items: list[trash.TrashItem]) -> None:
    """Each entry's id on a line of its own, never cut or wrapped, so it can be copied whole."""
    for item in items:
        when = item.deleted_at.strftime("%Y-%m-%d %H:%M:%S UTC") if item.deleted_at else "?"
        count = f"{item.mailboxes} mailbox" + ("" if item.mailboxes == 1 else "es")
        mail = "mail kept" if item.has_data else "no mail"
        console.print(item.id, style="bold", soft_wrap=True, highlight=False, markup=False)
        console.print(
            f"    {item.kind} {item.target}, deleted {when}, {count}, {mail}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


def _item(raw: dict[str, Any]) -> trash.TrashItem:
    """An entry of a remote trash, as GET /trash answers it."""
    when = raw.get("deleted_at")
    try:
        return trash.TrashItem(
            id=str(raw["id"]),
            kind=str(raw["kind"]),
            target=str(raw["target"]),
            deleted_at=datetime.fromisoformat(when) if isinstance(when, str) else None,
            has_data=bool(raw["has_data"]),
            mailboxes=int(raw["mailboxes"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"The remote trash list is not what mailctl answers: {exc}.") from exc


@app.command("list")
@reports_errors
def list_trash(
    url: str | None = REMOTE_URL,
    token: str | None = REMOTE_TOKEN,
    username: str | None = REMOTE_USERNAME,
    password: str | None = REMOTE_PASSWORD,
) -> None:
    """List what is in the trash, oldest first."""
    if url:
        with remote_client(url, token, username, password) as client:
            items = [_item(raw) for raw in remote.list_trash(client)]
    else:
        with context() as ctx:
            items = trash.list_trash(ctx)
    if not items:
        console.print("The trash is empty.")
        return
    _print_items(items)


def _restored(kind: str, target: str, mailboxes: int) -> None:
    console.print(
        f"Restored the {kind} [bold]{target}[/] ({mailboxes} mailboxes).", highlight=False
    )


@app.command("restore")
@reports_errors
def restore(
    trash_id: str = typer.Argument(..., metavar="ID", help="The id from trash list."),
    url: str | None = REMOTE_URL,
    token: str | None = REMOTE_TOKEN,
    username: str | None = REMOTE_USERNAME,
    password: str | None = REMOTE_PASSWORD,
) -> None:
    """Restore a deleted mailbox or domain with its passwords, aliases, keys and mail."""
    if url:
        # The remote API renders its host's files itself after the restore.
        with remote_client(url, token, username, password) as client:
            answer = remote.restore_trash(client, trash_id)
        _restored(str(answer["kind"]), str(answer["target"]), int(answer["mailboxes"]))
        return
    with context() as ctx:
        # A maildir a killed create left in the way would refuse the restore.
        leftovers.clean_up(ctx)
        restored = trash.restore(ctx, actor(), trash_id)
    _restored(restored.kind, restored.target, restored.mailboxes)


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
            _print_items(doomed)
            typer.confirm(f"Delete these {len(doomed)} entries for good?", abort=True)
        purged = trash.purge(ctx, older_than, trash_id)
    for item in purged:
        console.print(f"Purged {item.kind} {item.target} ({item.id}).", highlight=False)
