"""Rendering the mail stack's configuration: pure, per backend, and refusing unsafe input."""

from __future__ import annotations

import dataclasses
import re
import shutil
import string
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from sqlalchemy.engine import make_url

from mailctl.errors import InvalidInputError
from mailctl.host.stack import (
    DOVECOT,
    OPENDKIM,
    POSTFIX,
    RenderedFile,
    SqlBackend,
    StackConfig,
    render_stack,
    stack_commands,
    stack_directories,
)

ROOT = Path("/srv/mailstack")
BACKENDS = {
    "sqlite": SqlBackend("sqlite", "/srv/mailstack/db/mailctl.db"),
    "postgresql": SqlBackend("postgresql", "mailctl", user="mailctl", password="s3cret pass"),
    "mariadb": SqlBackend("mariadb", "mailctl", host="db.internal", port=3307, user="mail"),
}


def config(backend: SqlBackend = BACKENDS["sqlite"], **changes: object) -> StackConfig:
    """A stack laid out under /srv/mailstack with fixed ports."""
    cfg = StackConfig.under_root(
        ROOT,
        hostname="mail.example.org",
        backend=backend,
        vmail_uid=5000,
        vmail_gid=5000,
        smtp_port=2525,
        submission_port=2587,
        imap_port=2143,
        imaps_port=2993,
        milter_port=2891,
    )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def by_name(files: list[RenderedFile]) -> dict[str, RenderedFile]:
    """The rendered files keyed by file name."""
    return {file.path.name: file for file in files}


def settings(content: str) -> dict[str, str]:
    """``key = value`` lines of a main.cf-style file."""
    found: dict[str, str] = {}
    for line in content.splitlines():
        if "=" in line and not line.startswith(("#", " ")):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def test_every_daemon_gets_its_files_with_safe_modes() -> None:
    """Map files and the Dovecot SQL file (they may hold a password) are 0640 and group-owned."""
    files = by_name(render_stack(config(BACKENDS["postgresql"])))
    assert set(files) == {
        "main.cf",
        "master.cf",
        "sql-virtual-domains.cf",
        "sql-virtual-mailboxes.cf",
        "sql-virtual-aliases.cf",
        "dovecot.conf",
        "dovecot-sql.conf.ext",
        "dovecot-dict-sql.conf.ext",
        "opendkim.conf",
    }
    for name in ("sql-virtual-domains.cf", "sql-virtual-mailboxes.cf", "sql-virtual-aliases.cf"):
        assert (files[name].mode, files[name].group, files[name].daemon) == (
            0o640,
            "postfix",
            POSTFIX,
        )
    for name in ("dovecot-sql.conf.ext", "dovecot-dict-sql.conf.ext"):
        sql = files[name]
        assert (sql.mode, sql.group, sql.daemon) == (0o640, "dovecot", DOVECOT)
    assert files["opendkim.conf"].daemon == OPENDKIM


@pytest.mark.parametrize(
    ("backend", "map_type"), [("sqlite", "sqlite"), ("postgresql", "pgsql"), ("mariadb", "mysql")]
)
def test_postfix_reads_the_tables_through_the_backends_driver(backend: str, map_type: str) -> None:
    """main.cf points the three virtual maps at SQL map files of the backend's type."""
    files = by_name(render_stack(config(BACKENDS[backend])))
    main = settings(files["main.cf"].content)
    assert (
        main["virtual_mailbox_domains"] == f"{map_type}:{ROOT}/postfix/etc/sql-virtual-domains.cf"
    )
    assert main["virtual_mailbox_maps"] == f"{map_type}:{ROOT}/postfix/etc/sql-virtual-mailboxes.cf"
    assert main["virtual_alias_maps"] == f"{map_type}:{ROOT}/postfix/etc/sql-virtual-aliases.cf"
    assert main["queue_directory"] == f"{ROOT}/postfix/spool"
    assert main["data_directory"] == f"{ROOT}/postfix/lib"
    assert main["smtpd_milters"] == "inet:127.0.0.1:2891"
    assert main["virtual_transport"] == "lmtp:unix:private/dovecot-lmtp"


def test_map_files_query_the_mail_tables() -> None:
    """Each map asks the table the daemons share with mailctl, by the looked-up key."""
    files = by_name(render_stack(config()))
    queries = {
        name: settings(files[f"sql-virtual-{name}.cf"].content)["query"]
        for name in ("domains", "mailboxes", "aliases")
    }
    assert queries == {
        "domains": "SELECT name FROM virtual_domains WHERE name = '%s'",
        "mailboxes": "SELECT email FROM virtual_users WHERE email = '%s'",
        "aliases": "SELECT destination FROM virtual_aliases WHERE source = '%s'"
        " UNION SELECT email FROM virtual_users WHERE email = '%s'",
    }
    assert settings(files["sql-virtual-domains.cf"].content)["dbpath"] == str(
        BACKENDS["sqlite"].database
    )


