"""Login throttling over HTTP: per address, counted before the hash, with Retry-After."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.liveserver import live_api
from tests.securitylog import Figure

from mailctl.config import Settings
from mailctl.services import auth
from mailctl.services.context import Context


@pytest.fixture
def proxied(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A live API that takes the client address from X-Forwarded-For, as behind a proxy."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_username=ADMIN,
        trust_forwarded_for=True,
    )
    context = Context.from_settings(settings)
    auth.initialize(context, ADMIN, ADMIN_PASSWORD)
    with live_api(context) as url:
        yield url
    context.close()


def _login(url: str, address: str, password: str, username: str = ADMIN) -> httpx.Response:
    return httpx.post(
        f"{url}/auth",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=60,
    )


@pytest.mark.security(
    2, "Failed logins from elsewhere cannot lock the admin out of their own address"
)
def test_attacker_elsewhere_cannot_lock_the_admin_out(proxied: str, figure: Figure) -> None:
    """Guesses from other addresses get 429, the admin's own address still logs in."""
    for attacker in ("192.0.2.1", "192.0.2.2", "2001:db8::1"):
        statuses = [_login(proxied, attacker, f"guess-{n}").status_code for n in range(12)]
        assert statuses == [401] * 10 + [429] * 2
    assert _login(proxied, "192.0.2.1", ADMIN_PASSWORD).status_code == 429
    # Another address of the same IPv6 /64 counts as the same guesser.
    assert _login(proxied, "2001:db8::2", "guess").status_code == 429
    answer = _login(proxied, "198.51.100.7", ADMIN_PASSWORD)
    assert answer.status_code == 200, answer.text
    figure("attacking addresses", 3)
    figure("guesses each", 12)
    figure("admin login from own address", answer.status_code)
    assert answer.json()["result"] is True


@pytest.mark.security(2, "A throttled login is told when to retry (Retry-After)")
def test_429_carries_retry_after(proxied: str, figure: Figure) -> None:
    """A throttled login says in Retry-After how many seconds to wait."""
    for n in range(10):
        assert _login(proxied, "192.0.2.9", f"guess-{n}").status_code == 401
    refused = _login(proxied, "192.0.2.9", ADMIN_PASSWORD)
    assert refused.status_code == 429
    assert refused.json() == {
        "result": False,
        "msg": "Too many failed logins from this address; wait before trying again.",
    }
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    figure("Retry-After seconds", int(refused.headers["Retry-After"]))


def test_one_address_guessing_many_usernames_is_limited(proxied: str) -> None:
    """An address is refused after 30 failures, whichever usernames it tried."""
    statuses = [
        _login(proxied, "192.0.2.20", "guess", username=f"user{n}").status_code for n in range(31)
    ]
    assert statuses == [401] * 30 + [429]
    assert _login(proxied, "192.0.2.20", ADMIN_PASSWORD).status_code == 429
    assert _login(proxied, "192.0.2.21", ADMIN_PASSWORD).status_code == 200


@pytest.mark.security(
    3, "Concurrent wrong logins cannot race the throttle: the count comes before the hash"
)
def test_concurrent_guesses_are_counted_before_the_hash(proxied: str, figure: Figure) -> None:
    """60 wrong logins at once from one address: exactly 10 get a password check (401)."""
    barrier = threading.Barrier(60)
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(n: int) -> None:
        barrier.wait()
        status = _login(proxied, "192.0.2.30", f"guess-{n}").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 10 + [429] * 50
    figure("concurrent logins", 60)
    figure("password checks", statuses.count(401))
