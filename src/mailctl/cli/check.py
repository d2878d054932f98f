"""``mailctl check``: what works on this mail host and what does not, with the fix for each."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mailctl.cli.common import console, context, err_console, reports_errors
from mailctl.errors import HostStateError
from mailctl.services import setup
from mailctl.services.check import FAIL, OK, CheckReport

_STYLE = {OK: "green", FAIL: "bold red", "skip": "yellow"}


def print_checks(report: CheckReport) -> None:
    """One line per check; a failed one is followed by its fix."""
    for check in report.checks:
        style = _STYLE.get(check.status, "")
        console.print(
            f"[{style}]{check.status:<4}[/] {check.name}: {check.detail}",
            highlight=False,
            soft_wrap=True,
        )
        if check.fix:
            console.print(f"     fix: {check.fix}", highlight=False, soft_wrap=True)


@reports_errors
def check_command(
    as_json: bool = typer.Option(
        False, "--json", help='Print {"ok": ..., "checks": [{name, status, detail, fix}]}.'
    ),
    root: Path | None = typer.Option(
        None, help="The daemons' folders lie below this folder (as given to setup)."
    ),
    postfix_dir: Path | None = typer.Option(None, help="Postfix's folder (/etc/postfix)."),
    dovecot_dir: Path | None = typer.Option(None, help="Dovecot's folder (/etc/dovecot)."),
    opendkim_dir: Path | None = typer.Option(None, help="Folder of opendkim.conf (/etc)."),
    hostname: str | None = typer.Option(
        None, help="Name the daemons serve (default: MAILCTL_MAIL_HOSTNAME)."
    ),
    listen: str | None = typer.Option(None, help="The address the daemons listen on."),
    smtp_port: int | None = typer.Option(None, min=1, max=65535),
    submission_port: int | None = typer.Option(None, min=1, max=65535),
    imap_port: int | None = typer.Option(None, min=1, max=65535),
    imaps_port: int | None = typer.Option(None, min=1, max=65535),
    milter_port: int | None = typer.Option(None, min=1, max=65535),
    reinject_port: int | None = typer.Option(None, min=1, max=65535),
) -> None:
    """Check the daemons, their database lookups, DKIM keys and certificates.

    Checks what `mailctl setup --apply` configured on this host (Debian's layout if it
    never ran); the options given replace what it recorded. Exits 8 when a check fails.
    """
    given = {
        "root": root,
        "postfix_dir": postfix_dir,
        "dovecot_dir": dovecot_dir,
        "opendkim_dir": opendkim_dir,
        "hostname": hostname,
        "listen_address": listen,
        "smtp_port": smtp_port,
        "submission_port": submission_port,
        "imap_port": imap_port,
        "imaps_port": imaps_port,
        "milter_port": milter_port,
        "reinject_port": reinject_port,
    }
    overrides = {name: value for name, value in given.items() if value is not None}
    with context() as ctx:
        report = setup.check_host(ctx, overrides)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        print_checks(report)
    if not report.ok:
        if not as_json:
            count = len(report.failures)
            err_console.print(
                f"[bold red]{count} check{'s' if count != 1 else ''} failed.[/]", highlight=False
            )
        raise typer.Exit(HostStateError.exit_code)
