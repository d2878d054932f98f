"""Counting login attempts in the database, so guessing a password gets slow, then refused.

Every attempt is counted *before* its password is checked, in a transaction that holds
the counter rows, so concurrent guesses cannot slip past the limit and a refused guess
costs no hash. Counters are per client address and per (address, username): a guesser
elsewhere cannot lock an admin out of the address the admin logs in from.

A process holds one LoginThrottle, in its Context; the counts themselves live in the
database, so every process on it shares them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailctl.config import Settings
from mailctl.errors import ThrottledError, UnavailableError
from mailctl.storage.tables import LoginThrottleRow
from mailctl.storage.uow import UnitOfWork

log = logging.getLogger("mailctl.throttle")

# Expired rows are dropped now and then rather than on every attempt.
PURGE_CHANCE = 0.02
_PURGE_GRACE_SECONDS = 60.0
_MAX_DOUBLINGS = 30


@dataclass(frozen=True)
class Limits:
    """How many failures each kind of key allows, and how blocking grows."""

    per_pair: int
    per_address: int
    window: float
    backoff: float
    max_backoff: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            per_pair=settings.login_max_failures,
            per_address=settings.login_max_failures_per_address,
            window=float(settings.login_window_seconds),
            backoff=float(settings.login_backoff_seconds),
            max_backoff=float(settings.login_max_backoff_seconds),
        )

    def block_seconds(self, failures: int, limit: int) -> float:
        """The block after ``failures`` attempts on a key that allows ``limit``."""
        doublings = min(failures - limit, _MAX_DOUBLINGS)
        return float(min(self.backoff * 2**doublings, self.max_backoff))


@dataclass(frozen=True)
class Attempt:
    """The counter keys one login attempt was counted on, and their limits."""

    address_key: str
    pair_key: str
    limits: Limits

    def limit_of(self, key: str) -> int:
        return self.limits.per_address if key == self.address_key else self.limits.per_pair


def client_network(address: str | None) -> str:
    """The part of a client address that is counted: the address, or an IPv6 /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        # Whoever holds one IPv6 address usually holds its whole /64.
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _keys(address: str | None, username: str, limits: Limits) -> Attempt:
    network = client_network(address)
    # The username is the guesser's text: stored only as a digest of fixed length.
    pair = hashlib.sha256(f"{network}\x00{username.lower()}".encode()).hexdigest()[:40]
    return Attempt(f"addr:{network}", f"pair:{pair}", limits)


def _forget_if_idle(row: LoginThrottleRow, now: float) -> None:
    if now >= row.expires_at and row.failures:
        row.failures = 0
        row.blocked_until = None


class LoginThrottle:
    """The login throttle of one process: its limits, and the database its counts live in."""

    def __init__(
        self,
        limits: Limits,
        uow: Callable[[], UnitOfWork],
        *,
        purge_chance: float = PURGE_CHANCE,
    ) -> None:
        self.limits = limits
        self._uow = uow
        self.purge_chance = purge_chance

    def begin_attempt(self, address: str | None, username: str) -> Attempt:
        """Count a login attempt before its password is checked; ThrottledError if blocked.

        The ThrottledError's ``retry_after`` is the number of seconds until the longest
        block on the attempt's keys ends.
        """
        limits = self.limits
        attempt = _keys(address, username, limits)
        keys = [attempt.address_key, attempt.pair_key]
        now = time.time()
        with self._uow() as uow:
            uow.login_throttles.ensure(keys, now)
            uow.commit()
        with self._uow() as uow:
            rows = uow.login_throttles.lock(keys)
            for row in rows:
                _forget_if_idle(row, now)
            wait = max((row.blocked_until or now) - now for row in rows)
            if wait <= 0:
                for row in rows:
                    row.failures += 1
                    row.last_at = now
                    limit = attempt.limit_of(row.key)
                    if row.failures >= limit:
                        row.blocked_until = now + limits.block_seconds(row.failures, limit)
                    row.expires_at = max(now, row.blocked_until or now) + limits.window
            uow.commit()
        if wait > 0:
            raise ThrottledError(
                "Too many failed logins from this address; wait before trying again.",
                retry_after=math.ceil(wait),
            )
        if random.random() < self.purge_chance:  # noqa: S311 - spreading work, not a secret
            self._purge(now)
        return attempt

    def _purge(self, now: float) -> None:
        """Drop counters that no longer matter: housekeeping, never the attempt's concern.

        The attempt is counted already; a purge that meets a busy database (MariaDB
        answers a DELETE racing the counters' row locks with a deadlock) is left to a
        later attempt rather than failing this login with a 503.
        """
        try:
            with self._uow() as uow:
                uow.login_throttles.purge_expired(now - _PURGE_GRACE_SECONDS)
                uow.commit()
        except UnavailableError as exc:
            log.info("login throttle: expired counters left for later: %s", exc.message)

    def attempt_succeeded(self, attempt: Attempt) -> None:
        """A right password: clear the pair's count, and take this attempt off the address's."""
        with self._uow() as uow:
            for row in uow.login_throttles.lock([attempt.address_key, attempt.pair_key]):
                if row.key == attempt.pair_key:
                    uow.login_throttles.remove(row)
                    continue
                row.failures = max(row.failures - 1, 0)
                if row.failures < attempt.limit_of(row.key):
                    row.blocked_until = None
            uow.commit()

    def attempt_forgiven(self, attempt: Attempt) -> None:
        """Take an attempt off both counts, as if it had not been made, without clearing
        them: the password was right, but the login asks for a second step (a code)."""
        with self._uow() as uow:
            for row in uow.login_throttles.lock([attempt.address_key, attempt.pair_key]):
                row.failures = max(row.failures - 1, 0)
                if row.failures < attempt.limit_of(row.key):
                    row.blocked_until = None
            uow.commit()
