"""What the mail stack is configured with: daemons' paths, listeners, SQL backend, checks."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from mailctl.errors import InvalidInputError

POSTFIX = "postfix"
DOVECOT = "dovecot"
OPENDKIM = "opendkim"

BackendKind = Literal["sqlite", "postgresql", "mariadb"]

_SQL_PORTS: dict[str, int] = {"postgresql": 5432, "mariadb": 3306}
# Database, user and host names end up unquoted in map files and Dovecot connect strings.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_.@%+-]{1,128}$")
_HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*$")
_MILTER_ACTIONS = ("accept", "reject", "tempfail", "quarantine")


@dataclass(frozen=True)
class SqlBackend:
    """Where the mail tables live, as the daemons' own SQL drivers need to be told."""

    kind: BackendKind
    database: str  # the file path for sqlite, else the database name
    host: str = "127.0.0.1"
    port: int | None = None
    user: str = ""
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> SqlBackend:
        """Read a SQLAlchemy-style URL (``sqlite:///``, ``postgresql+psycopg://``, ``mysql+pymysql://``)."""
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme == "sqlite":
            path = unquote(parts.path)
            if not path.startswith("//") or len(path) < 3:
                raise InvalidInputError(
                    "A SQLite database URL for the mail daemons must be absolute."
                )
            return cls("sqlite", path[1:])
        kinds: dict[str, BackendKind] = {
            "postgresql": "postgresql",
            "postgres": "postgresql",
            "mysql": "mariadb",
            "mariadb": "mariadb",
        }
        if scheme not in kinds:
            raise InvalidInputError(
                f"The mail daemons cannot read a {scheme or 'schemeless'} database."
            )
        try:
            port = parts.port
        except ValueError as exc:
            raise InvalidInputError(f"The database URL has a bad port: {exc}") from exc
        return cls(
            kind=kinds[scheme],
            database=unquote(parts.path.lstrip("/")),
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )

    @property
    def effective_port(self) -> int | None:
        """The TCP port of the server (None for sqlite)."""
        if self.kind == "sqlite":
            return None
        return self.port or _SQL_PORTS[self.kind]


