"""Failed logins are counted per key in a sliding window."""

from __future__ import annotations

import pytest

from mailctl.errors import ThrottledError
from mailctl.services import throttle as throttle_module
from mailctl.services.throttle import LoginThrottle


def test_refuses_after_max_failures() -> None:
    """The attempt after max_failures failures in the window is refused with 429."""
    throttle = LoginThrottle(max_failures=3, window_seconds=60)
    for _ in range(3):
        throttle.check(["user:a"])
        throttle.fail(["user:a"])
    with pytest.raises(ThrottledError) as info:
        throttle.check(["user:a"])
    assert info.value.status_code == 429
    throttle.check(["user:b"])


def test_success_resets_the_count() -> None:
    """A successful login clears the failures of its keys."""
    throttle = LoginThrottle(max_failures=2, window_seconds=60)
    throttle.fail(["user:a"])
    throttle.succeed(["user:a"])
    throttle.fail(["user:a"])
    throttle.check(["user:a"])


def test_failures_expire_after_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failures older than the window no longer count."""
    now = [1000.0]
    monkeypatch.setattr(throttle_module.time, "monotonic", lambda: now[0])
    throttle = LoginThrottle(max_failures=1, window_seconds=10)
    throttle.fail(["addr:1"])
    with pytest.raises(ThrottledError):
        throttle.check(["addr:1"])
    now[0] += 11
    throttle.check(["addr:1"])


def test_table_of_keys_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spraying distinct usernames does not grow memory without bound."""
    now = [0.0]
    monkeypatch.setattr(throttle_module.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(throttle_module, "MAX_TRACKED_KEYS", 100)
    throttle = LoginThrottle(max_failures=5, window_seconds=10)
    for n in range(100):
        throttle.fail([f"user:{n}"])
    now[0] += 20
    throttle.fail(["user:new"])
    assert len(throttle._failures) == 1
