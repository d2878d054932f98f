"""OpenDKIM's configuration: the milter socket and where its key and signing tables are."""

from __future__ import annotations

from mailctl.host.stack_config import OPENDKIM, RenderedFile, StackConfig


def opendkim_files(cfg: StackConfig) -> list[RenderedFile]:
    """Render opendkim.conf for ``cfg`` (the tables and keys come from database state)."""
    return [RenderedFile(cfg.opendkim_conf, _opendkim_conf(cfg), 0o644, OPENDKIM)]


def _opendkim_conf(cfg: StackConfig) -> str:
    return (
        "# Rendered by mailctl from its configuration; edits here are overwritten.\n"
        # OpenDKIM has no log file of its own: syslog, facility mail (/var/log/mail.log
        # with rsyslog, `journalctl -t opendkim` under systemd). Setup warns without one.
        "Syslog yes\n"
        "SyslogFacility mail\n"
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