@dataclass(frozen=True)
class StackConfig:
    """Everything the three daemons need to know; every path is configurable.

    On a mail host these are the system paths; in tests they all hang under one temporary
    root (see :meth:`under_root`), so nothing under /etc or /var is read or written.
    """

    hostname: str
    backend: SqlBackend
    mail_root: Path
    vmail_uid: int
    vmail_gid: int
    # Postfix
    postfix_config_dir: Path
    postfix_queue_dir: Path
    postfix_data_dir: Path
    postfix_log: Path
    # Dovecot
    dovecot_config_dir: Path
    dovecot_base_dir: Path
    dovecot_state_dir: Path
    dovecot_log: Path
    # OpenDKIM
    opendkim_config_dir: Path
    opendkim_run_dir: Path
    opendkim_key_table: Path
    opendkim_signing_table: Path
    opendkim_trusted_hosts: Path
    # TLS served by Postfix (STARTTLS) and Dovecot (IMAPS, STARTTLS)
    tls_cert: Path
    tls_key: Path
    # Listeners
    smtp_port: int = 25
    submission_port: int = 587
    imap_port: int = 143
    imaps_port: int = 993
    milter_port: int = 8891
    lmtp_port: int | None = None  # None: a unix socket in Postfix's private/ folder
    # An IPv4 address, or "*" for every address of the host (a public mail server).
    listen_address: str = "127.0.0.1"
    opendkim_user: str = "opendkim"
    # The names of the vmail account and group: Dovecot's socket owners take only names.
    vmail_user: str = "vmail"
    vmail_group: str = "vmail"
    # OpenDKIM refuses a key if any folder above it is writable by others. Turn this off
    # only where keys must live below such a folder (a test root under /tmp).
    opendkim_require_safe_keys: bool = True
    # Tempfail by default: if OpenDKIM is down, mail waits instead of leaving unsigned.
    milter_default_action: str = "tempfail"
    # Mailbox self-service: the folder of the Sieve scripts reconcile renders (None: no
    # Sieve), and the loopback-only port where Dovecot hands Postfix the replies and
    # redirects those scripts send.
    sieve_dir: Path | None = None
    reinject_port: int = 10025

    @classmethod
    def under_root(
        cls,
        root: Path,
        *,
        hostname: str,
        backend: SqlBackend,
        vmail_uid: int,
        vmail_gid: int,
        smtp_port: int,
        submission_port: int,
        imap_port: int,
        imaps_port: int,
        milter_port: int,
        lmtp_port: int | None = None,
        opendkim_require_safe_keys: bool = True,
    ) -> StackConfig:
        """Lay out a whole stack below ``root`` (config, queues, sockets, logs, mail)."""
        return cls(
            hostname=hostname,
            backend=backend,
            mail_root=root / "mail",
            vmail_uid=vmail_uid,
            vmail_gid=vmail_gid,
            postfix_config_dir=root / "postfix" / "etc",
            postfix_queue_dir=root / "postfix" / "spool",
            postfix_data_dir=root / "postfix" / "lib",
            postfix_log=root / "log" / "postfix.log",
            dovecot_config_dir=root / "dovecot" / "etc",
            dovecot_base_dir=root / "dovecot" / "run",
            dovecot_state_dir=root / "dovecot" / "lib",
            dovecot_log=root / "log" / "dovecot.log",
            opendkim_config_dir=root / "opendkim" / "etc",
            opendkim_run_dir=root / "opendkim" / "run",
            opendkim_key_table=root / "opendkim" / "KeyTable",
            opendkim_signing_table=root / "opendkim" / "SigningTable",
            opendkim_trusted_hosts=root / "opendkim" / "TrustedHosts",
            tls_cert=root / "tls" / "fullchain.pem",
            tls_key=root / "tls" / "privkey.pem",
            smtp_port=smtp_port,
            submission_port=submission_port,
            imap_port=imap_port,
            imaps_port=imaps_port,
            milter_port=milter_port,
            lmtp_port=lmtp_port,
            opendkim_require_safe_keys=opendkim_require_safe_keys,
        )

    # --- paths other code needs to agree on ------------------------------------------
    @property
    def postfix_main_cf(self) -> Path:
        """Postfix's main.cf."""
        return self.postfix_config_dir / "main.cf"

    @property
    def dovecot_conf(self) -> Path:
        """The single Dovecot configuration file."""
        return self.dovecot_config_dir / "dovecot.conf"

    @property
    def dovecot_sql_conf(self) -> Path:
        """Dovecot's passdb SQL file."""
        return self.dovecot_config_dir / "dovecot-sql.conf.ext"

    @property
    def dovecot_dict_sql_conf(self) -> Path:
        """Dovecot's dict-sql map: where quota_clone writes each mailbox's usage."""
        return self.dovecot_config_dir / "dovecot-dict-sql.conf.ext"

    @property
    def dovecot_mysql_option_file(self) -> Path:
        """The MySQL option file holding the login of Dovecot's mysql driver."""
        return self.dovecot_config_dir / "dovecot-sql.my.cnf"

    @property
    def opendkim_conf(self) -> Path:
        """OpenDKIM's configuration file."""
        return self.opendkim_config_dir / "opendkim.conf"

    @property
    def opendkim_pid_file(self) -> Path:
        """Where OpenDKIM writes its process id."""
        return self.opendkim_run_dir / "opendkim.pid"

    @property
    def postfix_pid_file(self) -> Path:
        """Where the Postfix master writes its process id."""
        return self.postfix_queue_dir / "pid" / "master.pid"

    @property
    def dovecot_pid_file(self) -> Path:
        """Where the Dovecot master writes its process id."""
        return self.dovecot_base_dir / "master.pid"

    @property
    def lmtp_socket(self) -> Path:
        """Dovecot's LMTP socket when ``lmtp_port`` is None (Postfix's view: private/...)."""
        return self.postfix_queue_dir / "private" / "dovecot-lmtp"

    @property
    def auth_socket(self) -> Path:
        """Dovecot's auth socket that Postfix's submission service asks for SASL."""
        return self.postfix_queue_dir / "private" / "auth"

    @property
    def quota_status_socket(self) -> Path:
        """Dovecot's quota-status policy socket that Postfix's smtpd asks at RCPT time."""
        return self.postfix_queue_dir / "private" / "quota-status"

    @property
    def sieve_bin_dir(self) -> Path:
        """Where Dovecot keeps the compiled Sieve scripts, as the vmail account."""
        return self.dovecot_state_dir / "sieve-bin"

    @property
    def listens_everywhere(self) -> bool:
        """True when the public services listen on every address of the host."""
        return self.listen_address == "*"

    @property
    def lmtp_address(self) -> str:
        """Where an LMTP listener binds: Postfix hands mail over locally, never from outside."""
        return "127.0.0.1" if self.listens_everywhere else self.listen_address

    def map_file(self, name: str) -> Path:
        """The Postfix SQL map file called ``name`` (domains, mailboxes, aliases)."""
        return self.postfix_config_dir / f"sql-virtual-{name}.cf"


