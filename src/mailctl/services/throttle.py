"""Counting failed logins, so guessing an admin password gets slow and then refused."""

from __future__ import annotations

import threading
import time
from collections import deque

from mailctl.errors import ThrottledError

MAX_TRACKED_KEYS = 10_000


class LoginThrottle:
    """Counts failed logins per client address and per username in a sliding window."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        entries = self._failures.setdefault(key, deque())
        while entries and entries[0] <= now - self.window:
            entries.popleft()
        return entries

    def check(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                if len(self._recent(key, now)) >= self.max_failures:
                    raise ThrottledError(
                        "Too many failed logins; wait a few minutes before trying again."
                    )

    def fail(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._failures) > MAX_TRACKED_KEYS:
                # Many distinct names guessed at: forget the ones whose window has passed,
                # so the table cannot grow without bound.
                for stale in [k for k in self._failures if not self._recent(k, now)]:
                    del self._failures[stale]

    def succeed(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