def test_server_backends_carry_host_port_user_and_database() -> None:
    """PostgreSQL and MariaDB maps and Dovecot's connect string name the server and database."""
    pg = by_name(render_stack(config(BACKENDS["postgresql"])))
    pg_map = settings(pg["sql-virtual-mailboxes.cf"].content)
    assert pg_map["hosts"] == "postgresql://mailctl:s3cret%20pass@127.0.0.1:5432/mailctl"
    assert pg_map["dbname"] == "mailctl"
    assert "password" not in pg_map
    assert (
        "connect = \"host=127.0.0.1 port=5432 dbname='mailctl' user='mailctl'"
        " password='s3cret pass'\"\n" in pg["dovecot-sql.conf.ext"].content
    )
    maria = by_name(render_stack(config(BACKENDS["mariadb"])))
    maria_map = settings(maria["sql-virtual-aliases.cf"].content)
    assert maria_map["hosts"] == "inet:db.internal:3307"
    assert maria_map["user"] == "mail"
    assert "password" not in maria_map
    sql = maria["dovecot-sql.conf.ext"].content
    assert "driver = mysql" in sql
    assert (
        f"connect = host=db.internal port=3307 dbname=mailctl"
        f" option_file={ROOT}/dovecot/etc/dovecot-sql.my.cnf option_group=client\n" in sql
    )
    option_file = maria["dovecot-sql.my.cnf"]
    assert (option_file.mode, option_file.group, option_file.daemon) == (0o640, "dovecot", DOVECOT)
    assert option_file.content.splitlines()[1:] == ["[client]", 'user = "mail"']


# Every character a password may trip over: quotes, spaces at both ends, backslashes, a
# comment sign, Postfix's and Dovecot's expansion signs, URL and conninfo separators.
HOSTILE = ' it\'s "a" pass\\word #1 $x ${y} %u;=@:/,?&{} \\'


def test_postgresql_password_is_percent_encoded_for_postfix() -> None:
    """Postfix's pgsql maps carry the password in a URI, every special byte encoded, so
    neither Postfix's list parsing nor its trimming can change it; libpq decodes it back.
    """
    backend = dataclasses.replace(BACKENDS["postgresql"], password=HOSTILE)
    files = by_name(render_stack(config(backend)))
    hosts = settings(files["sql-virtual-domains.cf"].content)["hosts"]
    encoded = hosts.removeprefix("postgresql://mailctl:").removesuffix("@127.0.0.1:5432/mailctl")
    assert set(encoded) <= set(string.ascii_letters + string.digits + "%-._~")
    assert unquote(encoded) == HOSTILE
    assert HOSTILE not in files["sql-virtual-domains.cf"].content


def test_postgresql_password_is_quoted_twice_for_dovecot() -> None:
    """Dovecot gets the whole connect string in double quotes (its parser undoes the
    escapes), and libpq gets the password in single quotes with \\ and \\' escaped.
    """
    backend = dataclasses.replace(BACKENDS["postgresql"], password=HOSTILE)
    sql = by_name(render_stack(config(backend)))["dovecot-sql.conf.ext"].content
    line = next(line for line in sql.splitlines() if line.startswith("connect = "))
    quoted = line.removeprefix("connect = ")
    assert quoted.startswith('"') and quoted.endswith('"')
    # What Dovecot hands to libpq: its own escapes undone.
    conninfo = re.sub(r"\\(.)", r"\1", quoted[1:-1])
    password = conninfo.split(" password=", 1)[1]
    assert password.startswith("'") and password.endswith("'")
    assert re.sub(r"\\(.)", r"\1", password[1:-1]) == HOSTILE


def test_mariadb_password_goes_into_option_file_and_map_files() -> None:
    """Dovecot's mysql driver reads the login from an option file (quoted, escaped);
    Postfix's maps take the rest of the line literally.
    """
    hostile = HOSTILE.strip()
    backend = dataclasses.replace(BACKENDS["mariadb"], password=hostile)
    files = by_name(render_stack(config(backend)))
    option_file = files["dovecot-sql.my.cnf"].content
    value = option_file.splitlines()[-1].removeprefix("password = ")
    assert value.startswith('"') and value.endswith('"')
    assert re.sub(r"\\(.)", r"\1", value[1:-1]) == hostile
    assert hostile not in files["dovecot-sql.conf.ext"].content
    for name in ("domains", "mailboxes", "aliases"):
        assert f"\npassword = {hostile}\n" in files[f"sql-virtual-{name}.cf"].content


