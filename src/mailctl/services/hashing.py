"""Password hashing a few at a time, so memory stays bounded whatever the concurrency.

An Argon2id hash takes 64 MiB while it is computed; two hundred logins at once would
otherwise take the server past a gigabyte. Callers wait for a slot instead.

The cost of new hashes is the one ``domain.passwords`` sets in its module constants
(ARGON2_*, BCRYPT_COST, SHA512_CRYPT_ROUNDS, and ``_hasher`` built by argon2_hasher()).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mailctl.domain import passwords

T = TypeVar("T")

# The password behind the dummy hash; nobody logs in with it, as no admin row holds it.
_DUMMY_SOURCE = "mailctl-no-such-admin"


class PasswordPool:
    """Runs password hashes and verifications, at most ``size`` at any moment."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a password pool needs at least one slot")
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` once a slot is free, on the calling thread."""
        with self._slots:
            return work()

    def hash(self, plain: str, scheme: str = passwords.DEFAULT_SCHEME) -> str:
        return self.run(lambda: passwords.hash_password(plain, scheme))

    def verify(self, plain: str, stored: str) -> bool:
        return self.run(lambda: passwords.verify_password(plain, stored))

    def hash_many(self, plains: Sequence[str], scheme: str = passwords.DEFAULT_SCHEME) -> list[str]:
        """Hash several passwords, as many at once as the pool has slots; in order.

        The hashing libraries release the GIL, so each slot keeps a core busy. The slots
        are the pool's own: a batch shares them with logins and single creates.
        """
        if len(plains) <= 1:
            return [self.hash(plain, scheme) for plain in plains]
        with ThreadPoolExecutor(
            max_workers=min(self.size, len(plains)), thread_name_prefix="mailctl-hash"
        ) as executor:
            return list(executor.map(lambda plain: self.hash(plain, scheme), plains))

    def dummy_hash(self) -> str:
        """A default-scheme hash to verify when a username is unknown, made once per pool.

        Checking a password against it costs what checking a real admin's does, so a
        wrong username cannot be told from a wrong password by the time it takes.
        """
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self.hash(_DUMMY_SOURCE)
            return self._dummy
