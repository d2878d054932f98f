"""``mailctl admin passwd|tokens|revoke``: the API's admin accounts, from the host."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli import totp
from mailctl.cli.common import actor, console, context, read_password, reports_errors
from mailctl.errors import InvalidInputError
from mailctl.services import accounts

app = typer.Typer(help="Manage the admins who use the API.", no_args_is_help=True)
app.add_typer(totp.app, name="totp")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
USERNAME = typer.Argument(None, help="The admin (default: MAILCTL_ADMIN_USERNAME, admin).")


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
