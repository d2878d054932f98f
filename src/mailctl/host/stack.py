"""Pure rendering of the Postfix, Dovecot and OpenDKIM configuration that serves our tables."""

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

# What Postfix asks the tables. Postfix folds the key to lower case before it substitutes
# %s and escapes it for the SQL dialect, so these are safe from injection.
DOMAINS_QUERY = "SELECT name FROM virtual_domains WHERE name = '%s'"
MAILBOXES_QUERY = "SELECT email FROM virtual_users WHERE email = '%s'"
ALIASES_QUERY = "SELECT destination FROM virtual_aliases WHERE source = '%s'"
# What Dovecot asks: the stored string keeps its "{SCHEME}" prefix, so each row decides
# how it is verified, and old schemes keep working next to new ones.
PASSDB_QUERY = "SELECT email AS user, password FROM virtual_users WHERE email = '%u'"


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
    # OpenDKIM refuses a key if any folder above it is writable by others. Turn this off
    # only where keys must live below such a folder (a test root under /tmp).
    opendkim_require_safe_keys: bool = True
    # Tempfail by default: if OpenDKIM is down, mail waits instead of leaving unsigned.
    milter_default_action: str = "tempfail"

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


def _check_config(cfg: StackConfig) -> None:
    if not _HOSTNAME.fullmatch(cfg.hostname):
        raise InvalidInputError(f"The host name {cfg.hostname!r} is not a valid DNS name.")
    if cfg.milter_default_action not in _MILTER_ACTIONS:
        raise InvalidInputError(
            f"milter_default_action must be one of {', '.join(_MILTER_ACTIONS)}."
        )
    ports = [cfg.smtp_port, cfg.submission_port, cfg.imap_port, cfg.imaps_port, cfg.milter_port]
    if cfg.lmtp_port is not None:
        ports.append(cfg.lmtp_port)
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
    if not _PLAIN_WORD.fullmatch(cfg.opendkim_user):
        raise InvalidInputError(f"The OpenDKIM user {cfg.opendkim_user!r} is not a plain name.")
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
    # Postfix reads a value to the end of the line; Dovecot needs quotes around spaces.
    if any(ch in backend.password for ch in '\r\n"\\'):
        raise InvalidInputError(
            "The database password cannot hold quotes, backslashes or newlines."
        )


# --- Postfix ------------------------------------------------------------------------------


def _postfix_main_cf(cfg: StackConfig) -> str:
    transport = (
        f"lmtp:inet:{cfg.lmtp_address}:{cfg.lmtp_port}"
        if cfg.lmtp_port is not None
        else "lmtp:unix:private/dovecot-lmtp"
    )
    milter = f"inet:127.0.0.1:{cfg.milter_port}"
    log_dir = cfg.postfix_log.parent
    lines = [
        "# Rendered by mailctl from its configuration; edits here are overwritten.",
        "compatibility_level = 3.6",
        f"myhostname = {cfg.hostname}",
        f"myorigin = {cfg.hostname}",
        # Every domain we serve is virtual: nothing is delivered to local Unix accounts.
        "mydestination =",
        "local_transport = error:local delivery is disabled",
        "local_recipient_maps =",
        f"inet_interfaces = {'all' if cfg.listens_everywhere else cfg.listen_address}",
        f"inet_protocols = {'all' if cfg.listens_everywhere else 'ipv4'}",
        "mynetworks = 127.0.0.0/8",
        # Separate directories, so this instance never touches /etc/postfix or the system
        # queue and several instances can run side by side. Run as root, `postfix -c DIR`
        # needs no alternate_config_directories entry in /etc/postfix/main.cf; only
        # postdrop and postqueue run by other users check that list, and mail enters
        # here by SMTP, not by sendmail.
        f"config_directory = {cfg.postfix_config_dir}",
        f"queue_directory = {cfg.postfix_queue_dir}",
        f"data_directory = {cfg.postfix_data_dir}",
        # Log to a file through postlogd: a container or test host often has no syslog.
        f"maillog_file = {cfg.postfix_log}",
        f"maillog_file_prefixes = {log_dir}",
        "biff = no",
        "append_dot_mydomain = no",
        "smtpd_banner = $myhostname ESMTP",
        # The mailbox tables, read straight from mailctl's database.
        f"virtual_mailbox_domains = {_map_type(cfg.backend)}:{cfg.map_file('domains')}",
        f"virtual_mailbox_maps = {_map_type(cfg.backend)}:{cfg.map_file('mailboxes')}",
        f"virtual_alias_maps = {_map_type(cfg.backend)}:{cfg.map_file('aliases')}",
        f"virtual_transport = {transport}",
        # Reject unknown recipients at RCPT time instead of bouncing later (backscatter).
        "smtpd_reject_unlisted_recipient = yes",
        # No relaying on trust in an address: whoever sends out must log in on submission.
        "smtpd_relay_restrictions = permit_sasl_authenticated reject_unauth_destination",
        "smtpd_recipient_restrictions = reject_unauth_destination",
        # Submission authenticates through Dovecot, which owns the password table.
        "smtpd_sasl_type = dovecot",
        "smtpd_sasl_path = private/auth",
        "smtpd_sasl_auth_enable = no",
        "broken_sasl_auth_clients = no",
        f"smtpd_tls_chain_files = {cfg.tls_key} {cfg.tls_cert}",
        "smtpd_tls_security_level = may",
        "smtpd_tls_auth_only = yes",
        "smtpd_tls_protocols = >=TLSv1.2",
        "smtpd_tls_mandatory_protocols = >=TLSv1.2",
        "smtpd_tls_session_cache_database =",
        "smtp_tls_security_level = may",
        "smtpd_milters = " + milter,
        "non_smtpd_milters = " + milter,
        f"milter_default_action = {cfg.milter_default_action}",
        "milter_protocol = 6",
        "message_size_limit = 52428800",
        "",
    ]
    return "\n".join(lines)


