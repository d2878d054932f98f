"""Dovecot's configuration, the SQL file of its passdb and userdb, and its usage map."""

from __future__ import annotations

from mailctl.domain.sieve import MAX_DESTINATIONS
from mailctl.host.stack_config import DOVECOT, RenderedFile, SqlBackend, StackConfig

# What Dovecot asks: the stored string keeps its "{SCHEME}" prefix, so each row decides
# how it is verified, and old schemes keep working next to new ones.
PASSDB_QUERY = "SELECT email AS user, password FROM virtual_users WHERE email = '%u'"
# The mailbox's quota rule from its columns; 0 (or NULL) is unlimited, for Dovecot too.
# uid, gid and home are the userdb's default_fields: one vmail account for every mailbox.
_USER_QUERY_CONCAT = (
    "SELECT email AS user, '*:bytes=' || COALESCE(quota_bytes, 0)"
    " || ':messages=' || COALESCE(quota_messages, 0) AS quota_rule"
    " FROM virtual_users WHERE email = '%u'"
)
USER_QUERIES = {
    "sqlite": _USER_QUERY_CONCAT,
    "postgresql": _USER_QUERY_CONCAT,
    # MariaDB's || is OR unless the server's sql_mode says otherwise.
    "mariadb": (
        "SELECT email AS user, CONCAT('*:bytes=', COALESCE(quota_bytes, 0),"
        " ':messages=', COALESCE(quota_messages, 0)) AS quota_rule"
        " FROM virtual_users WHERE email = '%u'"
    ),
}
ITERATE_QUERY = "SELECT email AS user FROM virtual_users"
# What quota-status answers Postfix's policy request with. DUNNO lets the other
# restrictions decide; a full mailbox is refused for good (552) at RCPT time.
QUOTA_FULL_REPLY = "552 5.2.2 Mailbox is full"
USAGE_TABLE = "mailbox_usage"


def dovecot_files(cfg: StackConfig) -> list[RenderedFile]:
    """Render dovecot.conf and its passdb SQL file for ``cfg``."""
    # The SQL file (and MariaDB's option file) hold the database password; Dovecot reads
    # them after dropping privileges, so they belong to its group, not to others.
    files = [
        RenderedFile(cfg.dovecot_conf, _dovecot_conf(cfg), 0o644, DOVECOT),
        RenderedFile(cfg.dovecot_sql_conf, _dovecot_sql_conf(cfg), 0o640, DOVECOT, "dovecot"),
        RenderedFile(
            cfg.dovecot_dict_sql_conf, _dovecot_dict_sql_conf(cfg), 0o640, DOVECOT, "dovecot"
        ),
    ]
    if cfg.backend.kind == "mariadb":
        files.append(
            RenderedFile(
                cfg.dovecot_mysql_option_file,
                mysql_option_file(cfg.backend),
                0o640,
                DOVECOT,
                "dovecot",
            )
        )
    return files


def mysql_option_file(backend: SqlBackend) -> str:
    """A MySQL option file with the login of ``backend`` in its [client] group.

    Dovecot's mysql driver splits its connect string at spaces and knows no quoting, so
    the login goes here instead: the client library reads a double-quoted value with
    backslash escapes, so any character but a line break survives.
    """
    lines = ["# Rendered by mailctl: the login Dovecot's mysql driver reads.", "[client]"]
    if backend.user:
        lines.append(f"user = {_option_value(backend.user)}")
    if backend.password:
        lines.append(f"password = {_option_value(backend.password)}")
    return "\n".join(lines) + "\n"


def _option_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _libpq_value(value: str) -> str:
    # libpq's keyword=value syntax: single quotes, with backslash escaping ' and \.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dovecot_quoted(value: str) -> str:
    # Dovecot's settings parser takes a double-quoted value whole (a '#' inside is not a
    # comment, spaces at either end stay) and undoes backslash escapes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
        # Every mailbox belongs to the vmail account; only the folder differs per user. The
        # row gives the quota rule, and a user without a row does not exist.
        "userdb {\n"
        "  driver = sql\n"
        f"  args = {cfg.dovecot_sql_conf}\n"
        f"  default_fields = uid={cfg.vmail_uid} gid={cfg.vmail_gid} home={mail_dir}\n"
        "}\n"
        # Usage is counted in the mailbox indexes (the count backend) and copied to
        # mailbox_usage after each change (quota_clone through the dict proxy), where
        # mailctl reads it. The grace lets the message that fills a mailbox in (the size a
        # client declares at MAIL FROM is smaller than the stored one, which gains
        # headers), so a full mailbox is refused at RCPT time rather than bounced after.
        "mail_plugins = $mail_plugins quota quota_clone\n"
        "plugin {\n"
        "  quota = count:User quota\n"
        "  quota_vsizes = yes\n"
        "  quota_grace = 10%%\n"
        "  quota_clone_dict = proxy::usage\n"
        "  quota_status_success = DUNNO\n"
        "  quota_status_nouser = DUNNO\n"
        f'  quota_status_overquota = "{QUOTA_FULL_REPLY}"\n'
        "}\n"
        "dict {\n"
        f"  usage = {_sql_driver(cfg.backend)}:{cfg.dovecot_dict_sql_conf}\n"
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
        # The dict proxy is asked by the mail processes, which run as the vmail account.
        "service dict {\n"
        f"{_dict_user(cfg)}"
        "  unix_listener dict {\n"
        f"    user = {cfg.vmail_user}\n"
        f"    group = {cfg.vmail_group}\n"
        "    mode = 0600\n"
        "  }\n"
        "}\n"
        # Postfix's smtpd asks whether a recipient's mailbox has room, in its private/
        # folder like the LMTP socket.
        "service quota-status {\n"
        "  executable = quota-status -p postfix\n"
        f"  unix_listener {cfg.quota_status_socket} {{\n"
        "    user = postfix\n"
        "    group = postfix\n"
        "    mode = 0600\n"
        "  }\n"
        "  client_limit = 1\n"
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
        f"{_lmtp_sieve_plugin(cfg)}"
        "}\n"
        "protocol imap {\n"
        "  mail_plugins = $mail_plugins imap_quota\n"
        "}\n"
        f"{_sieve_settings(cfg)}"
    )


