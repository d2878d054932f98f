"""``mailctl cert upload|status|issue``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, err_console, reports_errors
from mailctl.errors import InvalidInputError, TooLargeError, UnavailableError
from mailctl.services import certificates

app = typer.Typer(help="Manage TLS certificates.", no_args_is_help=True)


def _read(path: Path, what: str, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from exc
    if len(data) > max_bytes:
        raise TooLargeError(f"The {what} {path} is larger than {max_bytes} bytes.")
    return data


@app.command("upload")
@reports_errors
def upload(
    certificate: Path = typer.Argument(..., help="PEM file: the certificate, then its issuers."),
    key: Path = typer.Argument(..., help="PEM file: the unencrypted private key."),
    name: str | None = typer.Option(
        None,
        help="Store under this name, which the certificate must cover (default: the mail "
        "host name, which it must cover too, else the host name it names).",
    ),
    hostname: str | None = typer.Option(
        None, help="Host name the certificate must cover (its SAN, else its CN)."
    ),
) -> None:
    """Install a certificate chain and its key; refused before anything changes if wrong."""
    with context(reports_reload=True) as ctx:
        limit = ctx.settings.max_upload_bytes
        chain_pem = _read(certificate, "certificate file", limit)
        key_pem = _read(key, "key file", limit)
        result = certificates.upload_certificate(
            ctx, actor(), chain_pem, key_pem, name=name, hostname=hostname
        )
    view = result.certificate
    if result.rolled_back:
        for failure in result.reload.report.failures:
            err_console.print(f"{failure.daemon}: {failure.detail}", highlight=False)
        raise UnavailableError(
            f"Postfix or Dovecot refused the new certificate for {view.name}; the previous "
            "certificate was put back on disk and in the database."
        )
    console.print(
        f"Installed the certificate [bold]{view.name}[/], valid until "
        f"{view.not_after:%Y-%m-%d} ({view.days_left} days left).",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  {view.certificate_path}\n  {view.key_path}", highlight=False, soft_wrap=True)
    for daemon in result.reload.report.not_running:
        console.print(
            f"{daemon.capitalize()} is not running, so nothing was reloaded; it serves this "
            "certificate when it starts.",
            highlight=False,
            soft_wrap=True,
        )
    if not result.reload.ok:
        err_console.print(
            "[yellow]warning:[/] stored, but not yet on this host's disk: "
            f"{result.reload.error or 'a reload failed'}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("status")
@reports_errors
def status(
    hostname: str | None = typer.Argument(None, help="Look up this host name's days left."),
    port: int | None = typer.Option(None, help="Port of a live check (default: 443)."),
    starttls: str | None = typer.Option(None, help="auto, smtp, imap, pop3 or none."),
    live: bool = typer.Option(False, "--live", help="Check the server even if one is stored."),
) -> None:
    """List stored certificates with their days left, or look up one host name."""
    with context() as ctx:
        if hostname is None:
            views = certificates.list_certificates(ctx)
        else:
            found = certificates.days_left(ctx, hostname, port=port, starttls=starttls, live=live)
    if hostname is None:
        table = Table("name", "source", "names", "expires", "days left")
        for view in views:
            table.add_row(
                view.name,
                view.source,
                ", ".join(view.names),
                f"{view.not_after:%Y-%m-%d %H:%M} UTC",
                str(view.days_left),
            )
        console.print(table)
        return
    where = f"stored as {found.name}" if found.name else "live check"
    console.print(
        f"{found.hostname}: {found.days_left} days left, until "
        f"{found.not_after:%Y-%m-%d %H:%M} UTC ({where}).",
        highlight=False,
        soft_wrap=True,
    )


@app.command("issue")
@reports_errors
def issue(hostname: str = typer.Argument(..., help="Host name to get a certificate for.")) -> None:
    """Order a certificate over ACME now, waiting for it (Let's Encrypt unless configured)."""
    with context() as ctx, console.status(f"Ordering a certificate for {hostname}") as line:

        def progress(step: str) -> None:
            line.update(f"{hostname}: {step}")

        message = certificates.issue_now(ctx, actor(), hostname, progress)
    console.print(message, highlight=False, soft_wrap=True)
