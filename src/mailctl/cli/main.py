"""The ``mailctl`` command: serve, init, and one sub-command per resource."""

from __future__ import annotations

import typer

from mailctl.cli import (
    admins,
    aliases,
    archives,
    audit,
    certs,
    check,
    dkim,
    domains,
    hostcmds,
    keys,
    setup,
    trash,
    users,
)
from mailctl.cli.common import checked_settings, console, context, reports_errors
from mailctl.services import auth
from mailctl.services.private_files import use_private_umask

app = typer.Typer(
    help="mailctl: the control plane of a self-hosted mail server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(admins.app, name="admin")
app.add_typer(keys.app, name="key")
app.add_typer(domains.app, name="domain")
app.add_typer(users.app, name="user")
app.add_typer(aliases.app, name="alias")
app.add_typer(dkim.app, name="dkim")
app.add_typer(certs.app, name="cert")
app.add_typer(trash.app, name="trash")
app.command("export")(archives.export_command)
app.command("import")(archives.import_command)
# `mailctl purge` is the name DESIGN.md and the README give; it is `trash purge`.
app.command("purge", help="Delete trash entries older than the retention period.")(trash.purge)
app.command("reconcile")(hostcmds.reconcile_command)
app.command("agent")(hostcmds.agent_command)
app.command("setup")(setup.setup_command)
app.command("dns")(setup.dns_command)
app.command("check")(check.check_command)
app.command("audit")(audit.audit_command)


@app.command()
@reports_errors
def init(
    username: str | None = typer.Option(None, help="Name of the first admin (default: admin)."),
    password_stdin: bool = typer.Option(
        False, help="Read the first admin's password from standard input."
    ),
) -> None:
    """Create the schema, the token secret and the first admin; safe to run again."""
    import sys

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with context(initialised=False) as ctx:
        result = auth.initialize(ctx, username, password)
        url = ctx.database.url
    console.print(f"Database ready: {_redacted(url)}", highlight=False)
    if result.admin_created:
        console.print(f"Created the admin [bold]{result.admin_username}[/].", highlight=False)
        if result.generated_password is not None:
            console.print(
                f"Its password, shown only this once: [bold]{result.generated_password}[/]",
                highlight=False,
            )
    else:
        console.print("An admin exists already; nothing to create.")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
@reports_errors
def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default 8000)."),
) -> None:
    """Run the HTTP API (one worker process per core unless MAILCTL_WORKERS says otherwise)."""
    from mailctl.api import server
    from mailctl.services.context import Context

    given: dict[str, object] = {"host": host, "port": port}
    overrides = {name: value for name, value in given.items() if value is not None}
    settings = checked_settings(False, **overrides)
    ctx = Context.from_settings(settings)
    try:
        # Say it now rather than answer every request with 503.
        ctx.database.require_schema()
    finally:
        ctx.close()
    server.serve(settings)


def main() -> None:
    use_private_umask()
    app()
