"""Run the real Postfix, Dovecot and OpenDKIM on 127.0.0.1, configured by ``mailctl setup``.

Where the stack lives: the daemons drop privileges (Postfix to ``postfix``, Dovecot's
login and auth processes to ``dovenull``/``dovecot``, mail delivery to ``vmail``), and
pytest keeps its base temporary folder private to root (mode 0700, re-tightened every
run). So each stack gets its own folder from ``tempfile.mkdtemp`` in the system temp
folder, opened for traversal only (0711), and removed at teardown. Its short path also
keeps the unix sockets under the 108-byte limit.

Mail is owned by the ``vmail`` system account, created here if missing: Dovecot refuses
to deliver as root and its ``first_valid_uid`` must cover the owner of the mail.
"""

from __future__ import annotations

import datetime as dt
import grp
import hashlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from tests.backends import MARIADB_SERVER
from tests.pgcluster import url_password
from tests.pki import self_signed

from mailctl.host.stack import (
    DAEMON_COLUMNS,
    DAEMON_WRITES,
    DOVECOT,
    OPENDKIM,
    POSTFIX,
    SqlBackend,
    StackConfig,
    render_stack,
    stack_commands,
    stack_directories,
)
from mailctl.storage import daemon_role

HOSTNAME = "mail.example.test"
VMAIL = "vmail"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0
LOG_TAIL_CHARS = 3000
BINARIES = ("postfix", "dovecot", "doveconf", "doveadm", "opendkim", "start-stop-daemon")

_counter = itertools.count()

