"""Password hashing runs a bounded number at a time, whatever the number of callers."""

from __future__ import annotations

import threading
import time

import pytest

from mailctl.config import Settings
from mailctl.domain.passwords import hash_password
from mailctl.services.hashing import PasswordPool


def test_never_more_than_size_at_once() -> None:
    """Forty callers at once: never more than two pieces of work run together."""
    pool = PasswordPool(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    threads = [threading.Thread(target=pool.run, args=(work,)) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2


def test_concurrent_verifications_answer_right() -> None:
    """Verifications queued behind each other still answer each caller correctly."""
    pool = PasswordPool(1)
    stored = hash_password("right password")
    results: dict[int, bool] = {}

    def check(n: int) -> None:
        results[n] = pool.verify("right password" if n % 2 else "wrong", stored)

    threads = [threading.Thread(target=check, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: bool(n % 2) for n in range(6)}


def test_default_size_is_one_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a setting the pool has one slot per core; a pool needs at least one."""
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert Settings().password_workers == 3
    with pytest.raises(ValueError, match="at least one slot"):
        PasswordPool(0)
