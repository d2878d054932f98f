"""Pure rendering of the mailboxes' Sieve scripts, one file per mailbox with settings."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from mailctl.domain.names import normalize_domain, normalize_local_part
from mailctl.domain.sieve import Autoreply, MailboxScript, render_script
from mailctl.errors import InvalidInputError
from mailctl.host.render import DesiredFile

# Dovecot reads a script at each delivery and compiles it when it is newer than its
# binary: a changed script needs no reload.
NO_RELOAD: frozenset[str] = frozenset()
SUFFIX = ".sieve"


def script_path(sieve_dir: Path, email: str) -> Path:
    """``<sieve_dir>/<domain>/<local part>.sieve``: Dovecot's ``%d/%n.sieve`` for the user."""
    local, _, domain = email.rpartition("@")
    # The names become a folder and a file name: only their normal form is safe.
    if normalize_local_part(local) != local or normalize_domain(domain) != domain:
        raise InvalidInputError(f"The address {email!r} is not in its normalised form.")
    return Path(f"{os.fspath(sieve_dir)}/{domain}/{local}{SUFFIX}")


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def render_sieve(
    rows: Iterable[tuple[str, ...]],
    sieve_dir: Path,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> list[DesiredFile]:
    """A script (0640) for each row of ``MailboxSettings.sieve_rows``; the delivery process
    (the vmail account, ``gid``) reads it, nobody else: auto-reply texts may be private."""
    files = []
    for email, destinations, keep, replies, subject, body, starts, ends in rows:
        reply = Autoreply(subject, body, _day(starts), _day(ends)) if replies == "1" else None
        script = MailboxScript(tuple(d for d in destinations.split("\n") if d), keep == "1", reply)
        if script.empty:
            continue
        content = render_script(script).encode("utf-8")
        files.append(
            DesiredFile(script_path(sieve_dir, email), content, 0o640, NO_RELOAD, uid, gid)
        )
    return files