# One statement list per dialect: the tables the daemons query, and the usage they write.
_DDL: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TABLE virtual_domains (id INTEGER PRIMARY KEY, name VARCHAR(253) NOT NULL UNIQUE)",
        "CREATE TABLE virtual_users (id INTEGER PRIMARY KEY,"
        " domain_id INTEGER NOT NULL REFERENCES virtual_domains(id),"
        " email VARCHAR(320) NOT NULL UNIQUE, password VARCHAR(255) NOT NULL,"
        " quota_bytes BIGINT, quota_messages BIGINT)",
        "CREATE TABLE virtual_aliases (id INTEGER PRIMARY KEY,"
        " domain_id INTEGER NOT NULL REFERENCES virtual_domains(id),"
        " source VARCHAR(320) NOT NULL, destination VARCHAR(320) NOT NULL)",
        "CREATE TABLE mailbox_usage (username VARCHAR(254) PRIMARY KEY,"
        " bytes BIGINT NOT NULL DEFAULT 0, messages BIGINT NOT NULL DEFAULT 0)",
    ],
    "postgresql": [
        "CREATE TABLE virtual_domains (id SERIAL PRIMARY KEY, name VARCHAR(253) NOT NULL UNIQUE)",
        "CREATE TABLE virtual_users (id SERIAL PRIMARY KEY,"
        " domain_id INTEGER NOT NULL REFERENCES virtual_domains(id),"
        " email VARCHAR(320) NOT NULL UNIQUE, password VARCHAR(255) NOT NULL,"
        " quota_bytes BIGINT, quota_messages BIGINT)",
        "CREATE TABLE virtual_aliases (id SERIAL PRIMARY KEY,"
        " domain_id INTEGER NOT NULL REFERENCES virtual_domains(id),"
        " source VARCHAR(320) NOT NULL, destination VARCHAR(320) NOT NULL)",
        "CREATE TABLE mailbox_usage (username VARCHAR(254) PRIMARY KEY,"
        " bytes BIGINT NOT NULL DEFAULT 0, messages BIGINT NOT NULL DEFAULT 0)",
    ],
    "mariadb": [
        "CREATE TABLE virtual_domains (id INTEGER AUTO_INCREMENT PRIMARY KEY,"
        " name VARCHAR(253) NOT NULL UNIQUE) ENGINE=InnoDB",
        "CREATE TABLE virtual_users (id INTEGER AUTO_INCREMENT PRIMARY KEY,"
        " domain_id INTEGER NOT NULL, email VARCHAR(320) NOT NULL UNIQUE,"
        " password VARCHAR(255) NOT NULL, quota_bytes BIGINT, quota_messages BIGINT,"
        " FOREIGN KEY (domain_id) REFERENCES virtual_domains(id)) ENGINE=InnoDB",
        "CREATE TABLE virtual_aliases (id INTEGER AUTO_INCREMENT PRIMARY KEY,"
        " domain_id INTEGER NOT NULL, source VARCHAR(320) NOT NULL,"
        " destination VARCHAR(320) NOT NULL,"
        " FOREIGN KEY (domain_id) REFERENCES virtual_domains(id)) ENGINE=InnoDB",
        "CREATE TABLE mailbox_usage (username VARCHAR(254) PRIMARY KEY,"
        " bytes BIGINT NOT NULL DEFAULT 0, messages BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB",
    ],
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command without a shell, bounded by a timeout; never raise on exit status."""
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def run_to_file(argv: list[str], output: Path) -> int:
    """Run a command that leaves a daemon behind, its output into ``output``; return the status.

    A daemon may keep the descriptors it was started with, so its output goes to a file:
    a pipe would never reach end-of-file while the daemon lives.
    """
    with output.open("ab") as sink:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    return done.returncode


def hash_password(password: str, scheme: str = "SHA512-CRYPT") -> str:
    """A Dovecot ``{SCHEME}hash`` string made by ``doveadm pw`` itself."""
    done = run(["doveadm", "-o", "stats_writer_socket_path=", "pw", "-s", scheme, "-p", password])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def vmail_ids() -> tuple[int, int]:
    """The uid and gid of the ``vmail`` account, creating it (system, no login) if missing."""
    try:
        entry = pwd.getpwnam(VMAIL)
    except KeyError:
        done = run(
            [
                *("useradd", "--system", "--user-group", "--no-create-home"),
                *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", VMAIL),
            ]
        )
        # Another test process may have created it in the meantime: look again either way.
        try:
            entry = pwd.getpwnam(VMAIL)
        except KeyError:
            pytest.fail(f"cannot create the {VMAIL} account: {done.stderr}")
    return entry.pw_uid, entry.pw_gid


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError as exc:
        return f"(cannot read {path.name}: {exc.strerror})"


def self_signed_pair(hostname: str) -> tuple[bytes, bytes]:
    """A certificate for ``hostname`` and 127.0.0.1, and its key, both PEM."""
    now = dt.datetime.now(dt.UTC)
    return self_signed(
        hostname,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=2),
        ip="127.0.0.1",
        ca=True,
    )


# --- databases ----------------------------------------------------------------------------


def hostile_password(tag: str, *, outer_spaces: bool = True) -> str:
    """A password holding every character a daemon's config syntax could trip over.

    Quotes of both kinds, backslashes, a comment sign, Postfix's and Dovecot's expansion
    signs, URL and connect-string separators, and (unless ``outer_spaces`` is off, as a
    MariaDB password for Postfix must be) spaces at both ends.
    """
    core = f'{tag}\'s "pass" \\ #1 $x ${{HOME}} %u;=@:/,?&{{}}`\\'
    return f" {core} " if outer_spaces else core


def pg_server_for(request: pytest.FixtureRequest, backend: str) -> str | None:
    """The password-checking PostgreSQL cluster's superuser URL when ``backend`` needs it."""
    if backend != "postgresql":
        return None
    return str(request.getfixturevalue("scram_postgres"))


@dataclass(frozen=True)
class MailDatabase:
    """A database of the tests' own and the two logins that read it."""

    url: str  # mailctl's own login, owner of the tables
    daemon_url: str  # the daemons' role: SELECT on the columns they query, nothing else


def _admin(url: str) -> Engine:
    # Statements with literal passwords: no driver parameters, so '%' stays a percent sign.
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    return engine.execution_options(no_parameters=True)


def _grant_daemons(backend: str, admin_url: str, name: str, role: str, password: str) -> None:
    """Create the daemons' role and grant it their columns, as `mailctl setup --grants` does."""
    statements = daemon_role.grant_statements(
        backend,
        role=role,
        password=password,
        database=name,
        columns=DAEMON_COLUMNS,
        manage_role=True,
        writes=DAEMON_WRITES,
    )
    daemon_role.run_statements(admin_url, statements, name)


