"""The errors mailctl raises, and what each one means to a caller.

MailctlError
 ├── InvalidInputError   the request itself is wrong (HTTP 400, exit 2)
 ├── AuthError           missing, bad or expired credentials (HTTP 401, exit 3)
 │    └── SecondFactorError  the password was right; a two-factor code is missing or wrong
 ├── NotFoundError       the domain, mailbox, key or job does not exist (HTTP 404, exit 4)
 ├── ConflictError       it exists already, or another action holds it (HTTP 409, exit 5)
 ├── TooLargeError       an upload or field is over its size limit (HTTP 413, exit 2)
 ├── ThrottledError      too many attempts, try again later (HTTP 429, exit 6)
 ├── UnavailableError    the database or a daemon cannot be reached (HTTP 503, exit 7)
 ├── DiskFullError       the disk (or the database's) is full (HTTP 507, exit 10)
 ├── HostStateError      the files on this host are not what they should be (HTTP 500, exit 8)
 └── UpstreamError       a remote party (ACME server, TLS peer) failed (HTTP 502, exit 9)

Adapters translate foreign exceptions into these with ``raise ... from``; the API maps
them to status codes in one handler and the CLI to exit codes in one place.
"""

from __future__ import annotations

import errno


class MailctlError(Exception):
    """Base of every error mailctl reports to a user."""

    status_code = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(MailctlError):
    """The input is malformed or breaks a rule (bad name, missing field, bad PEM)."""

    status_code = 400
    exit_code = 2


class InvalidEntryError(InvalidInputError):
    """One entry of a batch is refused: its place (from 1), its address, and why."""

    def __init__(self, index: int, email: str, reason: str) -> None:
        super().__init__(f"Entry {index} ({email}): {reason}")
        self.index = index
        self.email = email
        self.reason = reason


class AuthError(MailctlError):
    """Credentials or token missing, wrong, expired or for an admin that is gone."""

    status_code = 401
    exit_code = 3


class SecondFactorError(AuthError):
    """The password was right, but this admin logs in with a two-factor code too, and none
    was given, or a wrong or used one; the API answers it with ``"totp_required": true``."""


class ForbiddenError(MailctlError):
    """The caller is known, but its role or key may not do this (a domain admin creating
    a domain, a read-only key changing anything)."""

    status_code = 403
    exit_code = 3


class NotFoundError(MailctlError):
    """The thing named does not exist."""

    status_code = 404
    exit_code = 4


class ConflictError(MailctlError):
    """The thing exists already, or is busy with another action."""

    status_code = 409
    exit_code = 5


class TooLargeError(MailctlError):
    """An upload or a field is larger than mailctl accepts."""

    status_code = 413
    exit_code = 2


class ThrottledError(MailctlError):
    """Too many attempts in a short time; ``retry_after`` says how many seconds to wait."""

    status_code = 429
    exit_code = 6

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class UnavailableError(MailctlError):
    """The database or a daemon could not be reached; ``retry_after`` (seconds) if known."""

    status_code = 503
    exit_code = 7

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DiskFullError(MailctlError):
    """A write failed because a disk, a quota or the database's storage is full.

    Nothing half-written is kept. 507 Insufficient Storage (RFC 4918) is the status made
    for "the server cannot store what this request needs": not the client's fault (4xx),
    and not an internal error (500) or an unreachable database (503) either.
    """

    status_code = 507
    exit_code = 10


class HostStateError(MailctlError):
    """Files or directories on this host are not in the state mailctl expects."""

    status_code = 500
    exit_code = 8


class UpstreamError(MailctlError):
    """A remote party (ACME server, a TLS peer) failed or answered wrongly."""

    status_code = 502
    exit_code = 9


# ENOSPC: no space left on the device; EDQUOT: the writing user's quota is used up.
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FULL = "The disk is full: free some space on this host, then try again."


def disk_full(error: BaseException) -> DiskFullError | None:
    """The DiskFullError to report instead of ``error`` when a full disk caused it.

    Adapters translate an OSError into HostStateError where they catch it; this looks
    through the chain of causes, so a write that failed with ENOSPC anywhere is reported
    as a full disk by the API and the CLI alike, not as a broken host or an internal error.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return current
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            detail = error.message if isinstance(error, MailctlError) else str(current)
            return DiskFullError(f"{DISK_FULL} ({detail.rstrip('.')}.)")
        current = current.__cause__ or current.__context__
    return None


def reported(error: BaseException) -> MailctlError | None:
    """The error to tell a user about ``error``; None for a bug (an unexpected exception).

    A failure on the host or database side (5xx) that a full disk caused is reported as
    the full disk; other mailctl errors as they are.
    """
    if isinstance(error, MailctlError) and error.status_code < 500:
        return error
    full = disk_full(error)
    if full is not None:
        return full
    return error if isinstance(error, MailctlError) else None