@dataclass(frozen=True)
class RenderedFile:
    """One configuration file: where, what, its mode, and which daemon reads it.

    ``group`` names the group that must own the file when the daemon reads it after
    dropping privileges (None: root is enough).
    """

    path: Path
    content: str
    mode: int
    daemon: str
    group: str | None = None


@dataclass(frozen=True)
class RequiredDir:
    """A folder that must exist before the daemons start, with its owner and mode.

    ``owner`` and ``group`` are a name, a numeric id, or None for root.
    """

    path: Path
    mode: int
    owner: str | int | None = None
    group: str | int | None = None


# --- validation ---------------------------------------------------------------------------


def check_stack_config(cfg: StackConfig) -> None:
    """Refuse a configuration the daemons would misread or that is unsafe (InvalidInputError)."""
    if not _HOSTNAME.fullmatch(cfg.hostname):
        raise InvalidInputError(f"The host name {cfg.hostname!r} is not a valid DNS name.")
    if cfg.milter_default_action not in _MILTER_ACTIONS:
        raise InvalidInputError(
            f"milter_default_action must be one of {', '.join(_MILTER_ACTIONS)}."
        )
    ports = [cfg.smtp_port, cfg.submission_port, cfg.imap_port, cfg.imaps_port, cfg.milter_port]
    if cfg.lmtp_port is not None:
        ports.append(cfg.lmtp_port)
    if cfg.sieve_dir is not None:
        ports.append(cfg.reinject_port)
    for port in ports:
        if not 0 < port < 65536:
            raise InvalidInputError(f"The port {port} is out of range.")
    if len(set(ports)) != len(ports):
        raise InvalidInputError("Two daemons are configured to listen on the same port.")
    if min(cfg.vmail_uid, cfg.vmail_gid) <= 0:
        # Dovecot refuses to deliver mail as root, and so should we.
        raise InvalidInputError("The vmail uid and gid must be unprivileged (greater than 0).")
    for path in _all_paths(cfg):
        text = str(path)
        if not path.is_absolute() or any(ch.isspace() for ch in text) or '"' in text:
            raise InvalidInputError(f"The path {text!r} must be absolute and without spaces.")
    if cfg.listen_address != "*":
        try:
            ipaddress.IPv4Address(cfg.listen_address)
        except ValueError:
            raise InvalidInputError(
                f"The listen address {cfg.listen_address!r} must be an IPv4 address or '*'."
            ) from None
    for label, name in (
        ("OpenDKIM user", cfg.opendkim_user),
        ("vmail user", cfg.vmail_user),
        ("vmail group", cfg.vmail_group),
    ):
        if not _PLAIN_WORD.fullmatch(name):
            raise InvalidInputError(f"The {label} {name!r} is not a plain name.")
    _check_backend(cfg.backend)


def _all_paths(cfg: StackConfig) -> list[Path]:
    return [
        cfg.mail_root,
        cfg.postfix_config_dir,
        cfg.postfix_queue_dir,
        cfg.postfix_data_dir,
        cfg.postfix_log,
        cfg.dovecot_config_dir,
        cfg.dovecot_base_dir,
        cfg.dovecot_state_dir,
        cfg.dovecot_log,
        cfg.opendkim_config_dir,
        cfg.opendkim_run_dir,
        cfg.opendkim_key_table,
        cfg.opendkim_signing_table,
        cfg.opendkim_trusted_hosts,
        cfg.tls_cert,
        cfg.tls_key,
        *([cfg.sieve_dir] if cfg.sieve_dir is not None else []),
    ]


def _check_backend(backend: SqlBackend) -> None:
    if backend.kind == "sqlite":
        path = Path(backend.database)
        if not path.is_absolute() or any(ch.isspace() for ch in backend.database):
            raise InvalidInputError("The SQLite database path must be absolute and without spaces.")
        return
    for label, value in (("database", backend.database), ("host", backend.host)):
        if not _PLAIN_WORD.fullmatch(value):
            raise InvalidInputError(f"The {label} name {value!r} is not a plain name.")
    if backend.user and not _PLAIN_WORD.fullmatch(backend.user):
        raise InvalidInputError(f"The database user {backend.user!r} is not a plain name.")
    # Every renderer quotes or encodes the password in its daemon's own syntax; only a
    # line break (or NUL) cannot be written into a line-oriented file at all.
    if any(ch in backend.password for ch in "\r\n\0"):
        raise InvalidInputError("The database password cannot hold a line break or NUL.")
    if backend.kind == "mariadb" and backend.password != backend.password.strip():
        # Postfix's mysql maps trim the value of `password =` and offer no quoting.
        raise InvalidInputError(
            "A MariaDB password for the mail daemons cannot begin or end with a space: "
            "Postfix's mysql maps trim it. Choose another password."
        )