@contextmanager
def mail_database(
    backend: str,
    root: Path,
    create_schema: Callable[[str, str], None],
    pg_server: str | None = None,
    *,
    grant_daemons: bool = True,
) -> Iterator[MailDatabase]:
    """Make a database with a schema, an owner and a daemons' role, both with passwords
    that only get in when each daemon passes them on intact; drop all three after.
    Without ``grant_daemons`` the daemons' role is not made (its URL is still given).

    ``pg_server`` is the superuser URL of a PostgreSQL that checks passwords (tests.pgcluster);
    MariaDB's users, on the shared server, check theirs anyway.
    """
    number = next(_counter)
    name = f"mailctl_stack_{os.getpid()}_{number}"
    owner, daemons = f"mc_owner_{os.getpid()}_{number}", f"mc_daemons_{os.getpid()}_{number}"
    if backend == "sqlite":
        db_dir = root / "db"
        db_dir.mkdir(mode=0o755)
        url = f"sqlite:///{db_dir / 'mailctl.db'}"
        create_schema(url, backend)
        # Dovecot's auth process reads it as the dovecot user.
        (db_dir / "mailctl.db").chmod(0o644)
        yield MailDatabase(url, url)
        return
    if backend == "postgresql":
        if pg_server is None:
            pytest.fail("a PostgreSQL mail database needs the password-checking test cluster")
        owner_password, daemon_password = hostile_password("owner"), hostile_password("daemon")
        server_url, host = f"{pg_server}/postgres", make_url(pg_server)
        setup_sql = [
            f"CREATE ROLE {owner} LOGIN PASSWORD '{owner_password.replace(chr(39), chr(39) * 2)}'",
            f'CREATE DATABASE "{name}" OWNER {owner}',
        ]
        drop_sql = [
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f"DROP ROLE IF EXISTS {daemons}",
            f"DROP ROLE IF EXISTS {owner}",
        ]
        scheme, address = "postgresql+psycopg", f"{host.host}:{host.port}"
    elif backend == "mariadb":
        # Postfix's mysql maps trim the password: no spaces at its ends (refused by setup).
        owner_password = hostile_password("owner")
        daemon_password = hostile_password("daemon", outer_spaces=False)
        server_url, host = f"{MARIADB_SERVER}/", make_url(MARIADB_SERVER)
        literal = owner_password.replace("\\", "\\\\").replace("'", "\\'")
        setup_sql = [
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            f"CREATE USER '{owner}'@'%' IDENTIFIED BY '{literal}'",
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{owner}'@'%'",
        ]
        drop_sql = [
            f"DROP DATABASE IF EXISTS `{name}`",
            f"DROP USER IF EXISTS '{daemons}'@'%'",
            f"DROP USER IF EXISTS '{owner}'@'%'",
        ]
        scheme, address = "mysql+pymysql", f"{host.host}:{host.port or 3306}"
    else:
        raise ValueError(f"unknown backend {backend}")
    url = f"{scheme}://{owner}:{url_password(owner_password)}@{address}/{name}"
    daemon_url = f"{scheme}://{daemons}:{url_password(daemon_password)}@{address}/{name}"
    server = _admin(server_url)
    try:
        with server.connect() as conn:
            for statement in setup_sql:
                conn.exec_driver_sql(statement)
        create_schema(url, backend)
        if grant_daemons:
            _grant_daemons(backend, server_url, name, daemons, daemon_password)
        yield MailDatabase(url, daemon_url)
    finally:
        with server.connect() as conn:
            for statement in drop_sql:
                conn.exec_driver_sql(statement)
        server.dispose()


