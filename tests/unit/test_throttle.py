"""Login throttling in the database: limits, back-off, and one count for every process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD

from mailctl.config import Settings
from mailctl.errors import AuthError, ThrottledError, UnavailableError
from mailctl.services import auth, throttle
from mailctl.services.context import Context
from mailctl.services.throttle import client_network

ATTACKER = "192.0.2.1"


def _fail(ctx: Context, address: str = ATTACKER, username: str = ADMIN) -> None:
    with pytest.raises(AuthError):
        auth.login(ctx, username, "wrong password", address)


def _refused(ctx: Context, address: str = ATTACKER, password: str = "wrong") -> int:  # noqa: S107
    with pytest.raises(ThrottledError) as info:
        auth.login(ctx, ADMIN, password, address)
    return info.value.retry_after


@pytest.fixture
def fast(settings: Settings) -> Iterator[Context]:
    """A context whose first block lasts one second."""
    context = Context.from_settings(
        settings.model_copy(update={"login_max_failures": 3, "login_backoff_seconds": 1})
    )
    auth.initialize(context, ADMIN, ADMIN_PASSWORD)
    yield context
    context.close()


class Clock:
    """The throttle's wall clock, moved by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(throttle, "time", fake)
    return fake


def test_blocks_double_with_each_further_failure(fast: Context, clock: Clock) -> None:
    """After the limit, each failure once the block ends blocks twice as long."""
    for _ in range(2):
        _fail(fast)
    _fail(fast)
    assert _refused(fast) == 1
    assert _refused(fast, password=ADMIN_PASSWORD) == 1
    clock.now += 1.0
    _fail(fast)
    assert _refused(fast) == 2
    clock.now += 1.5
    assert _refused(fast, password=ADMIN_PASSWORD) == 1
    clock.now += 0.5
    _fail(fast)
    assert _refused(fast) == 4


def test_a_right_password_clears_the_count(fast: Context) -> None:
    """A successful login forgets its address's failures for that username."""
    for _ in range(2):
        _fail(fast)
    assert auth.login(fast, ADMIN, ADMIN_PASSWORD, ATTACKER)
    for _ in range(2):
        _fail(fast)
    assert auth.login(fast, ADMIN, ADMIN_PASSWORD, ATTACKER)


def test_every_process_counts_against_one_limit(ctx: Context, settings: Settings) -> None:
    """Failures seen by one API process count in another on the same database."""
    other = Context.from_settings(settings)
    try:
        for n in range(10):
            _fail(ctx if n % 2 else other)
        _refused(other, password=ADMIN_PASSWORD)
        _refused(ctx, password=ADMIN_PASSWORD)
        assert auth.login(other, ADMIN, ADMIN_PASSWORD, "198.51.100.7")
    finally:
        other.close()


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_client_network(address: str | None, counted: str) -> None:
    """An IPv6 client counts by its /64; an IPv4 (or IPv4-mapped) one by its address."""
    assert client_network(address) == counted


def test_a_purge_on_a_busy_database_does_not_fail_the_login(
    fast: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge of expired counters that meets a deadlock (as MariaDB answers a DELETE
    racing the counters' row locks) leaves each attempt counted and answered: a wrong
    password is still a 401, and the limit still holds."""
    from mailctl.storage.throttle_rows import LoginThrottles

    def deadlocked(self: LoginThrottles, now: float) -> None:
        raise UnavailableError("The database is unavailable; try again shortly.")

    monkeypatch.setattr(LoginThrottles, "purge_expired", deadlocked)
    fast.throttle.purge_chance = 1.0
    for _ in range(3):
        _fail(fast)
    assert _refused(fast) >= 1
