"""``mailctl setup`` (wire the mail daemons to mailctl's database) and ``mailctl dns DOMAIN``."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import typer
from rich.table import Table

from mailctl.cli.check import print_checks
from mailctl.cli.common import console, context, err_console, reports_errors
from mailctl.config import load_settings
from mailctl.errors import HostStateError, InvalidInputError
from mailctl.host.stack import DAEMON_COLUMNS, DAEMON_WRITES
from mailctl.services import daemon_role, dns, setup
from mailctl.services.setup import SetupOptions, SetupPlan, SetupResult

_BACKENDS = ("sqlite", "postgresql", "mariadb")


def _mailctl_command() -> tuple[str, ...]:
    found = shutil.which("mailctl")
    if found:
        return (str(Path(found).absolute()),)
    return (sys.executable, "-m", "mailctl")


def _show(plan: SetupPlan) -> None:
    for file in setup.shown_files(plan):
        group = f", group {file.group}" if file.group else ""
        # A plain header line: a path is what the reader copies, so it is never cut short.
        console.print(
            f"==> {file.path} (mode {file.mode:04o}{group}, {file.daemon})",
            style="bold",
            highlight=False,
            soft_wrap=True,
        )
        console.print(file.content, markup=False, highlight=False, soft_wrap=True)
    console.print("==> folders", style="bold", highlight=False)
    for folder in plan.directories:
        owner = f" owner {folder.owner}" if folder.owner is not None else ""
        console.print(f"{folder.path} (mode {folder.mode:04o}{owner})", highlight=False)


def _show_reloads(plan: SetupPlan) -> None:
    # Reconcile and the agent reload with these after a DKIM or certificate change.
    for daemon, argv in plan.reload_commands:
        console.print(f"reload with {daemon}: {shlex.join(argv)}", highlight=False, soft_wrap=True)


def _warn(plan: SetupPlan) -> None:
    for warning in plan.warnings:
        err_console.print(f"[bold yellow]note:[/] {warning}", highlight=False, soft_wrap=True)


def _warn_of_refusal(plan: SetupPlan) -> None:
    if plan.refusal is not None:
        err_console.print(
            f"[bold red]WARNING: --apply will refuse.[/] {plan.refusal}",
            highlight=False,
            soft_wrap=True,
        )


def _grants(apply: bool, admin_url: str | None) -> None:
    settings = load_settings()
    if not apply:
        # Plain output, so it can be piped into psql or mariadb as it stands.
        for statement in daemon_role.grant_sql(settings):
            typer.echo(f"{statement};")
        return
    ran = daemon_role.apply_grants(settings, admin_url)
    who = "the admin URL" if admin_url else "mailctl's own login"
    console.print(
        f"Ran {len(ran)} statements through {who}: the daemons' role may read "
        + ", ".join(f"{table}({', '.join(columns)})" for table, columns in DAEMON_COLUMNS.items())
        + f" and write {', '.join(DAEMON_WRITES)}.",
        highlight=False,
        soft_wrap=True,
    )


def _report(result: SetupResult) -> None:
    for path in result.created_dirs:
        console.print(f"created {path}", highlight=False, soft_wrap=True)
    for path in result.written:
        console.print(f"wrote   {path}", highlight=False, soft_wrap=True)
    if result.unchanged:
        console.print(f"{len(result.unchanged)} files were up to date.", highlight=False)
    for check in result.checks:
        console.print(f"check   {check.daemon}: {check.status}", highlight=False)
    for reload in result.reloads:
        detail = f" ({reload.detail})" if reload.detail else ""
        line = f"reload  {reload.daemon}: {reload.status}{detail}"
        if reload.status == "failed":
            err_console.print(f"[bold red]{line}[/]", highlight=False, soft_wrap=True)
        else:
            console.print(line, highlight=False, soft_wrap=True)
    if result.record is not None:
        console.print(f"recorded {result.record}", highlight=False, soft_wrap=True)
    print_checks(result.health)
    if any(path.suffix == ".service" for path in result.written):
        console.print(
            "Units written: run `systemctl daemon-reload` and "
            "`systemctl enable --now mailctl mailctl-agent`.",
            highlight=False,
            soft_wrap=True,
        )


@reports_errors
def setup_command(
    backend: str | None = typer.Option(
        None, help="sqlite, postgresql or mariadb; must agree with MAILCTL_DATABASE_URL."
    ),
    apply: bool = typer.Option(
        False, "--apply/--dry-run", help="Write, check and reload (default: only print)."
    ),
    root: Path | None = typer.Option(
        None, help="Lay the daemons' folders out below this folder, not Debian's paths."
    ),
    postfix_dir: Path | None = typer.Option(None, help="Postfix's folder (/etc/postfix)."),
    dovecot_dir: Path | None = typer.Option(None, help="Dovecot's folder (/etc/dovecot)."),
    opendkim_dir: Path | None = typer.Option(None, help="Folder of opendkim.conf (/etc)."),
    hostname: str | None = typer.Option(
        None, help="Name the daemons greet with (default: MAILCTL_MAIL_HOSTNAME)."
    ),
    listen: str = typer.Option("*", help="IPv4 address to listen on; '*' for all."),
    smtp_port: int = typer.Option(25, min=1, max=65535),
    submission_port: int = typer.Option(587, min=1, max=65535),
    imap_port: int = typer.Option(143, min=1, max=65535),
    imaps_port: int = typer.Option(993, min=1, max=65535),
    milter_port: int = typer.Option(8891, min=1, max=65535, help="OpenDKIM on 127.0.0.1."),
    reinject_port: int = typer.Option(
        10025, min=1, max=65535, help="Postfix on 127.0.0.1 for Sieve's replies and redirects."
    ),
    systemd: bool = typer.Option(
        False, help="Also write units for `mailctl serve` and `mailctl agent` (with --apply)."
    ),
    systemd_dir: Path = typer.Option(Path("/etc/systemd/system"), help="Where units go."),
    env_file: Path = typer.Option(
        Path("/etc/mailctl/env"), help="The units' environment file (MAILCTL_* settings)."
    ),
    grants: bool = typer.Option(
        False,
        "--grants",
        help="Print the SQL that creates the daemons' role of MAILCTL_DAEMON_DATABASE_URL "
        "(password included) and lets it read only their columns; with --apply, run it.",
    ),
    admin_url: str | None = typer.Option(
        None,
        help="With --grants --apply: a superuser's database URL, to create the role too "
        "(default: only grant, as mailctl's own login).",
    ),
) -> None:
    """Render Postfix, Dovecot and OpenDKIM for mailctl's database; print, or apply them."""
    if admin_url is not None and not (grants and apply):
        raise InvalidInputError("--admin-url is for --grants --apply.")
    if grants:
        _grants(apply, admin_url)
        return
    if backend is not None and backend not in _BACKENDS:
        raise InvalidInputError(f"--backend must be one of {', '.join(_BACKENDS)}.")
    if systemd and not apply:
        raise InvalidInputError("--systemd writes units, so it needs --apply.")
    options = SetupOptions(
        backend=backend,
        root=root,
        postfix_dir=postfix_dir,
        dovecot_dir=dovecot_dir,
        opendkim_dir=opendkim_dir,
        hostname=hostname,
        listen_address=listen,
        smtp_port=smtp_port,
        submission_port=submission_port,
        imap_port=imap_port,
        imaps_port=imaps_port,
        milter_port=milter_port,
        reinject_port=reinject_port,
        systemd_dir=systemd_dir if systemd else None,
        env_file=env_file,
        mailctl_command=_mailctl_command(),
    )
    plan = setup.plan_setup(load_settings(), options)
    if not apply:
        _show(plan)
        _show_reloads(plan)
        _warn(plan)
        _warn_of_refusal(plan)
        console.print("Dry run: nothing was written. Run again with --apply.", highlight=False)
        return
    _show_reloads(plan)
    _warn(plan)
    with context() as ctx:
        result = setup.apply_setup(plan, ctx)
    _report(result)
    if not result.health.ok:
        err_console.print(
            "[bold red]error:[/] the files are in place, but the checks above failed.",
            highlight=False,
        )
        raise typer.Exit(HostStateError.exit_code)
    if not result.ok:
        err_console.print(
            "[bold red]error:[/] the files are in place, but a running daemon refused to reload.",
            highlight=False,
        )
        raise typer.Exit(HostStateError.exit_code)