def create_mail_tables(url: str, backend: str) -> None:
    """Create the three tables the daemons query, with plain SQL in the backend's dialect."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in _DDL[backend]:
                conn.execute(text(statement))
    finally:
        engine.dispose()


# --- the stack ----------------------------------------------------------------------------


@dataclass
class MailStack:
    """A running Postfix + Dovecot + OpenDKIM, its database, and helpers to use them."""

    backend: str
    db_url: str
    root: Path
    cfg: StackConfig
    cert_pem: bytes
    engine: Engine
    opendkim_output: Path
    started: list[str] = field(default_factory=list)

    @property
    def hostname(self) -> str:
        """The name the daemons greet with and the certificate is for."""
        return self.cfg.hostname

    @property
    def smtp_port(self) -> int:
        """Port of the public SMTP service."""
        return self.cfg.smtp_port

    @property
    def submission_port(self) -> int:
        """Port of the authenticated submission service (STARTTLS required)."""
        return self.cfg.submission_port

    @property
    def imap_port(self) -> int:
        """Port of IMAP with STARTTLS."""
        return self.cfg.imap_port

    @property
    def imaps_port(self) -> int:
        """Port of IMAP over TLS."""
        return self.cfg.imaps_port

    @property
    def cert_path(self) -> Path:
        """The PEM certificate both daemons serve."""
        return self.cfg.tls_cert

    @property
    def cert_sha256(self) -> str:
        """SHA-256 fingerprint (hex) of the served certificate's DER form."""
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    def sql(self, statement: str, **params: Any) -> None:
        """Run one SQL statement in its own committed transaction."""
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def add_domain(self, name: str) -> int:
        """Insert a domain row and return its id."""
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO virtual_domains (name) VALUES (:n)"), {"n": name})
            found = conn.execute(
                text("SELECT id FROM virtual_domains WHERE name = :n"), {"n": name}
            )
            return int(found.scalar_one())

    def new_domain(self) -> str:
        """Insert a domain no other test of this stack uses, and return its name."""
        name = f"d{next(_counter)}.example.test"
        self.add_domain(name)
        return name

    def add_user(self, email: str, password_hash: str) -> int:
        """Insert a mailbox row for ``email`` (its domain must exist) and create its maildir."""
        domain = email.rsplit("@", 1)[1]
        with self.engine.begin() as conn:
            domain_id = conn.execute(
                text("SELECT id FROM virtual_domains WHERE name = :n"), {"n": domain}
            ).scalar_one()
            conn.execute(
                text("INSERT INTO virtual_users (domain_id, email, password) VALUES (:d, :e, :p)"),
                {"d": domain_id, "e": email, "p": password_hash},
            )
            user_id = conn.execute(
                text("SELECT id FROM virtual_users WHERE email = :e"), {"e": email}
            ).scalar_one()
        self.make_maildir(email)
        return int(user_id)

    def add_alias(self, source: str, destination: str) -> None:
        """Insert an alias row in the source address's domain."""
        domain = source.rsplit("@", 1)[1]
        with self.engine.begin() as conn:
            domain_id = conn.execute(
                text("SELECT id FROM virtual_domains WHERE name = :n"), {"n": domain}
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO virtual_aliases (domain_id, source, destination)"
                    " VALUES (:d, :s, :t)"
                ),
                {"d": domain_id, "s": source, "t": destination},
            )

    def maildir(self, email: str) -> Path:
        """Where the mail of ``email`` lives: {mail_root}/{domain}/{localpart}."""
        local, domain = email.rsplit("@", 1)
        return self.cfg.mail_root / domain / local

    def make_maildir(self, email: str) -> Path:
        """Create the maildir (cur, new, tmp) of ``email``, owned by vmail, mode 0700."""
        path = self.maildir(email)
        for folder in (path.parent, path, path / "cur", path / "new", path / "tmp"):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chown(folder, self.cfg.vmail_uid, self.cfg.vmail_gid)
        return path

    def hash_password(self, password: str, scheme: str = "SHA512-CRYPT") -> str:
        """A Dovecot ``{SCHEME}hash`` string for ``password``, made by ``doveadm pw``."""
        return hash_password(password, scheme)

    def command(self, daemon: str, action: str) -> subprocess.CompletedProcess[str]:
        """Run one of the stack's own commands (check, start, reload, stop) for a daemon."""
        return run(stack_commands(self.cfg)[daemon][action])

    def restart_opendkim(self) -> None:
        """Stop and start OpenDKIM, and wait until its milter port answers again.

        A reload (SIGUSR1) re-reads the tables in a background thread, so a message sent
        right after it may still meet the old tables; a restart is done once the port
        answers, because OpenDKIM loads its tables before it listens.
        """
        stopped = self.command(OPENDKIM, "stop")
        assert stopped.returncode == 0, stopped.stderr
        status = run_to_file(stack_commands(self.cfg)[OPENDKIM]["start"], self.opendkim_output)
        if status != 0:
            pytest.fail(f"opendkim did not start again (exit {status})\n{self.logs()}")
        _wait_for_ports(self, {"opendkim milter": self.cfg.milter_port})

    def logs(self) -> str:
        """The tails of every daemon's log, for a failure message."""
        return (
            f"--- postfix ---\n{_tail(self.cfg.postfix_log)}\n"
            f"--- dovecot ---\n{_tail(self.cfg.dovecot_log)}\n"
            f"--- opendkim ---\n{_tail(self.opendkim_output)}\n"
        )


