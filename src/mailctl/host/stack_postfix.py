"""Postfix's main.cf, master.cf and the SQL lookup tables over mailctl's database."""

from __future__ import annotations

from urllib.parse import quote

from mailctl.host.stack_config import POSTFIX, RenderedFile, SqlBackend, StackConfig

# What Postfix asks the tables. Postfix folds the key to lower case before it substitutes
# %s and escapes it for the SQL dialect, so these are safe from injection.
DOMAINS_QUERY = "SELECT name FROM virtual_domains WHERE name = '%s'"
MAILBOXES_QUERY = "SELECT email FROM virtual_users WHERE email = '%s'"
# Each mailbox also maps to itself: Postfix applies virtual_alias_maps before delivery, so
# without that a catch-all alias (@domain) would take the mail of every mailbox, and an
# alias on a mailbox's own address would forward its mail instead of copying it.
ALIASES_QUERY = (
    "SELECT destination FROM virtual_aliases WHERE source = '%s'"
    " UNION SELECT email FROM virtual_users WHERE email = '%s'"
)


def postfix_files(cfg: StackConfig) -> list[RenderedFile]:
    """Render main.cf, master.cf and the domain, mailbox and alias maps for ``cfg``."""
    # Map files may hold the database password; Postfix reads them after dropping
    # privileges, so they belong to its group, not to others.
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
    return files


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
        # A full mailbox is refused at RCPT time (Dovecot's quota-status answers 552)
        # rather than taken and bounced; if the service cannot answer, mail waits.
        "smtpd_recipient_restrictions = reject_unauth_destination"
        " check_policy_service unix:private/quota-status",
        "smtpd_policy_service_default_action = 451 4.3.5 Cannot check the mailbox quota",
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
        *_reinject_service(cfg),
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


def _reinject_service(cfg: StackConfig) -> list[str]:
    """The listener for mail Dovecot's Sieve sends (auto-replies, redirects): on loopback
    only, it relays for the host itself (mynetworks) and nobody else, and its mail is
    signed by OpenDKIM like submitted mail."""
    if cfg.sieve_dir is None:
        return []
    return [
        f"127.0.0.1:{cfg.reinject_port} inet n - n - - smtpd",
        "  -o syslog_name=postfix/sieve",
        "  -o smtpd_client_restrictions=permit_mynetworks,reject",
        "  -o smtpd_relay_restrictions=permit_mynetworks,reject",
        "  -o smtpd_recipient_restrictions=permit_mynetworks,reject",
        "  -o milter_macro_daemon_name=ORIGINATING",
    ]


def _postfix_map(cfg: StackConfig, query: str) -> str:
    backend = cfg.backend
    lines = ["# Rendered by mailctl: a Postfix lookup table over mailctl's database."]
    if backend.kind == "sqlite":
        lines.append(f"dbpath = {backend.database}")
    elif backend.kind == "postgresql":
        # libpq reads a connection URI and decodes it; encoded, no password character can
        # be taken for the space or comma that separate Postfix's hosts, nor trimmed.
        lines.append(f"hosts = {postgresql_uri(backend)}")
        lines.append(f"dbname = {backend.database}")
    else:
        lines.append(f"hosts = inet:{backend.host}:{backend.effective_port}")
        if backend.user:
            lines.append(f"user = {backend.user}")
        # Postfix takes the rest of the line as it stands, trimmed; it passes the value to
        # the client library even when empty, so a password in an option_file would be
        # ignored. stack_config refuses a MariaDB password that starts or ends with a space.
        if backend.password:
            lines.append(f"password = {backend.password}")
        lines.append(f"dbname = {backend.database}")
    lines.append(f"query = {query}")
    return "\n".join(lines) + "\n"


def postgresql_uri(backend: SqlBackend) -> str:
    """The libpq connection URI of ``backend``, every user and password byte percent-encoded."""
    user = quote(backend.user, safe="")
    password = f":{quote(backend.password, safe='')}" if backend.password else ""
    login = f"{user}{password}@" if user or password else ""
    database = quote(backend.database, safe="")
    return f"postgresql://{login}{backend.host}:{backend.effective_port}/{database}"


def _map_type(backend: SqlBackend) -> str:
    return {"sqlite": "sqlite", "postgresql": "pgsql", "mariadb": "mysql"}[backend.kind]
