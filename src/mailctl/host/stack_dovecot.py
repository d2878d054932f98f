"""Dovecot's configuration and the SQL file it checks mailbox passwords with."""

from __future__ import annotations

from mailctl.domain.sieve import MAX_DESTINATIONS
from mailctl.host.stack_config import DOVECOT, RenderedFile, SqlBackend, StackConfig

# What Dovecot asks: the stored string keeps its "{SCHEME}" prefix, so each row decides
# how it is verified, and old schemes keep working next to new ones.
PASSDB_QUERY = "SELECT email AS user, password FROM virtual_users WHERE email = '%u'"


def dovecot_files(cfg: StackConfig) -> list[RenderedFile]:
    """Render dovecot.conf and its passdb SQL file for ``cfg``."""
    # The SQL file (and MariaDB's option file) hold the database password; Dovecot reads
    # them after dropping privileges, so they belong to its group, not to others.
    files = [
        RenderedFile(cfg.dovecot_conf, _dovecot_conf(cfg), 0o644, DOVECOT),
        RenderedFile(cfg.dovecot_sql_conf, _dovecot_sql_conf(cfg), 0o640, DOVECOT, "dovecot"),
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
        f"{_lmtp_sieve_plugin(cfg)}"
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


def _dovecot_sql_conf(cfg: StackConfig) -> str:
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
    return (
        "# Rendered by mailctl: how Dovecot checks mailbox passwords.\n"
        f"driver = {driver}\n"
        f"connect = {connect}\n"
        # Used only for a row without a {SCHEME} prefix, which mailctl never writes.
        "default_pass_scheme = ARGON2ID\n"
        f"password_query = {PASSDB_QUERY}\n"
    )
