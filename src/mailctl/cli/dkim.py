"""``mailctl dkim add|show|rotate|list|rm``."""

from __future__ import annotations

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, err_console, reports_errors
from mailctl.cli.hostcmds import print_outcome
from mailctl.domain.dkim import KEY_TYPES
from mailctl.errors import HostStateError
from mailctl.services import dkim
from mailctl.services.dkim import DkimKeyView, DkimResult

app = typer.Typer(help="Manage DKIM signing keys.", no_args_is_help=True)

_KEY_TYPE_HELP = f"Key type: {', '.join(KEY_TYPES)} (default: the configured one, rsa2048)."


def print_key(view: DkimKeyView) -> None:
    """Show the DNS record to publish, and the same as opendkim-genkey's zone-file stub."""
    console.print(
        f"DKIM key [bold]{view.selector}[/] of [bold]{view.domain}[/] ({view.key_type})",
        highlight=False,
    )
    console.print("Publish this DNS record:", highlight=False)
    console.print(f"  name:  {view.dns.name}", highlight=False, soft_wrap=True)
    console.print(f"  type:  {view.dns.type}", highlight=False)
    console.print(f"  value: {view.dns.value}", highlight=False, soft_wrap=True)
    console.print("As a zone file entry:", highlight=False)
    # Written as is: Rich would expand the tabs that make it a zone-file line.
    typer.echo(view.public, nl=False)


def _report(result: DkimResult) -> None:
    if result.action == dkim.CREATED:
        console.print(f"Created a DKIM key for {result.key.domain}.", highlight=False)
    elif result.action == dkim.ROTATED and result.retired is not None:
        domain = result.key.domain
        console.print(
            f"Rotated the DKIM key of {domain} to the new selector {result.key.selector}. "
            f"The previous key ({result.retired}) is retired: it no longer signs, but keep "
            "its DNS record published until mail signed with it has been delivered (a few "
            f"days), then remove it: mailctl dkim rm {domain} {result.retired}",
            highlight=False,
            soft_wrap=True,
        )
    elif result.action == dkim.ROTATED:
        console.print(
            f"Replaced the DKIM key of {result.key.domain} under the same selector: update "
            "its DNS record now; mail signed with the old key no longer verifies.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"{result.key.domain} has a DKIM key already.", highlight=False)
    print_key(result.key)
    print_outcome(result.reload)
    if not result.reload.ok:
        err_console.print(
            "[bold red]error:[/] the key is stored, but this host's OpenDKIM was not updated.",
            highlight=False,
        )
        raise typer.Exit(HostStateError.exit_code)


@app.command("add")
@reports_errors
def add_key(
    domain: str,
    selector: str | None = typer.Option(None, help="DNS selector (default: the configured one)."),
    key_type: str | None = typer.Option(None, "--key-type", help=_KEY_TYPE_HELP),
) -> None:
    """Give a domain a DKIM key, or show the one it has."""
    with context(reports_reload=True) as ctx:
        result = dkim.add_key(ctx, actor(), domain, selector, key_type)
    _report(result)


@app.command("rotate")
@reports_errors
def rotate_key(
    domain: str,
    selector: str | None = typer.Option(
        None,
        help="DNS selector of the new key (default: a new one from the date, like "
        "mail2026-11; the current selector replaces its key in place).",
    ),
    key_type: str | None = typer.Option(
        None, "--key-type", help="Key type of the new key (default: the current key's)."
    ),
) -> None:
    """Sign a domain's mail with a new DKIM key under a new selector; the old key is retired.

    The retired key stops signing but stays listed (`mailctl dkim list`, `mailctl dns`):
    keep its DNS record until mail signed with it has arrived, then `mailctl dkim rm`.
    """
    with context(reports_reload=True) as ctx:
        result = dkim.rotate_key(ctx, actor(), domain, selector, key_type)
    _report(result)


@app.command("show")
@reports_errors
def show_key(domain: str) -> None:
    """Show the DNS record of a domain's DKIM key."""
    with context() as ctx:
        view = dkim.get_key(ctx, domain)
    print_key(view)


@app.command("list")
@reports_errors
def list_keys(domain: str) -> None:
    """List a domain's keys: the one that signs, and those a rotation retired."""
    with context() as ctx:
        name, views = dkim.list_keys(ctx, domain)
    if not views:
        console.print(f"{name} has no DKIM key.", highlight=False)
        return
    table = Table("selector", "type", "state", "DNS name")
    for view in views:
        table.add_row(
            view.selector, view.key_type, "signing" if view.active else "retired", view.dns.name
        )
    console.print(table)


@app.command("rm")
@reports_errors
def remove_key(
    domain: str,
    selector: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete one key of a domain (once its DNS record is no longer needed)."""
    if not yes:
        typer.confirm(f"Delete the DKIM key {selector} of {domain}?", abort=True)
    with context(reports_reload=True) as ctx:
        removed = dkim.remove_key(ctx, actor(), domain, selector)
    console.print(f"Deleted the DKIM key {removed.selector} of {removed.domain}.", highlight=False)
    if removed.was_active:
        console.print(
            f"It was the signing key: mail from {removed.domain} is no longer signed.",
            highlight=False,
        )
    print_outcome(removed.reload)
    if not removed.reload.ok:
        err_console.print(
            "[bold red]error:[/] the key is deleted, but this host's OpenDKIM was not updated.",
            highlight=False,
        )
        raise typer.Exit(HostStateError.exit_code)