@reports_errors
def dns_command(
    domain: str,
    zone: bool = typer.Option(False, "--zone", help="Print BIND zone-file lines."),
    mx: str | None = typer.Option(None, help="Mail host name (default: MAILCTL_MAIL_HOSTNAME)."),
    mx_priority: int = typer.Option(dns.DEFAULT_MX_PRIORITY, min=0, max=65535),
    spf_all: str = typer.Option("-all", help="SPF's last term: -all, ~all or ?all."),
    dmarc_policy: str = typer.Option("quarantine", help="none, quarantine or reject."),
    dmarc_rua: str | None = typer.Option(
        None, help="Address for DMARC aggregate reports (default: postmaster@DOMAIN)."
    ),
    ttl: int = typer.Option(dns.DEFAULT_TTL, min=60, help="TTL of the zone-file lines."),
) -> None:
    """Print the DNS records a domain needs: MX, SPF, DKIM and DMARC.

    Every DKIM key is listed: the signing one, and those a rotation retired, whose records
    stay published until the mail they signed has arrived.
    """
    with context() as ctx:
        found = dns.domain_dns(
            ctx,
            domain,
            mail_host=mx,
            mx_priority=mx_priority,
            spf_all=spf_all,
            dmarc_policy=dmarc_policy,
            dmarc_report_to=dmarc_rua,
        )
    if zone:
        # Plain output: Rich would expand the tabs that make these zone-file lines.
        typer.echo(found.zone(ttl), nl=False)
    else:
        table = Table(title=f"DNS records for {found.domain}", title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("type", no_wrap=True)
        table.add_column("value", overflow="fold")
        table.add_column("DKIM key", no_wrap=True)
        for record in found.records:
            table.add_row(record.name, record.type, record.value, record.note)
        console.print(table, highlight=False)
    for selector in found.retired_selectors:
        err_console.print(
            f"[bold yellow]note:[/] the retired DKIM key {selector} no longer signs; keep "
            "its record until the mail it signed has been delivered (a few days), then "
            f"`mailctl dkim rm {found.domain} {selector}`.",
            highlight=False,
            soft_wrap=True,
        )
    if found.dkim_missing:
        err_console.print(
            f"[bold yellow]note:[/] no DKIM key signs the mail of {found.domain}: "
            f"`mailctl dkim add {found.domain}` makes one.",
            highlight=False,
            soft_wrap=True,
        )
