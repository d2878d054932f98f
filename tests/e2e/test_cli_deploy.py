"""The README's mail-server path through the CLI: what a user sees at each step."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.backends import fresh_database
from tests.conftest import LiveServer
from tests.pki import self_signed
from typer.testing import CliRunner, Result

from mailctl.cli.main import app
from mailctl.services.context import Context

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])


class Cli:
    """Runs ``mailctl`` in-process against one data directory and database."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.runner = CliRunner()
        self.data_dir = data_dir
        self.env = {
            "MAILCTL_DATA_DIR": str(data_dir),
            "MAILCTL_DATABASE_URL": database_url,
            "MAILCTL_ADMIN_PASSWORD": "admin-password-1",
        }

    def __call__(self, *args: str, **env: str) -> Result:
        return self.runner.invoke(app, list(args), env={**self.env, **env}, catch_exceptions=False)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path / "data")


def _opendkim_files(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "opendkim"
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


@ONCE_ON_SQLITE
def test_cli_and_api_domain_rm_render_the_same_files(
    cli: Cli, server: LiveServer, api: httpx.Client
) -> None:
    """A domain with a DKIM key removed by `mailctl domain rm` leaves the files the API leaves."""
    for name in ("keep.example", "gone.example"):
        _ok(cli("domain", "add", name))
        _ok(cli("dkim", "add", name, "--key-type", "ed25519"))
    before = _opendkim_files(cli.data_dir)
    assert b"gone.example" in before["KeyTable"] and b"gone.example" in before["SigningTable"]

    _ok(cli("domain", "rm", "gone.example", "--yes"))
    after_cli = _opendkim_files(cli.data_dir)
    assert b"gone.example" not in after_cli["KeyTable"]
    assert b"gone.example" not in after_cli["SigningTable"]
    assert not any(name.startswith("keys/gone.example") for name in after_cli)
    assert "up to date" in _ok(cli("reconcile")).output

    _ok(cli("domain", "add", "gone.example"))
    _ok(cli("dkim", "add", "gone.example", "--key-type", "ed25519"))
    response = api.request("DELETE", "/domain", data={"domain": "gone.example"})
    assert response.status_code == 200, response.text
    assert _opendkim_files(cli.data_dir) == after_cli
    assert "up to date" in _ok(cli("reconcile")).output


@ONCE_ON_SQLITE
def test_cli_change_reports_files_it_could_not_update(cli: Cli, ctx: Context) -> None:
    """A CLI change whose reload fails stands, and the command says the files lag behind."""
    _ok(cli("domain", "add", "example.com"))
    _ok(cli("dkim", "add", "example.com", "--key-type", "ed25519"))
    failing = {"MAILCTL_RELOAD_ENABLED": "true", "MAILCTL_RELOAD_OPENDKIM": "false"}
    removed = cli("domain", "rm", "example.com", "--yes", **failing)
    assert removed.exit_code == 0, removed.output
    assert "Deleted example.com" in removed.output
    assert "this host's files were not updated" in removed.output
    assert "reload of opendkim failed" in removed.output
    assert "mailctl reconcile" in removed.output
    assert b"example.com" in _opendkim_files(cli.data_dir)["KeyTable"]
    assert "wrote" in _ok(cli("reconcile")).output
    assert b"example.com" not in _opendkim_files(cli.data_dir)["KeyTable"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@ONCE_ON_SQLITE
def test_agent_once_fails_when_a_due_renewal_fails(cli: Cli, ctx: Context) -> None:
    """agent --once names a certificate it could not renew and exits 9, not "up to date"."""
    now = datetime.now(UTC)
    chain, key = self_signed(
        "mail.example.com", not_before=now - timedelta(days=80), not_after=now + timedelta(days=3)
    )
    with ctx.uow() as uow:
        uow.certificates.put(
            "mail.example.com", chain.decode(), key.decode(), now + timedelta(days=3), "acme"
        )
        uow.commit()
    _ok(cli("reconcile"))
    unreachable = {
        "MAILCTL_ACME_DIRECTORY_URL": f"https://127.0.0.1:{_closed_port()}/dir",
        "MAILCTL_ACME_TIMEOUT_SECONDS": "5",
    }
    run = cli("agent", "--once", **unreachable)
    assert run.exit_code == 9, run.output
    assert "renewal failed" in run.output
    assert "mail.example.com" in run.output
    assert "up to date" not in run.output


@pytest.mark.parametrize(
    ("args", "env", "named", "wrong"),
    [
        (["serve", "--port", "99999"], {}, "port", "less than or equal to 65535"),
        (["domain", "list"], {"MAILCTL_PORT": "abc"}, "MAILCTL_PORT", "valid integer"),
        (
            ["serve"],
            {"MAILCTL_TOKEN_TTL_MINUTES": "-1"},
            "MAILCTL_TOKEN_TTL_MINUTES",
            "greater than or equal to 1",
        ),
        (["init"], {"MAILCTL_PASSWORD_SCHEME": "MD5"}, "MAILCTL_PASSWORD_SCHEME", "'ARGON2ID'"),
        (["domain", "list"], {"MAILCTL_DATABASE_URL": "db.example"}, "MAILCTL_DATABASE_URL", "URL"),
        (["domain", "list"], {"MAILCTL_CONFIG": "missing.toml"}, "MAILCTL_CONFIG", "no file"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], named: str, wrong: str, tmp_path: Path
) -> None:
    """A wrong option or MAILCTL_* value prints one line naming it, exits 2, creates nothing."""
    data = tmp_path / "data"
    result = CliRunner().invoke(
        app, args, env={"MAILCTL_DATA_DIR": str(data), **env}, catch_exceptions=False
    )
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: {named}:") or line.startswith(f"error: {named} "), line
    assert wrong in line
    assert not data.exists()


@pytest.fixture
def uninitialised_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database `mailctl init` never set up: no SQLite file, or no tables."""
    with fresh_database(backend, tmp_path, migrated=False) as url:
        yield url


@pytest.mark.parametrize(
    "args", [["domain", "list"], ["domain", "add", "example.com"], ["agent", "--once"]]
)
def test_a_database_never_initialised_says_run_init(
    args: list[str], uninitialised_url: str, tmp_path: Path
) -> None:
    """Before `mailctl init`, a command says to run it, exits 7 and creates nothing."""
    data = tmp_path / "data"
    env = {"MAILCTL_DATA_DIR": str(data), "MAILCTL_DATABASE_URL": uninitialised_url}
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    assert result.exit_code == 7, result.output
    assert "run `mailctl init`" in result.output
    assert "try again shortly" not in result.output
    assert not data.exists()
    assert not (tmp_path / "mailctl-test.db").exists()
    if not uninitialised_url.startswith("sqlite"):
        engine = sa.create_engine(uninitialised_url)
        try:
            assert sa.inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_serve_on_a_database_never_initialised_says_run_init(
    uninitialised_url: str, tmp_path: Path
) -> None:
    """`mailctl serve` before `mailctl init` stops at once with that advice, not 503s forever."""
    env = {"MAILCTL_DATA_DIR": str(tmp_path / "data"), "MAILCTL_DATABASE_URL": uninitialised_url}
    result = CliRunner().invoke(app, ["serve", "--port", "1"], env=env, catch_exceptions=False)
    assert result.exit_code == 7, result.output
    assert "run `mailctl init`" in result.output
    assert not (tmp_path / "mailctl-test.db").exists()


@pytest.mark.own_database  # drops a table
def test_api_on_tables_gone_says_run_init(api: httpx.Client, ctx: Context) -> None:
    """A request that finds mailctl's tables missing answers 503 naming `mailctl init`."""
    created = api.post("/domains", data={"domain": "example.com"})
    assert created.status_code == 200, created.text
    with ctx.database.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE virtual_aliases"))
    response = api.get(f"/aliases/{created.json()['domain']['id']}")
    assert response.status_code == 503
    assert response.json() == {
        "result": False,
        "msg": "The database has no mailctl tables yet: run `mailctl init` first.",
    }


def _not_started_daemons(root: Path) -> dict[str, str]:
    """Reloads on, with the real reload commands of daemons installed but not running.

    Postfix as Debian leaves it with "No configuration" (no main.cf yet); Dovecot with its
    package's configuration (here only its runtime folder) and no master running; OpenDKIM
    signalled through a pid file no process wrote.
    """
    (root / "dovecot").mkdir(parents=True)
    (root / "dovecot/dovecot.conf").write_text(f"base_dir = {root / 'dovecot/run'}\n")
    opendkim = ["start-stop-daemon", "--stop", "--quiet", "--pidfile"]
    opendkim += [str(root / "opendkim.pid"), "--name", "opendkim", "--signal", "USR1"]
    return {
        "MAILCTL_RELOAD_ENABLED": "true",
        "MAILCTL_RELOAD_POSTFIX": f"postfix -c {root / 'postfix'} reload",
        "MAILCTL_RELOAD_DOVECOT": f"doveadm -c {root / 'dovecot/dovecot.conf'} reload",
        "MAILCTL_RELOAD_OPENDKIM": " ".join(opendkim),
    }


@ONCE_ON_SQLITE
def test_cert_upload_before_setup_installs_and_says_nothing_runs(
    cli: Cli, ctx: Context, tmp_path: Path
) -> None:
    """`cert upload` where the README puts it stores and writes the pair and exits 0."""
    stopped = _not_started_daemons(tmp_path / "host")
    chain, key = self_signed("mail.example.com", days=60)
    (tmp_path / "fullchain.pem").write_bytes(chain)
    (tmp_path / "privkey.pem").write_bytes(key)
    uploaded = cli(
        "cert", "upload", str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem"), **stopped
    )
    assert uploaded.exit_code == 0, uploaded.output
    assert "Installed the certificate mail.example.com" in uploaded.output
    assert "Postfix is not running, so nothing was reloaded" in uploaded.output
    assert "Dovecot is not running, so nothing was reloaded" in uploaded.output
    served = cli.data_dir / "tls/mail.example.com/fullchain.pem"
    assert served.read_bytes() == chain
    assert "mail.example.com" in _ok(cli("cert", "status")).output


@ONCE_ON_SQLITE
def test_dkim_add_with_opendkim_not_running_keeps_the_key(
    cli: Cli, ctx: Context, tmp_path: Path
) -> None:
    """`dkim add` while OpenDKIM does not run writes the key and tables, says so, exits 0."""
    stopped = _not_started_daemons(tmp_path / "host")
    _ok(cli("domain", "add", "example.com"))
    added = cli("dkim", "add", "example.com", "--key-type", "ed25519", **stopped)
    assert added.exit_code == 0, added.output
    assert "opendkim is not running, so it was not reloaded" in added.output
    assert (cli.data_dir / "opendkim/keys/example.com/mail.private").is_file()
    assert b"example.com" in _opendkim_files(cli.data_dir)["KeyTable"]
