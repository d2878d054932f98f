"""``mailctl user list|add|import|passwd|quota|rm|forward|autoreply``."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import typer
from rich.table import Table

from mailctl.cli.common import actor, console, context, domain_id_of, read_password, reports_errors
from mailctl.domain import sieve
from mailctl.domain.names import parse_address
from mailctl.domain.sizes import shown_size
from mailctl.errors import InvalidEntryError, InvalidInputError, TooLargeError
from mailctl.services import domains, mailbox_settings, mailboxes, quotas

app = typer.Typer(help="Manage mailboxes.", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_users(domain: str) -> None:
    """List the mailboxes of a domain (by name or id)."""
    with context() as ctx:
        domain_id = domain_id_of(ctx, domain)
        views = mailboxes.list_users(ctx, domain_id)
    table = Table("id", "domain_id", "email", "used", "quota", "messages")
    for view in views:
        messages = str(view.used_messages)
        if view.quota_messages:
            messages += f" / {view.quota_messages}"
        table.add_row(
            str(view.id),
            str(view.domain_id),
            view.email,
            shown_size(view.used_bytes) if view.used_bytes else "0",
            shown_size(view.quota_bytes),
            messages,
        )
    console.print(table)


@app.command("add")
@reports_errors
def add_user(
    email: str,
    password: str | None = typer.Option(None, help="The password (prompted for if absent)."),
    password_stdin: bool = typer.Option(False, help="Read the password from standard input."),
    quota: str | None = typer.Option(None, help="Its storage quota: bytes, or 500K, 10M, 2G."),
) -> None:
    """Create a mailbox in an existing domain."""
    address = parse_address(email)
    secret = read_password(password, password_stdin)
    with context() as ctx:
        domain = domains.get_domain(ctx, address.domain)
        view = mailboxes.create_user(ctx, actor(), domain.id, address.email, secret, quota=quota)
    console.print(f"Created mailbox [bold]{view.email}[/] (id {view.id}).", highlight=False)


_CSV_COLUMNS = ("email", "password", "password_hash", "quota")


def read_csv(text: str, limit: int) -> tuple[list[mailboxes.NewMailbox], list[int]]:
    """The entries of a CSV with a header row (``email`` and ``password`` or
    ``password_hash``, and an optional ``quota``), and the line each one starts on;
    InvalidInputError naming the line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInputError("The file is empty: give a header row and one mailbox a line.")
        names = [name.strip().lower() for name in header]
        unknown = [name for name in names if name not in _CSV_COLUMNS]
        if unknown or "email" not in names or len(set(names)) != len(names):
            raise InvalidInputError(
                f"Line 1: the header must be email,password or email,password_hash (and "
                f"quota if wanted), not {','.join(header)[:200]}."
            )
        if "password" not in names and "password_hash" not in names:
            raise InvalidInputError("Line 1: the header needs a password or password_hash column.")
        entries: list[mailboxes.NewMailbox] = []
        lines: list[int] = []
        start = reader.line_num + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                start = reader.line_num + 1
                continue  # a blank line
            if len(row) != len(names):
                raise InvalidInputError(
                    f"Line {start}: {len(row)} values where the header names {len(names)}."
                )
            if len(entries) == limit:
                raise TooLargeError(
                    f"The file has more than {limit} mailboxes, the most one import takes "
                    "(MAILCTL_MAX_BATCH_USERS); split it."
                )
            cells = {
                name: (cell if cell != "" else None) for name, cell in zip(names, row, strict=True)
            }
            entries.append(
                mailboxes.NewMailbox(
                    cells.get("email") or "",
                    cells.get("password"),
                    cells.get("password_hash"),
                    cells.get("quota"),
                )
            )
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInputError(f"Line {reader.line_num}: the CSV cannot be read ({exc}).") from exc
    return entries, lines


def _read_text(file: str) -> str:
    """The text of ``file`` (``-``: standard input), as UTF-8 with or without a BOM."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {file}: {exc.strerror}.") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{file} is not UTF-8 text (byte {exc.start}).") from exc


@app.command("import")
@reports_errors
def import_users(
    file: str = typer.Argument(
        ..., help="A CSV file (header email,password or email,password_hash); - for stdin."
    ),
    domain: str = typer.Option(
        ..., "--domain", help="The domain (name or id) the mailboxes are in."
    ),
) -> None:
    """Create many mailboxes from a CSV in one transaction: all of them, or none."""
    text = _read_text(file)
    with context() as ctx:
        entries, lines = read_csv(text, ctx.settings.max_batch_users)
        domain_id = domain_id_of(ctx, domain)
        try:
            views = mailboxes.create_users(ctx, actor(), domain_id, entries)
        except InvalidEntryError as exc:
            raise InvalidInputError(
                f"Line {lines[exc.index - 1]} ({exc.email}): {exc.reason} Nothing was imported."
            ) from exc
    console.print(
        f"Created {len(views)} mailbox{'es' if len(views) != 1 else ''} in {domain}.",
        highlight=False,
    )


@app.command("quota")
@reports_errors
def set_quota(
    email: str,
    size: str = typer.Argument(..., help="Bytes, or 500K, 10M, 2G; 0 or unlimited for none."),
    messages: str | None = typer.Option(
        None, "--messages", help="How many messages it may hold (0: no limit)."
    ),
) -> None:
    """Set a mailbox's storage quota (and message count); Dovecot enforces it at once."""
    with context() as ctx:
        view = quotas.set_user_quota(ctx, actor(), email=email, quota=size, messages=messages)
    count = f", at most {view.quota_messages} messages" if view.quota_messages else ""
    console.print(
        f"The quota of [bold]{view.email}[/] is {shown_size(view.quota_bytes)}{count}; it "
        f"holds {shown_size(view.used_bytes) if view.used_bytes else '0 B'} in "
        f"{view.used_messages} messages.",
        highlight=False,
    )