def _lmtp_sieve_plugin(cfg: StackConfig) -> str:
    return "  mail_plugins = $mail_plugins sieve\n" if cfg.sieve_dir is not None else ""


def _sieve_settings(cfg: StackConfig) -> str:
    """Pigeonhole's settings: each mailbox's script is the one reconcile renders for it
    (none: plain delivery), compiled into a folder of the vmail account; what a script
    sends leaves through Postfix's loopback listener, to be signed and queued."""
    if cfg.sieve_dir is None:
        return ""
    return (
        f"submission_host = 127.0.0.1:{cfg.reinject_port}\n"
        "plugin {\n"
        f"  sieve = file:{cfg.sieve_dir}/%d/%n.sieve;bindir={cfg.sieve_bin_dir}/%d/%n\n"
        # Mailboxes may forward to this many addresses (domain.sieve.MAX_DESTINATIONS).
        f"  sieve_max_redirects = {MAX_DESTINATIONS}\n"
        "}\n"
    )


def _sql_driver(backend: SqlBackend) -> str:
    return {"sqlite": "sqlite", "postgresql": "pgsql", "mariadb": "mysql"}[backend.kind]


def _dict_user(cfg: StackConfig) -> str:
    # On SQLite the dict process writes mailctl's own file and the journal next to it,
    # which the dovecot user may only read.
    return "  user = root\n" if cfg.backend.kind == "sqlite" else ""


def _connect(cfg: StackConfig) -> tuple[str, str]:
    backend = cfg.backend
    if backend.kind == "sqlite":
        driver, connect = "sqlite", backend.database
    elif backend.kind == "postgresql":
        # The whole string goes to libpq as it stands once Dovecot has unquoted it.
        driver = "pgsql"
        words = [f"host={backend.host}", f"port={backend.effective_port}"]
        words.append(f"dbname={_libpq_value(backend.database)}")
        if backend.user:
            words.append(f"user={_libpq_value(backend.user)}")
        if backend.password:
            words.append(f"password={_libpq_value(backend.password)}")
        connect = _dovecot_quoted(" ".join(words))
    else:
        driver = "mysql"
        words = [f"host={backend.host}", f"port={backend.effective_port}"]
        words.append(f"dbname={backend.database}")
        words.append(f"option_file={cfg.dovecot_mysql_option_file}")
        words.append("option_group=client")
        connect = " ".join(words)
    return driver, connect


def _dovecot_sql_conf(cfg: StackConfig) -> str:
    driver, connect = _connect(cfg)
    return (
        "# Rendered by mailctl: how Dovecot checks mailbox passwords and finds quotas.\n"
        f"driver = {driver}\n"
        f"connect = {connect}\n"
        # Used only for a row without a {SCHEME} prefix, which mailctl never writes.
        "default_pass_scheme = ARGON2ID\n"
        f"password_query = {PASSDB_QUERY}\n"
        f"user_query = {USER_QUERIES[cfg.backend.kind]}\n"
        f"iterate_query = {ITERATE_QUERY}\n"
    )


def _dovecot_dict_sql_conf(cfg: StackConfig) -> str:
    _driver, connect = _connect(cfg)
    maps = "".join(
        "map {\n"
        f"  pattern = priv/quota/{key}\n"
        f"  table = {USAGE_TABLE}\n"
        "  username_field = username\n"
        f"  value_field = {column}\n"
        "  value_type = uint\n"
        "}\n"
        for key, column in (("storage", "bytes"), ("messages", "messages"))
    )
    return (
        "# Rendered by mailctl: where Dovecot's quota_clone writes each mailbox's usage.\n"
        f"connect = {connect}\n{maps}"
    )