@pytest.mark.parametrize("password", [" leading", "trailing ", "\tboth\t"])
def test_mariadb_password_with_outer_spaces_is_refused(password: str) -> None:
    """Postfix trims the value of `password =`; such a MariaDB password is refused, clearly."""
    backend = dataclasses.replace(BACKENDS["mariadb"], password=password)
    with pytest.raises(InvalidInputError, match="cannot begin or end with a space"):
        render_stack(config(backend))


def test_dovecot_lets_each_row_name_its_scheme() -> None:
    """Dovecot's passdb returns the stored {SCHEME}hash as is; the userdb is the vmail account."""
    files = by_name(render_stack(config()))
    sql = files["dovecot-sql.conf.ext"].content
    assert (
        "password_query = SELECT email AS user, password FROM virtual_users WHERE email = '%u'"
        in sql
    )
    conf = files["dovecot.conf"].content
    assert f"mail_location = maildir:{ROOT}/mail/%d/%n" in conf
    assert f"default_fields = uid=5000 gid=5000 home={ROOT}/mail/%d/%n" in conf
    assert f"unix_listener {ROOT}/postfix/spool/private/auth {{" in conf


def test_lmtp_over_tcp_when_a_port_is_given() -> None:
    """With lmtp_port set, Postfix hands mail to Dovecot over 127.0.0.1 instead of a socket."""
    files = by_name(render_stack(config(lmtp_port=2424)))
    assert settings(files["main.cf"].content)["virtual_transport"] == "lmtp:inet:127.0.0.1:2424"
    assert "inet_listener lmtp {" in files["dovecot.conf"].content
    assert "dovecot-lmtp" not in files["dovecot.conf"].content


def test_no_postfix_service_runs_chrooted() -> None:
    """Every master.cf service has chroot off: a temporary root has no chroot jail to offer."""
    master = by_name(render_stack(config()))["master.cf"].content
    services = [line.split() for line in master.splitlines() if line and line[0] not in "# "]
    assert len(services) > 10
    assert all(fields[4] == "n" for fields in services)
    assert ["127.0.0.1:2525", "inet", "n", "-", "n", "-", "-", "smtpd"] in services


def test_opendkim_listens_on_localhost_with_the_configured_tables() -> None:
    """OpenDKIM's socket, tables and pid file come from the config; safe keys stay on."""
    conf = by_name(render_stack(config()))["opendkim.conf"].content
    assert "Socket inet:2891@127.0.0.1\n" in conf
    assert f"SigningTable refile:{ROOT}/opendkim/SigningTable\n" in conf
    assert f"KeyTable file:{ROOT}/opendkim/KeyTable\n" in conf
    assert f"PidFile {ROOT}/opendkim/run/opendkim.pid\n" in conf
    assert "RequireSafeKeys yes\n" in conf
    assert "Mode sv\n" in conf


@pytest.mark.parametrize(
    "changes",
    [
        {"hostname": "mail.example.org\nmydestination = evil"},
        {"backend": SqlBackend("postgresql", "mail\nctl")},
        {"backend": SqlBackend("postgresql", "mailctl", password="a\nb")},
        {"backend": SqlBackend("mariadb", "mailctl", password="a\rb")},
        {"backend": SqlBackend("postgresql", "mailctl", password="a\0b")},
        {"backend": SqlBackend("sqlite", "relative/mailctl.db")},
        {"mail_root": Path("relative/mail")},
        {"tls_cert": Path("/srv/with space/cert.pem")},
        {"imap_port": 2525},
        {"milter_port": 0},
        {"vmail_uid": 0},
        {"milter_default_action": "discard"},
    ],
)
def test_unsafe_or_inconsistent_config_is_refused(changes: dict[str, object]) -> None:
    """Values that would break or inject into a daemon's config raise InvalidInputError."""
    with pytest.raises(InvalidInputError):
        render_stack(config(**changes))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////srv/mail/mailctl.db", SqlBackend("sqlite", "/srv/mail/mailctl.db")),
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/mailctl_1",
            SqlBackend("postgresql", "mailctl_1", "127.0.0.1", 5432, "postgres", ""),
        ),
        (
            "mysql+pymysql://mail:p%40ss@db.internal/mailctl",
            SqlBackend("mariadb", "mailctl", "db.internal", None, "mail", "p@ss"),
        ),
    ],
)
def test_backend_from_a_database_url(url: str, expected: SqlBackend) -> None:
    """The database URL mailctl itself uses tells the daemons where the tables are."""
    assert SqlBackend.from_url(url) == expected


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_percent_encoded_password_reads_back_whole(scheme: str) -> None:
    """A URL with every special character percent-encoded gives the daemons, and SQLAlchemy
    (mailctl's own connection), the very same password.
    """
    url = f"{scheme}://mail:{quote(HOSTILE, safe='')}@db.internal:4000/mailctl"
    backend = SqlBackend.from_url(url)
    assert (backend.user, backend.password, backend.host, backend.port) == (
        "mail",
        HOSTILE,
        "db.internal",
        4000,
    )
    assert make_url(url).password == HOSTILE


