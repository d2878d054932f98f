"""The CLI calls the same use cases: init, domain and user commands, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.domain.passwords import verify_password
from mailctl.services.context import Context

# The commands reach the services the API tests drive on every backend, and `mailctl init`
# on PostgreSQL and MariaDB is run by tests/deploy: here, once on SQLite (tests/README.md).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def run(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "",
    }

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


def test_init_prints_generated_password_once(run) -> None:  # type: ignore[no-untyped-def]
    """init creates the first admin and shows its generated password only the first time."""
    first = run("init")
    assert first.exit_code == 0, first.output
    assert "Created the admin admin" in first.output
    assert "shown only this once" in first.output
    second = run("init")
    assert second.exit_code == 0
    assert "shown only this once" not in second.output


def test_init_takes_password_from_environment(run, database_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """MAILCTL_ADMIN_PASSWORD sets the first admin's password instead of generating one."""
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["init"],
        env={
            "MAILCTL_DATA_DIR": str(tmp_path / "data"),
            "MAILCTL_DATABASE_URL": database_url,
            "MAILCTL_ADMIN_PASSWORD": "from-the-env-123",
        },
    )
    assert result.exit_code == 0, result.output
    assert "shown only this once" not in result.output
    from mailctl.config import Settings

    ctx = Context.from_settings(Settings(data_dir=tmp_path / "data", database_url=database_url))
    with ctx.uow() as uow:
        admin = uow.admins.by_username("admin")
        assert admin is not None
        assert verify_password("from-the-env-123", admin.password)
    ctx.close()


def test_domain_and_user_commands(run) -> None:  # type: ignore[no-untyped-def]
    """A full round: add a domain with a mailbox, list, add, passwd, rm."""
    assert run("init").exit_code == 0
    added = run(
        "domain", "add", "example.com", "--user", "a@example.com", "--password", "pw-123456"
    )
    assert added.exit_code == 0, added.output
    assert "Created domain example.com" in added.output
    listing = run("domain", "list")
    assert "example.com" in listing.output and "1" in listing.output
    user = run("user", "add", "b@example.com", "--password-stdin", input="pw-7654321\n")
    assert user.exit_code == 0, user.output
    users = run("user", "list", "example.com")
    assert "a@example.com" in users.output and "b@example.com" in users.output
    passwd = run("user", "passwd", "b@example.com", "--password", "another-pass")
    assert passwd.exit_code == 0, passwd.output
    removed = run("user", "rm", "b@example.com", "--yes")
    assert removed.exit_code == 0
    # The path is long (pytest's folder for this worker) and wrapped at the console width.
    assert "trash" in removed.output.replace("\n", "")
    assert "b@example.com" not in run("user", "list", "example.com").output
    assert run("domain", "rm", "example.com", "--yes").exit_code == 0
    assert "example.com" not in run("domain", "list").output


def test_errors_have_exit_codes(run) -> None:  # type: ignore[no-untyped-def]
    """Bad input, unknown and duplicate names give distinct exit codes and one clear line."""
    assert run("init").exit_code == 0
    bad = run("domain", "add", "../etc")
    assert bad.exit_code == 2
    assert "error:" in bad.output
    assert run("domain", "rm", "missing.example", "--yes").exit_code == 4
    assert run("domain", "add", "example.com").exit_code == 0
    assert run("domain", "add", "example.com").exit_code == 5
    assert run("user", "add", "x@nowhere.example", "--password", "pw-123456").exit_code == 4


def test_alias_commands(run) -> None:  # type: ignore[no-untyped-def]
    """alias add/list/rm manage forwarding addresses; mistakes exit with the usual codes."""
    assert run("init").exit_code == 0
    assert run("domain", "add", "example.com").exit_code == 0
    assert "The domain has no aliases." in run("alias", "list", "example.com").output
    added = run("alias", "add", "postmaster@example.com", "alice@elsewhere.test")
    assert added.exit_code == 0, added.output
    assert "Created the alias postmaster@example.com to alice@elsewhere.test." in added.output
    assert run("alias", "add", "@example.com", "alice@elsewhere.test").exit_code == 0
    listed = run("alias", "list", "example.com")
    assert "postmaster@example.com" in listed.output
    assert "@example.com" in listed.output
    unknown = run("alias", "add", "x@nowhere.example", "alice@elsewhere.test")
    assert unknown.exit_code == 4
    assert "nowhere.example does not exist" in unknown.output
    again = run("alias", "add", "postmaster@example.com", "alice@elsewhere.test")
    assert again.exit_code == 5
    bad = run("alias", "add", "postmaster@example.com", "not an address")
    assert bad.exit_code == 2
    removed = run("alias", "rm", "postmaster@example.com")
    assert removed.exit_code == 0, removed.output
    assert "Removed the alias postmaster@example.com to alice@elsewhere.test." in removed.output
    assert run("alias", "rm", "postmaster@example.com").exit_code == 4

    assert run("user", "add", "bob@example.com", "--password", "pw-bob-123").exit_code == 0
    assert run("alias", "add", "abuse@example.com", "bob@example.com").exit_code == 0
    gone = run("user", "rm", "bob@example.com", "--yes")
    assert gone.exit_code == 0, gone.output
    assert "Its aliases went with it: abuse@example.com" in gone.output
    assert "abuse@example.com" not in run("alias", "list", "example.com").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "rm", " ", "--yes"), "An email address is required."),
        (("user", "passwd", "a@example.com", "--password", ""), "A new password is required."),
        (("alias", "add", "info@example.com", " "), "A destination address is required."),
        (("alias", "rm", " "), "An alias source address is required."),
        (("admin", "revoke", "--id", " "), "A token id is required."),
        (("cert", "status", " "), "A host name is required."),
    ],
)
def test_missing_values_are_named_in_the_domain_words(  # type: ignore[no-untyped-def]
    run, args: tuple[str, ...], message: str
) -> None:
    """A blank argument is refused (exit 2) naming what is missing, never an HTTP field."""
    assert run("init").exit_code == 0
    added = run(
        "domain", "add", "example.com", "--user", "a@example.com", "--password", "pw-123456"
    )
    assert added.exit_code == 0, added.output
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "field" not in result.output


def test_quota_and_limit_commands(run) -> None:  # type: ignore[no-untyped-def]
    """user quota sets a mailbox's quota, user list shows it with the usage, domain limits
    shows and changes a domain's limits, and a create past them exits 5 with one line."""
    assert run("init").exit_code == 0
    assert run("domain", "add", "example.com").exit_code == 0
    assert run("user", "add", "a@example.com", "--password", "pw-123456").exit_code == 0
    quota = run("user", "quota", "a@example.com", "10M", "--messages", "500")
    assert quota.exit_code == 0, quota.output
    assert "The quota of a@example.com is 10 MiB, at most 500 messages" in quota.output
    listing = run("user", "list", "example.com").output
    assert "10 MiB" in listing and "0 / 500" in listing
    assert run("user", "quota", "a@example.com", "ten").exit_code == 2
    assert run("user", "quota", "nobody@example.com", "1G").exit_code == 4
    limits = run("domain", "limits", "example.com", "--max-mailboxes", "1", "--max-quota", "1G")
    assert limits.exit_code == 0, limits.output
    assert "1 GiB" in limits.output and "mailboxes" in limits.output
    shown = run("domain", "limits", "example.com")
    assert shown.exit_code == 0 and "1 GiB" in shown.output
    refused = run("user", "add", "b@example.com", "--password", "pw-123456", "--quota", "1M")
    assert refused.exit_code == 5
    assert "may have 1 mailboxes and has 1" in refused.output
