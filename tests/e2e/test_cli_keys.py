"""``mailctl key create|list|revoke`` on the host: the keys it prints work against the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner, Result

from mailctl.cli.main import app
from mailctl.services import admins, domains
from mailctl.services.context import Actor, Context

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

HOST = Actor("test")
KEY = re.compile(r"^mailctl_([0-9a-f]+)_\S+$", re.MULTILINE)


class Cli:
    """`mailctl` against the database and data folder of the test's context."""

    def __init__(self, ctx: Context) -> None:
        self.env = {
            "MAILCTL_DATA_DIR": str(ctx.settings.data_dir),
            "MAILCTL_DATABASE_URL": ctx.settings.database_url,
        }
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)

    def made_key(self, *args: str) -> tuple[str, str]:
        """The key `key create ARGS` printed, and its id."""
        result = self("key", "create", *args)
        assert result.exit_code == 0, result.output
        found = KEY.search(result.output)
        assert found is not None, result.output
        return found.group(0), found.group(1)


@pytest.fixture
def cli(ctx: Context) -> Cli:
    """The command line, with mine.example (id 1) and other.example (id 2) in the database."""
    domains.create_domain(ctx, HOST, "mine.example", "a@mine.example", "password-a-1")
    domains.create_domain(ctx, HOST, "other.example", "b@other.example", "password-b-1")
    run = Cli(ctx)
    # The first command makes the database files private and says so; the tests read what
    # the commands after it print.
    assert run("key", "list").exit_code == 0
    return run


def _names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [d["name"] for d in answer.json()["domains"]]