def _id(value: str | int | None, lookup: Callable[[str], int]) -> int:
    if value is None:
        return 0
    return value if isinstance(value, int) else lookup(value)


def _prepare_dirs(cfg: StackConfig, root: Path) -> None:
    for required in stack_directories(cfg):
        required.path.mkdir(mode=required.mode, parents=True, exist_ok=True)
        uid = _id(required.owner, lambda name: pwd.getpwnam(name).pw_uid)
        gid = _id(required.group, lambda name: grp.getgrnam(name).gr_gid)
        os.chown(required.path, uid, gid)
        required.path.chmod(required.mode)
    # OpenDKIM keys: a folder only opendkim can read, filled by the tests that sign.
    opendkim = pwd.getpwnam(cfg.opendkim_user)
    (root / "opendkim" / "keys").mkdir(mode=0o700)
    os.chown(root / "opendkim" / "keys", opendkim.pw_uid, opendkim.pw_gid)


def _write(path: Path, content: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.write_bytes(content)
    os.chown(path, uid, gid)
    path.chmod(mode)


def write_rendered(cfg: StackConfig) -> None:
    """Write every rendered file with its mode, owned by root and the file's group."""
    for rendered in render_stack(cfg):
        gid = grp.getgrnam(rendered.group).gr_gid if rendered.group else 0
        _write(rendered.path, rendered.content.encode(), rendered.mode, 0, gid)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); it is gone for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_stack(stack: MailStack) -> list[str]:
    """Stop what was started, by each daemon's stop command, then by pid; report leftovers."""
    problems: list[str] = []
    pid_files = {
        POSTFIX: stack.cfg.postfix_pid_file,
        DOVECOT: stack.cfg.dovecot_pid_file,
        OPENDKIM: stack.cfg.opendkim_pid_file,
    }
    pids = {daemon: _pid(pid_files[daemon]) for daemon in stack.started}
    # The three stop commands each wait for their own daemon; run them side by side.
    commands = stack_commands(stack.cfg)
    stopping = {
        daemon: subprocess.Popen(
            commands[daemon]["stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for daemon in stack.started
    }
    deadline = time.monotonic() + STOP_TIMEOUT
    for daemon, process in stopping.items():
        try:
            _, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            problems.append(f"{daemon} stop did not return in {STOP_TIMEOUT:.0f}s")
            continue
        if process.returncode != 0:
            problems.append(f"{daemon} stop exited {process.returncode}: {stderr.strip()}")
    for daemon, pid in pids.items():
        if pid is None:
            continue
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            problems.append(f"{daemon} (pid {pid}) did not stop; sent SIGTERM")
            os.kill(pid, signal.SIGTERM)
    return problems


@contextmanager
def running_stack(
    backend: str,
    create_schema: Callable[[str, str], None] = create_mail_tables,
    pg_server: str | None = None,
) -> Iterator[MailStack]:
    """Make a database, render the stack with free ports, start it, and stop it after.

    ``create_schema(url, backend)`` fills the new database; by default with the three
    mail tables, but a caller can run the real migrations instead (end-to-end tests).
    The daemons log in with their own role and its password (see ``mail_database``).
    """
    missing = [binary for binary in BINARIES if shutil.which(binary) is None]
    if missing:
        pytest.fail(
            f"not installed: {', '.join(missing)} (scripts/install-test-packages installs them)"
        )
    if os.geteuid() != 0:
        pytest.fail("the mail stack starts its daemons as root, which drop privileges themselves")
    uid, gid = vmail_ids()
    root = Path(tempfile.mkdtemp(prefix="mailctl-stack-"))
    root.chmod(0o711)
    try:
        with mail_database(backend, root, create_schema, pg_server) as database:
            url = database.url
            cfg = StackConfig.under_root(
                root,
                hostname=HOSTNAME,
                backend=SqlBackend.from_url(database.daemon_url),
                vmail_uid=uid,
                vmail_gid=gid,
                smtp_port=free_port(),
                submission_port=free_port(),
                imap_port=free_port(),
                imaps_port=free_port(),
                milter_port=free_port(),
                # The root is below /tmp, which anyone may write to, and OpenDKIM's
                # ancestor check refuses every key below it. Keys stay 0600, owned by
                # opendkim; only the folder walk is skipped.
                opendkim_require_safe_keys=False,
            )
            _prepare_dirs(cfg, root)
            cert_pem, key_pem = self_signed_pair(HOSTNAME)
            _write(cfg.tls_cert, cert_pem, 0o644)
            _write(cfg.tls_key, key_pem, 0o600)
            for table in (cfg.opendkim_key_table, cfg.opendkim_signing_table):
                _write(table, b"", 0o644)
            _write(cfg.opendkim_trusted_hosts, b"127.0.0.1\n::1\nlocalhost\n", 0o644)
            write_rendered(cfg)
            engine = create_engine(url)
            stack = MailStack(
                backend, url, root, cfg, cert_pem, engine, root / "log" / "opendkim.out"
            )
            try:
                start_stack(stack)
                yield stack
            finally:
                problems = stop_stack(stack)
                engine.dispose()
                if problems:
                    pytest.fail("\n".join(problems) + "\n" + stack.logs())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_ports(stack: MailStack, ports: dict[str, int]) -> float:
    """Wait (bounded) until every port answers; return the deadline for further waits."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        waiting = {name: port for name, port in waiting.items() if not _listening(port)}
        if waiting:
            time.sleep(0.1)
    if waiting:
        pytest.fail(f"not listening after {START_TIMEOUT:.0f}s: {waiting}\n{stack.logs()}")
    return deadline


def start_stack(stack: MailStack) -> None:
    commands = stack_commands(stack.cfg)
    for daemon in (POSTFIX, DOVECOT, OPENDKIM):
        done = run(commands[daemon]["check"])
        if done.returncode != 0:
            pytest.fail(f"{daemon} rejects its configuration:\n{done.stdout}{done.stderr}")
    for daemon in (POSTFIX, DOVECOT, OPENDKIM):
        # OpenDKIM logs only to syslog; what any daemon says on the way up is kept here.
        output = stack.root / "log" / f"{daemon}.out"
        status = run_to_file(commands[daemon]["start"], output)
        stack.started.append(daemon)
        if status != 0:
            pytest.fail(f"{daemon} did not start (exit {status}):\n{_tail(output)}\n{stack.logs()}")
    ports = {
        "postfix smtp": stack.smtp_port,
        "postfix submission": stack.submission_port,
        "dovecot imap": stack.imap_port,
        "dovecot imaps": stack.imaps_port,
        "opendkim milter": stack.cfg.milter_port,
    }
    deadline = _wait_for_ports(stack, ports)
    sockets = [stack.cfg.auth_socket, stack.cfg.lmtp_socket]
    while not all(path.exists() for path in sockets) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not all(path.exists() for path in sockets):
        pytest.fail(f"Dovecot did not create {sockets}\n{stack.logs()}")
