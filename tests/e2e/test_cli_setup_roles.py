"""`mailctl setup` on PostgreSQL and MariaDB: the daemons' own role, its grants, its login."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import create_engine, exc
from sqlalchemy.engine import make_url
from tests.backends import MARIADB_SERVER, selected_backends
from tests.mailstack.stack import (
    BINARIES,
    MailDatabase,
    mail_database,
    pg_server_for,
    self_signed_pair,
)
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.host.stack_dovecot import PASSDB_QUERY, USER_QUERIES
from mailctl.host.stack_postfix import ALIASES_QUERY, DOMAINS_QUERY, MAILBOXES_QUERY
from mailctl.storage.database import Database

HOST = "mail.example.com"
SERVER_BACKENDS = [name for name in selected_backends() if name != "sqlite"]
# Tables the daemons must never read: the token secret, private keys, admins, audit.
SECRET_TABLES = ("app_secrets", "dkim_keys", "certificates", "acme_accounts", "admins")

Invoke = Callable[..., Result]


def migrate(url: str, _backend: str) -> None:
    """The schema as `mailctl init` makes it."""
    database = Database(url)
    try:
        database.upgrade()
    finally:
        database.dispose()


@pytest.fixture(params=SERVER_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailDatabase]:
    """A migrated database owned by a role with a password; the daemons' role not made yet."""
    backend = str(request.param)
    pg_server = pg_server_for(request, backend)
    with mail_database(backend, tmp_path, migrate, pg_server, grant_daemons=False) as found:
        yield found


@pytest.fixture
def admin_url(request: pytest.FixtureRequest, database: MailDatabase) -> str:
    """A superuser of the database's server (password percent-encoded on PostgreSQL)."""
    if make_url(database.url).get_backend_name() == "postgresql":
        return str(request.getfixturevalue("scram_postgres")) + "/postgres"
    return f"{MARIADB_SERVER}/"


@pytest.fixture
def run(database: MailDatabase, tmp_path: Path) -> Invoke:
    """Invoke mailctl as a mail host configured with both logins, after `mailctl init`."""
    env = {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database.url,
        "MAILCTL_DAEMON_DATABASE_URL": database.daemon_url,
        "MAILCTL_ADMIN_PASSWORD": "admin-password-1",
        "MAILCTL_MAIL_HOSTNAME": HOST,
        "MAILCTL_MAIL_UID": "5000",
        "MAILCTL_MAIL_GID": "5000",
    }
    runner = CliRunner()

    def invoke(*args: str, extra: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env={**env, **(extra or {})}, catch_exceptions=False)

    initialised = invoke("init")
    assert initialised.exit_code == 0, initialised.output
    added = invoke(
        "domain", "add", "example.org", "--user", "a@example.org", "--password", "password-1"
    )
    assert added.exit_code == 0, added.output
    added = invoke("alias", "add", "postmaster@example.org", "a@example.org")
    assert added.exit_code == 0, added.output
    return invoke


def daemons_read(database: MailDatabase, statement: str) -> list[tuple[object, ...]]:
    """Run one statement as the daemons' role (no driver parameters: '%' stays literal)."""
    engine = create_engine(database.daemon_url)
    try:
        with engine.connect() as conn:
            plain = conn.execution_options(no_parameters=True)
            return [tuple(row) for row in plain.exec_driver_sql(statement)]
    finally:
        engine.dispose()