@app.command("passwd")
@reports_errors
def change_password(
    email: str,
    password: str | None = typer.Option(None, help="The new password (prompted for if absent)."),
    password_stdin: bool = typer.Option(False, help="Read the password from standard input."),
) -> None:
    """Change a mailbox's password."""
    secret = read_password(password, password_stdin)
    with context() as ctx:
        user = mailboxes.find_user(ctx, email)
        mailboxes.change_password(ctx, actor(), user.id, secret, user.domain_id)
    console.print(f"Changed the password of [bold]{user.email}[/].", highlight=False)


@app.command("rm")
@reports_errors
def remove_user(
    email: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a mailbox; its mail moves to the trash."""
    if not yes:
        typer.confirm(f"Delete the mailbox {email}?", abort=True)
    with context() as ctx:
        trash = mailboxes.delete_user(ctx, actor(), email)
    console.print(f"Deleted {trash.target}; its mail is in {trash.path}.", highlight=False)
    if trash.aliases:
        console.print(
            f"Its aliases went with it: {', '.join(trash.aliases)} (a restore brings them back).",
            highlight=False,
        )


def _show_settings(view: mailbox_settings.MailboxSettingsView) -> None:
    forward, reply = view.forwarding, view.autoreply
    if forward.enabled:
        copy = " (a copy stays)" if forward.keep_copy else ""
        console.print(f"Forwarding: to {', '.join(forward.destinations)}{copy}", highlight=False)
    else:
        console.print("Forwarding: off")
    if reply.enabled:
        dates = (f" from {reply.starts_on}" if reply.starts_on else "") + (
            f" until {reply.ends_on}" if reply.ends_on else ""
        )
        console.print(f"Auto-reply: on{dates}, subject {reply.subject!r}", highlight=False)
    else:
        console.print("Auto-reply: off")


@app.command("forward")
@reports_errors
def forward(
    email: str,
    destinations: list[str] | None = typer.Argument(None, help="Addresses to forward to."),
    keep_copy: bool = typer.Option(False, "--keep-copy", help="Keep a copy in the mailbox."),
    off: bool = typer.Option(False, "--off", help="Stop forwarding."),
) -> None:
    """Forward a mailbox's mail (through its Sieve script); without addresses, show it."""
    wanted = destinations or []
    if off and wanted:
        raise InvalidInputError("Give addresses to forward to, or --off, not both.")
    with context() as ctx:
        user_id = mailbox_settings.find_mailbox(ctx, actor(), email=email)
        if not wanted and not off:
            _show_settings(mailbox_settings.get_settings(ctx, user_id))
            return
        view = mailbox_settings.set_forwarding(ctx, actor(), user_id, ",".join(wanted), keep_copy)
    _show_settings(view)


@app.command("autoreply")
@reports_errors
def autoreply(
    email: str,
    subject: str | None = typer.Option(None, help="The reply's subject."),
    body_file: Path | None = typer.Option(
        None, help="A UTF-8 file with the reply's text ('-': standard input)."
    ),
    start: str | None = typer.Option(None, "--from", help="First day (ISO 8601), UTC."),
    until: str | None = typer.Option(None, "--until", help="Last day (ISO 8601), UTC."),
    off: bool = typer.Option(False, "--off", help="Stop replying (the texts are kept)."),
) -> None:
    """Turn a mailbox's auto-reply on or off; with no option, show it."""
    body = None
    if body_file is not None:
        if off:
            raise InvalidInputError("--off takes no --body-file.")
        body = _read_body(body_file)
    with context() as ctx:
        user_id = mailbox_settings.find_mailbox(ctx, actor(), email=email)
        if not off and subject is None and body is None and start is None and until is None:
            _show_settings(mailbox_settings.get_settings(ctx, user_id))
            return
        view = mailbox_settings.set_autoreply(
            ctx,
            actor(),
            user_id,
            enabled=not off,
            subject=subject,
            body=body,
            start=start,
            end=until,
        )
    _show_settings(view)


def _read_body(path: Path) -> str:
    limit = sieve.MAX_BODY_CHARS * 4
    try:
        data = sys.stdin.buffer.read(limit + 1) if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if len(data) > limit:
        raise TooLargeError(f"The auto-reply body is larger than {limit} bytes.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text.") from exc
