"""Pure rendering of daemon files (OpenDKIM tables and keys, TLS PEMs) from desired state."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailctl.domain.dkim import validate_selector
from mailctl.domain.names import normalize_domain
from mailctl.errors import InvalidInputError

OPENDKIM = "opendkim"
POSTFIX = "postfix"
DOVECOT = "dovecot"

# Connections from these hosts get their mail signed rather than verified: the local
# Postfix hands mail to the milter over loopback.
TRUSTED_HOSTS = ("127.0.0.1", "::1", "localhost")

_TLS_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,252})$")
# A name of lowercase ASCII labels of letters, digits and inner hyphens: what the database
# holds for nearly every domain. Such a name, without punycode labels, an all-numeric last
# label or more than 253 characters, is its own normal form; the others go through
# normalize_domain. Checking 10,000 names this way takes milliseconds, not a second.
_PLAIN_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


# Making a Path costs more than the rest of rendering a file: the agent and the API
# render the same paths run after run, so each is made once per process. A path holds
# no secret; the bound keeps a host of any size from growing it without end.
_PATHS_KEPT = 1 << 17


@functools.lru_cache(maxsize=_PATHS_KEPT)
def _path(text: str) -> Path:
    return Path(text)


@dataclass(frozen=True)
class DesiredFile:
    """One file as a daemon should find it, and the daemons to reload when it changes."""

    path: Path
    content: bytes
    mode: int
    daemons: frozenset[str]
    uid: int | None = None  # None: whoever runs mailctl
    gid: int | None = None


@dataclass(frozen=True)
class DkimKeyState:
    """The signing key of one domain, as stored in the database."""

    domain: str
    selector: str
    private_pem: str


@dataclass(frozen=True)
class TlsState:
    """One installed certificate: a name for its folder, the chain and the key."""

    name: str
    chain_pem: bytes
    key_pem: bytes


def key_dir(base_dir: Path) -> Path:
    """Return the folder that holds the OpenDKIM key files (one sub-folder per domain)."""
    return base_dir / "keys"


def _checked_domain(domain: str) -> str:
    # Domains become folder names: only the canonical form is safe and unambiguous.
    if (
        len(domain) <= 253
        and _PLAIN_DOMAIN.fullmatch(domain)
        and "xn--" not in domain
        and not domain.rsplit(".", 1)[1].isdigit()
    ):
        return domain
    if normalize_domain(domain) != domain:
        raise InvalidInputError(f"The domain {domain!r} is not in its normalised form.")
    return domain


def render_opendkim(
    keys: Sequence[DkimKeyState],
    base_dir: Path,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> list[DesiredFile]:
    """Render every file OpenDKIM reads for signing, whole, sorted, byte-stable.

    OpenDKIM finds a key in two steps: the SigningTable maps a sender address to a key
    name, and the KeyTable maps that name to ``domain:selector:keyfile``. The selector is
    what verifiers look up in DNS and the domain is what goes into ``d=``, so every signing
    domain needs its own KeyTable line even when two domains could share a key. One key
    per domain: a second key for the same domain would make the signing choice depend on
    line order.
    """
    daemons = frozenset({OPENDKIM})
    by_domain: dict[str, DkimKeyState] = {}
    for key in keys:
        domain = _checked_domain(key.domain)
        if domain in by_domain:
            raise InvalidInputError(f"The domain {domain} has more than one active DKIM key.")
        by_domain[domain] = key

    files: list[DesiredFile] = []
    key_lines: list[str] = []
    signing_lines: list[str] = []
    keys_folder = os.fspath(key_dir(base_dir))
    for domain in sorted(by_domain):
        key = by_domain[domain]
        selector = validate_selector(key.selector)
        # One Path from one string: joining Path objects costs more than the rest here.
        key_file = _path(f"{keys_folder}/{domain}/{selector}.private")
        key_name = f"{selector}._domainkey.{domain}"
        files.append(
            DesiredFile(key_file, key.private_pem.encode("ascii"), 0o600, daemons, uid=uid, gid=gid)
        )
        key_lines.append(f"{key_name} {domain}:{selector}:{key_file}\n")
        # refile syntax: the left side is a pattern matched against the sender address.
        signing_lines.append(f"*@{domain} {key_name}\n")

    def table(name: str, lines: Sequence[str]) -> DesiredFile:
        return DesiredFile(
            base_dir / name, "".join(lines).encode("ascii"), 0o644, daemons, uid=uid, gid=gid
        )

    files.append(table("KeyTable", key_lines))
    files.append(table("SigningTable", signing_lines))
    files.append(table("TrustedHosts", [f"{host}\n" for host in TRUSTED_HOSTS]))
    return files


def render_tls(
    certs: Sequence[TlsState],
    tls_dir: Path,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> list[DesiredFile]:
    """Render ``<tls_dir>/<name>/fullchain.pem`` (0644) and ``privkey.pem`` (0600).

    Postfix and Dovecot both serve these files, so a change marks both for reload. They
    read them as root before dropping privileges, so ``uid``/``gid`` are root's on a mail
    host: never the OpenDKIM owner of the DKIM files, whose group must not read a TLS key.
    """
    daemons = frozenset({POSTFIX, DOVECOT})
    files: list[DesiredFile] = []
    seen: set[str] = set()
    for cert in sorted(certs, key=lambda c: c.name):
        name = cert.name
        if not _TLS_NAME.fullmatch(name) or ".." in name:
            raise InvalidInputError(f"The certificate name {name!r} cannot be a folder name.")
        if name in seen:
            raise InvalidInputError(f"Two certificates are named {name}.")
        seen.add(name)
        folder = f"{os.fspath(tls_dir)}/{name}"
        files.append(
            DesiredFile(_path(f"{folder}/fullchain.pem"), cert.chain_pem, 0o644, daemons, uid, gid)
        )
        files.append(
            DesiredFile(_path(f"{folder}/privkey.pem"), cert.key_pem, 0o600, daemons, uid, gid)
        )
    return files