def assert_daemons_read_only_their_columns(database: MailDatabase) -> None:
    """The daemons' queries answer; every other table and column is refused."""
    assert daemons_read(database, DOMAINS_QUERY.replace("%s", "example.org")) == [("example.org",)]
    assert daemons_read(database, MAILBOXES_QUERY.replace("%s", "a@example.org")) == [
        ("a@example.org",)
    ]
    aliases = daemons_read(database, ALIASES_QUERY.replace("%s", "postmaster@example.org"))
    assert aliases == [("a@example.org",)]
    [(user, password)] = daemons_read(database, PASSDB_QUERY.replace("%u", "a@example.org"))
    assert (user, str(password).startswith("{ARGON2ID}")) == ("a@example.org", True)
    kind = "postgresql" if make_url(database.url).get_backend_name() == "postgresql" else "mariadb"
    assert daemons_read(database, USER_QUERIES[kind].replace("%u", "a@example.org")) == [
        ("a@example.org", "*:bytes=0:messages=0")
    ]
    # Dovecot's quota_clone writes the usage (rolled back here, with the connection).
    engine = create_engine(database.daemon_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "INSERT INTO mailbox_usage (username, bytes, messages) VALUES ('a@x.org', 1, 1)"
            )
    finally:
        engine.dispose()
    refused = [
        # Fixed table names of our own schema, not input.
        *(f"SELECT * FROM {table}" for table in SECRET_TABLES),  # noqa: S608
        "SELECT domain_id FROM virtual_users",
        "SELECT * FROM virtual_domains",
        "INSERT INTO virtual_domains (name) VALUES ('evil.example')",
    ]
    for statement in refused:
        with pytest.raises(exc.DBAPIError) as denied:
            daemons_read(database, statement)
        text = str(denied.value.orig).lower()
        assert "permission denied" in text or "command denied" in text, (statement, text)


