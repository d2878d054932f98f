"""What every command shares: the context, the acting user, errors as exit codes."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console

from mailctl.cli import remote
from mailctl.config import Settings, load_settings
from mailctl.domain.numbers import ascii_digits
from mailctl.errors import MailctlError, reported
from mailctl.services import domains
from mailctl.services.context import Actor, Context
from mailctl.services.private_files import secure_files

console = Console()
err_console = Console(stderr=True)

# The options of the commands that also work against a remote mailctl's API.
REMOTE_URL = typer.Option(None, "--url", help="Work against the mailctl API at this URL.")
REMOTE_TOKEN = typer.Option(
    None, "--token", envvar="MAILCTL_TOKEN", help="API token for --url (or MAILCTL_TOKEN)."
)
REMOTE_USERNAME = typer.Option(None, "--username", help="Admin to log in as with --url.")
REMOTE_PASSWORD = typer.Option(None, "--password", help="Its password (asked for if missing).")

P = ParamSpec("P")
R = TypeVar("R")


def checked_settings(create_database: bool = False, **overrides: Any) -> Settings:
    """The settings, once the data folder and database files are private (one line per fix)."""
    settings = load_settings(**overrides)
    for notice in secure_files(settings, create_database=create_database):
        err_console.print(f"notice: {notice}", highlight=False, soft_wrap=True)
    return settings


@contextmanager
def context(initialised: bool = True, reports_reload: bool = False) -> Iterator[Context]:
    """The context of one command; a committed change re-renders this host's files.

    Unless ``initialised`` is False (`mailctl init` itself), a database `mailctl init`
    has not set up is refused at once, with that advice, and nothing is created.

    The services reconcile after each committed change (``Context.changed``), as they do
    for the API: a change made here renders exactly the files the same change made through
    the API would. The change stands if that fails; unless the command ``reports_reload``
    itself, this says so, and `mailctl reconcile` (or the agent) tries again.
    """
    ctx = Context.from_settings(checked_settings(create_database=not initialised))
    try:
        if initialised:
            ctx.database.require_schema()
        yield ctx
    finally:
        ctx.close()
    outcome = ctx.last_reconcile
    if outcome is not None and not outcome.ok and not reports_reload:
        reason = outcome.error or "; ".join(
            f"reload of {problem.daemon} failed ({problem.status}): {problem.detail.strip()}"
            for problem in outcome.report.failures
        )
        err_console.print(
            f"[yellow]warning:[/] the change is saved, but this host's files were not updated: "
            f"{reason}. Run `mailctl reconcile` once that is fixed.",
            highlight=False,
            soft_wrap=True,
        )


def actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(f"cli:{user}"[:64], None)


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print a mailctl error as one clear line and exit with its code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (MailctlError, OSError) as exc:
            shown = reported(exc)
            if shown is None:
                raise  # an OSError no layer expected: a bug, with its traceback
            err_console.print(
                f"[bold red]error:[/] {shown.message}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(shown.exit_code) from exc

    return wrapper


def read_password(given: str | None, from_stdin: bool, confirm: bool = True) -> str:
    """A password from the option, standard input, or an interactive prompt."""
    if given is not None:
        return given
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return value


def domain_id_of(ctx: Context, domain: str) -> str:
    """The id of a domain given by name or by id, as the list commands take it."""
    if ascii_digits(domain):
        return domain
    return str(domains.get_domain(ctx, domain).id)


@contextmanager
def remote_client(
    url: str, token: str | None, username: str | None, password: str | None
) -> Iterator[httpx.Client]:
    """A logged-in client for the API at ``url``; asks for the password a username lacks."""
    if username and password is None:
        password = typer.prompt("Password", hide_input=True)
    with remote.connect(url, token, username, password) as client:
        yield client