def test_a_key_made_on_the_command_line_works_until_revoked(cli: Cli, anon: httpx.Client) -> None:
    """`key create --domain` prints a key once that acts on that domain alone; `key list`
    shows its id, never the key; `key revoke` with the whole key stops it (401)."""
    made = cli("key", "create", "--name", "deploy", "--domain", "mine.example")
    assert made.exit_code == 0, made.output
    found = KEY.search(made.output)
    assert found is not None, made.output
    key, key_id = found.group(0), found.group(1)
    assert f"Made the API key {key_id} (deploy) for admin: read-write, mine.example" in made.output
    assert "shown only this once" in made.output
    headers = {"Auth-token": key}
    assert _names(anon.get("/domains", headers=headers)) == ["mine.example"]
    hidden = anon.get("/users/2", headers=headers)
    assert hidden.status_code == 404
    assert hidden.json()["msg"] == "There is no domain with id 2."
    created = anon.post(
        "/user/1", headers=headers, data={"email": "c@mine.example", "password": "pass-c-12"}
    )
    assert created.status_code == 200, created.text

    listing = cli("key", "list")
    assert listing.exit_code == 0, listing.output
    assert key_id in listing.output and "deploy" in listing.output
    assert key.split("_")[-1] not in listing.output

    revoked = cli("key", "revoke", key)
    assert revoked.exit_code == 0, revoked.output
    assert f"Revoked the API key {key_id} (deploy) of admin." in revoked.output
    refused = anon.get("/domains", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["msg"] == "This API key was revoked."
    assert "admin has no API key that works now." in cli("key", "list").output


@ONCE_ON_SQLITE
def test_a_read_only_key_reads_and_changes_nothing(cli: Cli, anon: httpx.Client) -> None:
    """--read-only: the key lists the domains, and anything that changes is a 403."""
    key, _ = cli.made_key("--name", "monitor", "--read-only")
    headers = {"Authorization": f"Bearer {key}"}
    assert _names(anon.get("/domains", headers=headers)) == ["mine.example", "other.example"]
    denied = anon.post(
        "/user/1", headers=headers, data={"email": "c@mine.example", "password": "pass-c-12"}
    )
    assert denied.status_code == 403
    assert "read-only" in denied.json()["msg"]


@ONCE_ON_SQLITE
def test_a_key_bound_to_networks_is_refused_elsewhere(cli: Cli, anon: httpx.Client) -> None:
    """--network: the key works from an address in a range (the client is 127.0.0.1) and
    is refused from any other."""
    inside, _ = cli.made_key(
        "--name", "here", "--network", "10.0.0.0/8", "--network", "127.0.0.0/8"
    )
    outside, _ = cli.made_key("--name", "there", "--network", "192.0.2.0/24")
    assert anon.get("/domains", headers={"Auth-token": inside}).status_code == 200
    refused = anon.get("/domains", headers={"Auth-token": outside})
    assert refused.status_code == 401
    assert refused.json()["msg"] == "This API key is not accepted from this address."
    listing = cli("key", "list").output
    assert "192.0.2.0/24" in listing


@ONCE_ON_SQLITE
def test_days_sets_the_expiry(cli: Cli) -> None:
    """--days N: the key expires N days from now, as `key create` and `key list` say."""
    before = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    made = cli("key", "create", "--name", "month", "--days", "30")
    after = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    assert made.exit_code == 0, made.output
    assert f"expires {before}" in made.output or f"expires {after}" in made.output
    listing = cli("key", "list").output
    assert before in listing or after in listing


@ONCE_ON_SQLITE
def test_a_key_for_another_admin(cli: Cli, ctx: Context, anon: httpx.Client) -> None:
    """--admin: the key acts for that admin, never beyond its domains; `key list` shows the
    keys of MAILCTL_ADMIN_USERNAME by default, --admin one admin's, --all every admin's."""
    admins.create_admin(ctx, HOST, "alice", "alice-password-1", "domain_admin", "mine.example")
    beyond = cli("key", "create", "--name", "x", "--admin", "alice", "--domain", "other.example")
    assert beyond.exit_code == 4
    assert beyond.output.strip() == "error: The domain other.example does not exist."
    key, key_id = cli.made_key("--name", "alice-script", "--admin", "alice")
    assert _names(anon.get("/domains", headers={"Auth-token": key})) == ["mine.example"]
    _, own_id = cli.made_key("--name", "mine")
    assert key_id not in cli("key", "list").output
    theirs = cli("key", "list", "--admin", "alice").output
    assert key_id in theirs and own_id not in theirs
    every = cli("key", "list", "--all").output
    assert key_id in every and own_id in every and "alice" in every
    revoked = cli("key", "revoke", key_id)
    assert revoked.exit_code == 0, revoked.output
    assert "of alice." in revoked.output
    assert anon.get("/domains", headers={"Auth-token": key}).status_code == 401


@ONCE_ON_SQLITE
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("create", "--name", ""), 2, "Give the key a name of 1 to 64 characters"),
        (("create", "--name", "x", "--days", "0"), 2, "--days must be between 1 and 3650."),
        (("create", "--name", "x", "--days", "3651"), 2, "--days must be between 1 and 3650."),
        (("create", "--name", "x", "--network", "nope"), 2, "'nope' is not an address range"),
        (("create", "--name", "x", "--domain", "ghost.example"), 4, "ghost.example does not exist"),
        (("create", "--name", "x", "--admin", "ghost"), 4, "There is no admin ghost."),
        (("revoke", "0123456789abcdef"), 4, "There is no active API key with id 0123456789abcdef."),
        (("revoke", "mailctl_0123_secret"), 4, "There is no active API key with id 0123."),
        (("list", "--admin", "admin", "--all"), 2, "Give either --admin ADMIN or --all"),
        (("list", "--admin", "ghost"), 0, "ghost has no API key that works now."),
    ],
)
def test_key_command_errors(cli: Cli, args: tuple[str, ...], code: int, message: str) -> None:
    """Bad names, days, ranges, unknown domains, admins and keys: one line, its exit code;
    no key is made."""
    result = cli("key", *args)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert lines[0].startswith("error: ") == (code != 0)
    assert "has no API key that works now." in cli("key", "list", "--admin", "admin").output


@ONCE_ON_SQLITE
def test_create_needs_a_name(cli: Cli) -> None:
    """`key create` without --name is a usage error (exit 2) that names the option."""
    result = cli("key", "create")
    assert result.exit_code == 2
    assert "--name" in result.output


@ONCE_ON_SQLITE
def test_revoking_twice_says_the_key_is_gone(cli: Cli) -> None:
    """A key revoked already is not found the second time (exit 4), by id or whole."""
    key, key_id = cli.made_key("--name", "once")
    assert cli("key", "revoke", key_id).exit_code == 0
    again = cli("key", "revoke", key)
    assert again.exit_code == 4
    assert again.output.strip() == f"error: There is no active API key with id {key_id}."