def test_printed_grants_piped_into_the_sql_client_give_the_role_its_columns(
    run: Invoke, database: MailDatabase, admin_url: str
) -> None:
    """`setup --grants` prints SQL a superuser can pipe into psql or mariadb as it stands;
    the role it makes logs in with its hostile password and reads only its columns.
    """
    printed = run("setup", "--grants")
    assert printed.exit_code == 0, printed.output
    assert "GRANT SELECT (email, password, quota_bytes, quota_messages)" in printed.output
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON" in printed.output
    name = make_url(database.url).database
    assert name is not None
    if make_url(database.url).get_backend_name() == "postgresql":
        assert 'CREATE ROLE "mc_daemons_' in printed.output
        admin = make_url(admin_url).set(drivername="postgresql", database=name)
        argv = ["psql", "-v", "ON_ERROR_STOP=1", "-q", admin.render_as_string(False)]
    else:
        assert "CREATE USER IF NOT EXISTS 'mc_daemons_" in printed.output
        admin = make_url(admin_url)
        argv = ["mariadb", "-h", str(admin.host), "-P", str(admin.port or 3306)]
        argv += ["-u", str(admin.username), name]
    assert shutil.which(argv[0]), f"{argv[0]} is not installed"
    done = subprocess.run(
        argv, input=printed.output, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert_daemons_read_only_their_columns(database)


def test_grants_run_through_an_admin_url_then_as_mailctl(
    run: Invoke, database: MailDatabase, admin_url: str
) -> None:
    """--grants --apply --admin-url makes the role and grants; afterwards mailctl's own login
    may grant again on PostgreSQL (it owns the tables) and is refused, clearly, on MariaDB.
    """
    applied = run("setup", "--grants", "--apply", "--admin-url", admin_url)
    assert applied.exit_code == 0, applied.output
    assert "through the admin URL" in applied.output
    assert "virtual_users(email, password, quota_bytes, quota_messages)" in applied.output
    assert "write mailbox_usage" in applied.output
    assert_daemons_read_only_their_columns(database)

    again = run("setup", "--grants", "--apply")
    if make_url(database.url).get_backend_name() == "postgresql":
        assert again.exit_code == 0, again.output
        assert "through mailctl's own login" in again.output
        assert_daemons_read_only_their_columns(database)
    else:
        assert again.exit_code == 8, again.output
        assert "The database refused to grant the daemons' columns" in again.output
        assert "--admin-url" in again.output


def test_without_the_daemons_url_the_dry_run_warns_and_apply_refuses(
    run: Invoke, tmp_path: Path
) -> None:
    """No MAILCTL_DAEMON_DATABASE_URL: the dry run says loudly what to do, --apply exits 2
    and writes nothing, and mailctl's own login appears in no file.
    """
    unset = {"MAILCTL_DAEMON_DATABASE_URL": ""}
    shown = run("setup", "--root", str(tmp_path / "stack"), extra=unset)
    assert shown.exit_code == 0, shown.output
    assert "WARNING: --apply will refuse." in shown.output
    assert "MAILCTL_DAEMON_DATABASE_URL is not set" in shown.output
    assert "mc_owner_" not in shown.output.split("WARNING")[0]
    assert "mailctl_daemons" in shown.output
    refused = run("setup", "--apply", "--root", str(tmp_path / "stack"), extra=unset)
    assert refused.exit_code == 2
    assert "mailctl setup --grants" in refused.output
    assert not (tmp_path / "stack").exists()
    grants = run("setup", "--grants", extra=unset)
    assert grants.exit_code == 2
    assert "MAILCTL_DAEMON_DATABASE_URL is not set" in grants.output


def test_apply_writes_files_postfix_reads_with_the_daemons_password(
    run: Invoke, database: MailDatabase, admin_url: str, tmp_path: Path, host_root: Path
) -> None:
    """After the grants, `setup --apply` writes map files through which Postfix's own
    lookup reaches the database with the hostile password; the dry run masks it.
    """
    missing = [binary for binary in (*BINARIES, "postmap") if shutil.which(binary) is None]
    assert not missing, f"not installed: {missing}; scripts/install-test-packages installs them"
    assert os.geteuid() == 0, "setup --apply hands folders to the daemons' users: run as root"
    assert run("setup", "--grants", "--apply", "--admin-url", admin_url).exit_code == 0
    password = make_url(database.daemon_url).password
    assert password is not None
    stack = host_root / "stack"
    shown = run("setup", "--root", str(stack))
    assert shown.exit_code == 0, shown.output
    assert "********" in shown.output
    assert password.strip() not in shown.output
    assert "WARNING" not in shown.output

    cert, key = self_signed_pair(HOST)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    assert (
        run("cert", "upload", str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")).exit_code == 0
    )
    ports = ["--smtp-port", "2525", "--submission-port", "2587", "--imap-port", "2143"]
    ports += ["--imaps-port", "2993", "--milter-port", "2891"]
    applied = run("setup", "--apply", "--root", str(stack), "--listen", "127.0.0.1", *ports)
    assert applied.exit_code == 0, applied.output
    assert "check   dovecot: passed" in applied.output
    map_type = "pgsql" if make_url(database.url).get_backend_name() == "postgresql" else "mysql"
    for name, lookup, answer in (
        ("domains", "example.org", "example.org"),
        ("mailboxes", "a@example.org", "a@example.org"),
        ("aliases", "postmaster@example.org", "a@example.org"),
    ):
        table = f"{map_type}:{stack / 'postfix' / 'etc' / f'sql-virtual-{name}.cf'}"
        found = subprocess.run(
            ["postmap", "-c", str(stack / "postfix" / "etc"), "-q", lookup, table],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (found.returncode, found.stdout.strip()) == (0, answer), found.stderr
    if map_type == "mysql":
        option_file = stack / "dovecot" / "etc" / "dovecot-sql.my.cnf"
        assert option_file.stat().st_mode & 0o777 == 0o640


def test_an_admin_url_that_cannot_log_in_is_reported(run: Invoke, admin_url: str) -> None:
    """A wrong admin password exits 7 naming the login and the server's reason, without the
    password; --admin-url without --grants --apply is refused.
    """
    wrong = make_url(admin_url).set(password="wrong-admin-pw").render_as_string(False)
    failed = run("setup", "--grants", "--apply", "--admin-url", wrong)
    assert failed.exit_code == 7, failed.output
    assert f"Cannot run the grants as {make_url(admin_url).username}" in failed.output
    assert "wrong-admin-pw" not in failed.output
    misplaced = run("setup", "--admin-url", admin_url)
    assert misplaced.exit_code == 2
    assert "--admin-url is for --grants --apply." in misplaced.output
