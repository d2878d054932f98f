"""Configuration: ``MAILCTL_*`` environment variables and an optional TOML file."""

from __future__ import annotations

import ipaddress
import os
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mailctl.errors import InvalidInputError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CONFIG_FILE_ENV = "MAILCTL_CONFIG"
ENV_PREFIX = "MAILCTL_"


class Settings(BaseSettings):
    """Everything mailctl can be told; every path hangs under a configurable root.

    With nothing set, mailctl runs on an embedded SQLite database and a data directory
    ``./data`` under the current folder, and needs no mail daemons.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # --- storage -------------------------------------------------------------------
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: sqlite file under data_dir
    # The mail daemons' own read-only role on the same PostgreSQL/MariaDB database (it may
    # SELECT only the columns they query); `mailctl setup` renders their files with it.
    daemon_database_url: str = ""
    # A group whose members (Postfix and Dovecot) read the SQLite file: it is then 0640
    # with that group instead of 0600. Put such a file outside the data folder (0700).
    database_group: str | None = None
    mail_root: Path | None = None  # default: {data_dir}/mail
    trash_dir: Path | None = None  # default: {data_dir}/trash
    trash_retention_days: int = Field(default=30, ge=0)
    mail_uid: int | None = None  # owner of maildirs on a mail host (the vmail user)
    mail_gid: int | None = None
    # Seconds to open a database connection, and to wait for one statement (a lock held
    # elsewhere, a frozen server); past them a request answers 503 and the connection is
    # dropped. A statement timeout of 0 means none. Migrations (`mailctl init`) have none.
    database_connect_timeout: float = Field(default=5.0, gt=0, le=3600)
    database_statement_timeout: float = Field(default=10.0, ge=0, le=86400)

    # --- admins and tokens -----------------------------------------------------------
    jwt_secret: SecretStr | None = None  # overrides the secret `mailctl init` stores
    token_ttl_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    # A token checked in the database is trusted this long by the process that checked it;
    # a revocation on this host still takes effect at once (services.token_cache).
    token_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    admin_username: str = "admin"  # first admin made by `mailctl init`
    admin_password: SecretStr | None = None  # if unset, `init` generates and prints one
    # Seals the admins' two-factor secrets in the database: 32 random bytes, base64. If
    # unset, the key is {data_dir}/totp.key, made on the first enrolment; every API
    # process on the same database needs the same key (this setting, or a copy of the file).
    totp_key: SecretStr | None = None
    # Failed logins: per (client address, username) and per client address (an IPv6
    # address counts by its /64). Reaching a limit blocks for login_backoff_seconds, twice
    # as long at each further failure, up to login_max_backoff_seconds; the count is
    # forgotten login_window_seconds after the last attempt or block.
    login_max_failures: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    login_backoff_seconds: int = Field(default=60, ge=1)
    login_max_backoff_seconds: int = Field(default=3600, ge=1)
    # Password hashes computed at once (Argon2id takes 64 MiB each); default: one per core.
    password_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)

    # --- mailbox passwords -----------------------------------------------------------
    password_scheme: Literal["ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT"] = "ARGON2ID"  # noqa: S105
    min_password_length: int = Field(default=8, ge=1, le=1024)
    # Mailboxes one batch create may hold (POST /user/{id}/batch, `mailctl user import`):
    # they are checked, hashed and inserted in one transaction, held in memory meanwhile.
    max_batch_users: int = Field(default=10_000, ge=1, le=1_000_000)

    # --- HTTP ------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_field_bytes: int = Field(default=1024 * 1024, ge=1024)
    trust_forwarded_for: bool = False  # take the client address from X-Forwarded-For
    # Server processes `mailctl serve` runs, sharing one socket; default: one per core.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    access_log: bool = True  # one line per request on standard error
    # Bytes of listing bodies (GET /domains, GET /users/:id) each server process keeps
    # while the listed tables stand unchanged (services.listings); 0 keeps none.
    list_cache_bytes: int = Field(default=8 * 1024**2, ge=0)

    # --- files rendered for the daemons (reconcile) ------------------------------------
    opendkim_dir: Path | None = None  # default: {data_dir}/opendkim; /etc/opendkim on a host
    tls_dir: Path | None = None  # default: {data_dir}/tls; certificates as <tls_dir>/<name>/
    # The mailboxes' Sieve scripts (forwarding, auto-reply) as <sieve_dir>/<domain>/<local>.sieve
    sieve_dir: Path | None = None  # default: {data_dir}/sieve
    mail_hostname: str = ""  # the name Postfix and Dovecot present; its certificate is served
    file_uid: int | None = None  # owner of rendered key files (the opendkim user on a host)
    file_gid: int | None = None
    # Reload commands: Debian's defaults, run only when reloads are enabled (a mail host)
    # and only for a daemon whose files changed. The embedded default runs no daemon.
    reload_enabled: bool = False
    reload_postfix: str = "postfix reload"
    reload_dovecot: str = "doveadm reload"
    reload_opendkim: str = "service opendkim restart"
    reload_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long a reconcile (after a change, or `mailctl reconcile`) waits for another one.
    reconcile_lock_wait_seconds: float = Field(default=60.0, ge=0, le=3600)
    agent_interval_seconds: float = Field(default=60.0, gt=0)

    # --- DKIM ------------------------------------------------------------------------
    dkim_selector: str = "mail"
    dkim_key_type: Literal["rsa1024", "rsa2048", "rsa4096", "ed25519"] = "rsa2048"

    # --- TLS certificates and ACME -------------------------------------------------------
    acme_directory_url: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_ca_bundle: Path | None = None  # trust for a private ACME server (pebble in tests)
    acme_email: str | None = None
    acme_webroot: Path | None = None  # also write HTTP-01 answers here, for a web server
    acme_timeout_seconds: float = Field(default=120.0, gt=0)
    renew_before_days: int = Field(default=30, ge=1)
    tls_probe_port: int = Field(default=443, ge=1, le=65535)
    tls_probe_timeout_seconds: float = Field(default=10.0, gt=0)
    # A live days-left check never connects to link-local, multicast or unspecified
    # addresses, and to private and loopback ones only for the mail host itself
    # (mail_hostname and its addresses), unless allowed here: "true" for all of them, or
    # addresses and networks separated by commas ("10.0.0.0/8,fd00::/8,127.0.0.1").
    probe_private_targets: str = ""
    max_upload_bytes: int = Field(default=256 * 1024, ge=1024)  # certificate and key uploads

    # --- archives ----------------------------------------------------------------------
    archive_dir: Path | None = None  # default: {data_dir}/exports
    # Checked while an archive inflates, before any mail is written: the bytes of its
    # files (also the cap on the upload itself), its files and folders, how many times
    # its size it may inflate to (a gzip bomb's is near 1000, mail's rarely above 10),
    # its manifest's size, and how deep its paths may nest (maildirs/<localpart>/...).
    max_import_bytes: int = Field(default=20 * 1024**3, ge=1024)
    max_import_files: int = Field(default=2_000_000, ge=1)
    max_import_ratio: int = Field(default=200, ge=2)
    max_import_manifest_bytes: int = Field(default=64 * 1024**2, ge=1024)
    max_import_depth: int = Field(default=32, ge=3, le=256)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'mailctl.db'}"
        if self.mail_root is None:
            self.mail_root = self.data_dir / "mail"
        if self.trash_dir is None:
            self.trash_dir = self.data_dir / "trash"
        if self.opendkim_dir is None:
            self.opendkim_dir = self.data_dir / "opendkim"
        if self.tls_dir is None:
            self.tls_dir = self.data_dir / "tls"
        if self.archive_dir is None:
            self.archive_dir = self.data_dir / "exports"
        if self.sieve_dir is None:
            self.sieve_dir = self.data_dir / "sieve"
        self.sieve_dir = self.sieve_dir.expanduser().absolute()
        self.mail_root = self.mail_root.expanduser().absolute()
        self.trash_dir = self.trash_dir.expanduser().absolute()
        self.opendkim_dir = self.opendkim_dir.expanduser().absolute()
        self.tls_dir = self.tls_dir.expanduser().absolute()
        self.archive_dir = self.archive_dir.expanduser().absolute()
        self.probe_private_networks()  # a typo fails at start, not at the first probe
        return self

    def probe_private_networks(self) -> tuple[bool, tuple[IPNetwork, ...]]:
        """``probe_private_targets`` read: (every private address allowed, allowed networks).

        ValueError names the first entry that is neither true/false nor an address or network.
        """
        words = self.probe_private_targets.replace(",", " ").split()
        if len(words) == 1 and words[0].lower() in ("true", "yes", "1", "on"):
            return True, ()
        if not words or (len(words) == 1 and words[0].lower() in ("false", "no", "0", "off")):
            return False, ()
        networks: list[IPNetwork] = []
        for word in words:
            try:
                networks.append(ipaddress.ip_network(word, strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"probe_private_targets: {word!r} is not an address or network; give "
                    "true, false, or a list such as 10.0.0.0/8,fd00::/8"
                ) from exc
        return False, tuple(networks)

    def reload_commands(self) -> dict[str, list[str]]:
        """Each daemon's reload argv; empty lists (no-ops) unless reloads are enabled."""
        commands = {
            "postfix": self.reload_postfix,
            "dovecot": self.reload_dovecot,
            "opendkim": self.reload_opendkim,
        }
        if not self.reload_enabled:
            return {daemon: [] for daemon in commands}
        return {daemon: shlex.split(command) for daemon, command in commands.items()}

    @property
    def opendkim_path(self) -> Path:
        assert self.opendkim_dir is not None
        return self.opendkim_dir

    @property
    def tls_path(self) -> Path:
        assert self.tls_dir is not None
        return self.tls_dir

    @property
    def sieve_path(self) -> Path:
        assert self.sieve_dir is not None
        return self.sieve_dir

    @property
    def archive_path(self) -> Path:
        assert self.archive_dir is not None
        return self.archive_dir

    @property
    def mail_root_path(self) -> Path:
        assert self.mail_root is not None
        return self.mail_root

    @property
    def trash_path(self) -> Path:
        assert self.trash_dir is not None
        return self.trash_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings now (never at import time); keyword arguments win over all.

    A value that is wrong (``MAILCTL_PORT=abc``), or a config file that cannot be read,
    raises InvalidInputError naming the setting and what is wrong with it.
    """
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise InvalidInputError(f"{CONFIG_FILE_ENV}: there is no file {config_file}.")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise InvalidInputError(_first_problem(exc, set(overrides))) from exc
    except ValueError as exc:  # a config file that is not valid TOML
        raise InvalidInputError(
            f"{CONFIG_FILE_ENV}: {config_file} is not valid TOML: {exc}."
        ) from exc


# Never echoed in an error message: a wrong value may still be a real secret.
_SECRET_FIELDS = frozenset({"jwt_secret", "admin_password", "database_url", "totp_key"})


def _first_problem(error: ValidationError, overridden: set[str]) -> str:
    problem = error.errors()[0]
    field = str(problem["loc"][0]) if problem["loc"] else ""
    name = field if field in overridden else f"{ENV_PREFIX}{field.upper()}"
    message = f"{name}: {problem['msg']}"
    if (
        field not in _SECRET_FIELDS
        and problem.get("input") is not None
        and problem["type"] != "missing"
    ):
        message += f" (got {problem['input']!r})"
    return message + "."
