"""Password hashing a few at a time, so memory stays bounded whatever the concurrency.

An Argon2id hash takes 64 MiB while it is computed; two hundred logins at once would
otherwise take the server past a gigabyte. Callers wait for a slot instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from mailctl.domain import passwords

T = TypeVar("T")


class PasswordPool:
    """Runs password hashes and verifications, at most ``size`` at any moment."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a password pool needs at least one slot")
        self.size = size
        self._slots = threading.BoundedSemaphore(size)

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` once a slot is free, on the calling thread."""
        with self._slots:
            return work()

    def hash(self, plain: str, scheme: str = passwords.DEFAULT_SCHEME) -> str:
        return self.run(lambda: passwords.hash_password(plain, scheme))

    def verify(self, plain: str, stored: str) -> bool:
        return self.run(lambda: passwords.verify_password(plain, stored))