@pytest.mark.parametrize("url", ["sqlite:///relative.db", "oracle://x@y/z", "sqlite://"])
def test_backend_urls_the_daemons_cannot_use_are_refused(url: str) -> None:
    """A relative SQLite path or a database the daemons have no driver for is refused."""
    with pytest.raises(InvalidInputError):
        SqlBackend.from_url(url)


def test_commands_name_the_instance_explicitly() -> None:
    """Every command points at this stack's own config; OpenDKIM is signalled by pid file."""
    commands = stack_commands(config())
    assert commands[POSTFIX]["reload"] == ["postfix", "-c", f"{ROOT}/postfix/etc", "reload"]
    assert commands[DOVECOT]["check"] == [
        "doveconf",
        "-c",
        f"{ROOT}/dovecot/etc/dovecot.conf",
        "-n",
    ]
    assert commands[OPENDKIM]["check"] == [
        "opendkim",
        "-n",
        "-x",
        f"{ROOT}/opendkim/etc/opendkim.conf",
    ]
    reload = commands[OPENDKIM]["reload"]
    assert reload[reload.index("--pidfile") + 1] == f"{ROOT}/opendkim/run/opendkim.pid"
    assert reload[-2:] == ["--signal", "USR1"]
    assert "KILL" not in " ".join(commands[OPENDKIM]["stop"])


def test_folders_are_owned_by_the_user_that_writes_them() -> None:
    """Postfix's data dir, OpenDKIM's pid dir and the mail root belong to their daemon's user."""
    dirs = {d.path: d for d in stack_directories(config())}
    assert (dirs[ROOT / "postfix" / "lib"].owner, dirs[ROOT / "postfix" / "lib"].mode) == (
        "postfix",
        0o700,
    )
    assert dirs[ROOT / "opendkim" / "run"].owner == "opendkim"
    assert (dirs[ROOT / "mail"].owner, dirs[ROOT / "mail"].group) == (5000, 5000)
    assert dirs[ROOT / "postfix" / "spool"].owner is None
    assert len(dirs) == len(stack_directories(config()))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_doveconf_accepts_the_rendered_dovecot_config(backend: str, tmp_path: Path) -> None:
    """The real doveconf parses the rendered dovecot.conf for every backend."""
    if shutil.which("doveconf") is None:
        pytest.fail("doveconf is not installed; scripts/install-test-packages installs it")
    cfg = config(BACKENDS[backend])
    files = render_stack(dataclasses.replace(cfg, dovecot_config_dir=tmp_path))
    for file in files:
        if file.daemon == DOVECOT:
            (tmp_path / file.path.name).write_text(file.content)
    done = subprocess.run(
        ["doveconf", "-c", str(tmp_path / "dovecot.conf"), "-n"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"mail_location = maildir:{ROOT}/mail/%d/%n" in done.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_quotas_are_rendered_for_dovecot_and_postfix(backend: str) -> None:
    """The userdb reads the quota rule from the row, quota_clone writes the usage through
    the dict, quota-status listens in Postfix's private/ folder, and smtpd asks it."""
    cfg = config(BACKENDS[backend])
    files = by_name(render_stack(cfg))
    dovecot = files["dovecot.conf"].content
    assert "  driver = sql\n" in dovecot.split("userdb {", 1)[1].split("}", 1)[0]
    assert "quota = count:User quota" in dovecot
    assert "quota_clone_dict = proxy::usage" in dovecot
    assert f"unix_listener {cfg.quota_status_socket} {{" in dovecot
    assert "executable = quota-status -p postfix" in dovecot
    assert "mail_plugins = $mail_plugins imap_quota" in dovecot
    # Only on SQLite does the dict process write mailctl's own file, as root.
    assert ("  user = root\n" in dovecot.split("service dict {", 1)[1].split("}", 1)[0]) == (
        backend == "sqlite"
    )
    sql = files["dovecot-sql.conf.ext"].content
    assert "user_query = SELECT email AS user," in sql
    assert ("CONCAT(" in sql) == (backend == "mariadb")
    usage_map = files["dovecot-dict-sql.conf.ext"].content
    assert usage_map.count("table = mailbox_usage") == 2
    assert "pattern = priv/quota/storage" in usage_map
    assert "pattern = priv/quota/messages" in usage_map
    main = settings(files["main.cf"].content)
    assert main["smtpd_recipient_restrictions"] == (
        "reject_unauth_destination check_policy_service unix:private/quota-status"
    )