def _postfix_master_cf(cfg: StackConfig) -> str:
    # A bare port listens on every address; "host:port" on that one address only.
    addr = "" if cfg.listens_everywhere else f"{cfg.listen_address}:"
    # Column 5 (chroot) is "n" everywhere: a chroot would need copies of the maps, sockets
    # and resolver files inside the queue directory, which a temporary root does not have.
    services = [
        f"{addr}{cfg.smtp_port} inet n - n - - smtpd",
        f"{addr}{cfg.submission_port} inet n - n - - smtpd",
        "  -o syslog_name=postfix/submission",
        "  -o smtpd_tls_security_level=encrypt",
        "  -o smtpd_sasl_auth_enable=yes",
        "  -o smtpd_tls_auth_only=yes",
        "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
        "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
        "  -o milter_macro_daemon_name=ORIGINATING",
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "proxywrite unix - - n - 1 proxymap",
        "smtp unix - - n - - smtp",
        "relay unix - - n - - smtp",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "lmtp unix - - n - - lmtp",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    header = "# Rendered by mailctl; service type private unpriv chroot wakeup maxproc command"
    return header + "\n" + "\n".join(services) + "\n"


def _postfix_map(cfg: StackConfig, query: str) -> str:
    backend = cfg.backend
    lines = ["# Rendered by mailctl: a Postfix lookup table over mailctl's database."]
    if backend.kind == "sqlite":
        lines.append(f"dbpath = {backend.database}")
    else:
        lines.append(f"hosts = inet:{backend.host}:{backend.effective_port}")
        if backend.user:
            lines.append(f"user = {backend.user}")
        if backend.password:
            lines.append(f"password = {backend.password}")
        lines.append(f"dbname = {backend.database}")
    lines.append(f"query = {query}")
    return "\n".join(lines) + "\n"


def _map_type(backend: SqlBackend) -> str:
    return {"sqlite": "sqlite", "postgresql": "pgsql", "mariadb": "mysql"}[backend.kind]


# --- Dovecot ------------------------------------------------------------------------------


def _dovecot_conf(cfg: StackConfig) -> str:
    mail_dir = f"{cfg.mail_root}/%d/%n"
    if cfg.lmtp_port is not None:
        lmtp_listener = (
            "  inet_listener lmtp {\n"
            f"    address = {cfg.lmtp_address}\n"
            f"    port = {cfg.lmtp_port}\n"
            "  }\n"
        )
    else:
        # The socket sits in Postfix's private/ folder, owned by the postfix user, so only
        # Postfix can hand mail to Dovecot.
        lmtp_listener = (
            f"  unix_listener {cfg.lmtp_socket} {{\n"
            "    user = postfix\n"
            "    group = postfix\n"
            "    mode = 0600\n"
            "  }\n"
        )
    return (
        "# Rendered by mailctl from its configuration; edits here are overwritten.\n"
        f"base_dir = {cfg.dovecot_base_dir}\n"
        f"state_dir = {cfg.dovecot_state_dir}\n"
        "protocols = imap lmtp\n"
        f"listen = {'*, ::' if cfg.listens_everywhere else cfg.listen_address}\n"
        f"log_path = {cfg.dovecot_log}\n"
        f"info_log_path = {cfg.dovecot_log}\n"
        "default_internal_user = dovecot\n"
        "default_login_user = dovenull\n"
        # Mail is only ever read and written as the one vmail account.
        f"first_valid_uid = {cfg.vmail_uid}\n"
        f"last_valid_uid = {cfg.vmail_uid}\n"
        f"first_valid_gid = {cfg.vmail_gid}\n"
        f"last_valid_gid = {cfg.vmail_gid}\n"
        f"mail_location = maildir:{mail_dir}\n"
        "auth_mechanisms = plain login\n"
        # Addresses are stored in lower case; a user typing Alice@Example.org still logs in.
        "auth_username_format = %Lu\n"
        "disable_plaintext_auth = yes\n"
        "ssl = yes\n"
        f"ssl_cert = <{cfg.tls_cert}\n"
        f"ssl_key = <{cfg.tls_key}\n"
        "ssl_min_protocol = TLSv1.2\n"
        "passdb {\n"
        "  driver = sql\n"
        f"  args = {cfg.dovecot_sql_conf}\n"
        "}\n"
        # Every mailbox belongs to the vmail account; only the folder differs per user.
        "userdb {\n"
        "  driver = static\n"
        f"  args = uid={cfg.vmail_uid} gid={cfg.vmail_gid} home={mail_dir}\n"
        "}\n"
        "service imap-login {\n"
        "  inet_listener imap {\n"
        f"    port = {cfg.imap_port}\n"
        "  }\n"
        "  inet_listener imaps {\n"
        f"    port = {cfg.imaps_port}\n"
        "    ssl = yes\n"
        "  }\n"
        "}\n"
        "service pop3-login {\n"
        "  inet_listener pop3 {\n"
        "    port = 0\n"
        "  }\n"
        "  inet_listener pop3s {\n"
        "    port = 0\n"
        "  }\n"
        "}\n"
        "service lmtp {\n"
        f"{lmtp_listener}"
        "}\n"
        "service auth {\n"
        f"  unix_listener {cfg.auth_socket} {{\n"
        "    user = postfix\n"
        "    group = postfix\n"
        "    mode = 0660\n"
        "  }\n"
        "}\n"
        "protocol lmtp {\n"
        f"  postmaster_address = postmaster@{cfg.hostname}\n"
        "}\n"
    )


def _dovecot_sql_conf(cfg: StackConfig) -> str:
    backend = cfg.backend
    if backend.kind == "sqlite":
        driver, connect = "sqlite", backend.database
    else:
        driver = "pgsql" if backend.kind == "postgresql" else "mysql"
        words = [f"host={backend.host}", f"port={backend.effective_port}"]
        words.append(f"dbname={backend.database}")
        if backend.user:
            words.append(f"user={backend.user}")
        if backend.password:
            words.append(f'password="{backend.password}"')
        connect = " ".join(words)
    return (
        "# Rendered by mailctl: how Dovecot checks mailbox passwords.\n"
        f"driver = {driver}\n"
        f"connect = {connect}\n"
        # Used only for a row without a {SCHEME} prefix, which mailctl never writes.
        "default_pass_scheme = ARGON2ID\n"
        f"password_query = {PASSDB_QUERY}\n"
    )


# --- OpenDKIM -----------------------------------------------------------------------------


def _opendkim_conf(cfg: StackConfig) -> str:
    return (
        "# Rendered by mailctl from its configuration; edits here are overwritten.\n"
        "Syslog yes\n"
        "SyslogSuccess yes\n"
        "LogWhy yes\n"
        "Mode sv\n"
        "Canonicalization relaxed/simple\n"
        f"Socket inet:{cfg.milter_port}@127.0.0.1\n"
        f"PidFile {cfg.opendkim_pid_file}\n"
        f"UserID {cfg.opendkim_user}\n"
        "UMask 007\n"
        f"KeyTable file:{cfg.opendkim_key_table}\n"
        # refile: the SigningTable's left side is a pattern like *@example.org.
        f"SigningTable refile:{cfg.opendkim_signing_table}\n"
        # Mail from these hosts (Postfix on this machine) is signed, not only verified.
        f"InternalHosts refile:{cfg.opendkim_trusted_hosts}\n"
        f"ExternalIgnoreList refile:{cfg.opendkim_trusted_hosts}\n"
        "OversignHeaders From\n"
        f"RequireSafeKeys {'yes' if cfg.opendkim_require_safe_keys else 'no'}\n"
    )


# --- the whole stack ----------------------------------------------------------------------


def render_stack(cfg: StackConfig) -> list[RenderedFile]:
    """Render every configuration file of Postfix, Dovecot and OpenDKIM for ``cfg``.

    Pure: reads nothing from disk and writes nothing; the same config gives the same files.
    The OpenDKIM tables and keys and the TLS files are not included: they come from
    database state (see ``mailctl.host.render``).
    """
    _check_config(cfg)
    # Map files and the Dovecot SQL file may hold the database password; the daemons read
    # them after dropping privileges, so they belong to the daemon's group, not to others.
    files = [
        RenderedFile(cfg.postfix_main_cf, _postfix_main_cf(cfg), 0o644, POSTFIX),
        RenderedFile(cfg.postfix_config_dir / "master.cf", _postfix_master_cf(cfg), 0o644, POSTFIX),
    ]
    for name, query in (
        ("domains", DOMAINS_QUERY),
        ("mailboxes", MAILBOXES_QUERY),
        ("aliases", ALIASES_QUERY),
    ):
        files.append(
            RenderedFile(cfg.map_file(name), _postfix_map(cfg, query), 0o640, POSTFIX, "postfix")
        )
    files.append(RenderedFile(cfg.dovecot_conf, _dovecot_conf(cfg), 0o644, DOVECOT))
    files.append(
        RenderedFile(cfg.dovecot_sql_conf, _dovecot_sql_conf(cfg), 0o640, DOVECOT, "dovecot")
    )
    files.append(RenderedFile(cfg.opendkim_conf, _opendkim_conf(cfg), 0o644, OPENDKIM))
    return files


def stack_directories(cfg: StackConfig) -> list[RequiredDir]:
    """Return the folders the stack needs, parents first, with the owner each daemon expects.

    Postfix creates its queue subfolders itself (``postfix check``), but its master takes
    a lock in ``data_directory`` after becoming the postfix user; OpenDKIM writes its pid
    file after becoming its own user; Dovecot delivers as the vmail account.
    """
    _check_config(cfg)
    plain = [
        cfg.postfix_config_dir,
        cfg.postfix_queue_dir,
        cfg.postfix_log.parent,
        cfg.dovecot_config_dir,
        cfg.dovecot_base_dir,
        cfg.dovecot_state_dir,
        cfg.dovecot_log.parent,
        cfg.opendkim_config_dir,
        cfg.opendkim_key_table.parent,
        cfg.opendkim_signing_table.parent,
        cfg.opendkim_trusted_hosts.parent,
        cfg.tls_cert.parent,
        cfg.tls_key.parent,
    ]
    dirs: list[RequiredDir] = []
    seen: set[Path] = set()
    for path in plain:
        if path not in seen:
            seen.add(path)
            dirs.append(RequiredDir(path, 0o755))
    dirs.append(RequiredDir(cfg.postfix_data_dir, 0o700, POSTFIX, POSTFIX))
    dirs.append(RequiredDir(cfg.opendkim_run_dir, 0o755, cfg.opendkim_user, cfg.opendkim_user))
    dirs.append(RequiredDir(cfg.mail_root, 0o700, cfg.vmail_uid, cfg.vmail_gid))
    return dirs


def stack_commands(cfg: StackConfig) -> dict[str, dict[str, list[str]]]:
    """Return, per daemon, the argv that checks, starts, reloads and stops it (no shell)."""
    postfix_dir = str(cfg.postfix_config_dir)
    dovecot_conf = str(cfg.dovecot_conf)
    opendkim_conf = str(cfg.opendkim_conf)
    pid_file = str(cfg.opendkim_pid_file)
    # OpenDKIM has no control command: signal the process named in its pid file, and
    # only if that process really is opendkim. TERM lets it finish the message at hand.
    signal_opendkim = ["start-stop-daemon", "--stop", "--quiet", "--pidfile", pid_file]
    signal_opendkim += ["--name", "opendkim"]
    return {
        POSTFIX: {
            "check": ["postfix", "-c", postfix_dir, "check"],
            "start": ["postfix", "-c", postfix_dir, "start"],
            "reload": ["postfix", "-c", postfix_dir, "reload"],
            "stop": ["postfix", "-c", postfix_dir, "stop"],
        },
        DOVECOT: {
            "check": ["doveconf", "-c", dovecot_conf, "-n"],
            "start": ["dovecot", "-c", dovecot_conf],
            "reload": ["dovecot", "-c", dovecot_conf, "reload"],
            "stop": ["dovecot", "-c", dovecot_conf, "stop"],
        },
        OPENDKIM: {
            "check": ["opendkim", "-n", "-x", opendkim_conf],
            "start": ["opendkim", "-x", opendkim_conf],
            # SIGUSR1 makes OpenDKIM re-read its configuration and tables.
            "reload": [*signal_opendkim, "--signal", "USR1"],
            "stop": [*signal_opendkim, "--oknodo", "--retry", "TERM/10"],
        },
    }
