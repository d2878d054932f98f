"""Pure rendering of the Postfix, Dovecot and OpenDKIM configuration that serves our tables."""

from __future__ import annotations

from pathlib import Path

from mailctl.host.stack_config import (
    DOVECOT,
    OPENDKIM,
    POSTFIX,
    BackendKind,
    RenderedFile,
    RequiredDir,
    SqlBackend,
    StackConfig,
    check_stack_config,
)
from mailctl.host.stack_dovecot import dovecot_files
from mailctl.host.stack_opendkim import opendkim_files
from mailctl.host.stack_postfix import postfix_files

__all__ = [
    "DAEMON_COLUMNS",
    "DAEMON_WRITES",
    "DOVECOT",
    "OPENDKIM",
    "POSTFIX",
    "BackendKind",
    "RenderedFile",
    "RequiredDir",
    "SqlBackend",
    "StackConfig",
    "render_stack",
    "stack_commands",
    "stack_directories",
]

# Every column the queries of Postfix's maps and Dovecot's passdb read (stack_postfix,
# stack_dovecot), by table: all that the daemons' database role may SELECT.
DAEMON_COLUMNS: dict[str, tuple[str, ...]] = {
    "virtual_domains": ("name",),
    "virtual_users": ("email", "password", "quota_bytes", "quota_messages"),
    "virtual_aliases": ("source", "destination"),
}
# The tables the daemons also write: Dovecot's quota_clone keeps each mailbox's usage.
DAEMON_WRITES: tuple[str, ...] = ("mailbox_usage",)


def render_stack(cfg: StackConfig) -> list[RenderedFile]:
    """Render every configuration file of Postfix, Dovecot and OpenDKIM for ``cfg``.

    Pure: reads nothing from disk and writes nothing; the same config gives the same files.
    The OpenDKIM tables and keys and the TLS files are not included: they come from
    database state (see ``mailctl.host.render``).
    """
    check_stack_config(cfg)
    return [*postfix_files(cfg), *dovecot_files(cfg), *opendkim_files(cfg)]


def stack_directories(cfg: StackConfig) -> list[RequiredDir]:
    """Return the folders the stack needs, parents first, with the owner each daemon expects.

    Postfix creates its queue subfolders itself (``postfix check``), but its master takes
    a lock in ``data_directory`` after becoming the postfix user; OpenDKIM writes its pid
    file after becoming its own user; Dovecot delivers as the vmail account.
    """
    check_stack_config(cfg)
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
    if cfg.sieve_dir is not None:
        dirs.append(RequiredDir(cfg.sieve_dir, 0o755))
        dirs.append(RequiredDir(cfg.sieve_bin_dir, 0o700, cfg.vmail_uid, cfg.vmail_gid))
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
