"""Deletes happen exactly once: of racing deletes one answers 200, the others 404."""

from __future__ import annotations

import threading

import httpx
from tests.conftest import LiveServer

RACERS = 8


def _race(server: LiveServer, token: str, path: str, field: str, value: str) -> list[int]:
    """Send RACERS identical DELETE requests at the same moment; return their statuses."""
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Auth-token": token}) as c:
            barrier.wait()
            response = c.request("DELETE", path, files={field: (None, value)})
            assert response.headers["content-type"].startswith("application/json")
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=one) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def _domain_with_mailboxes(api: httpx.Client) -> int:
    created = api.post(
        "/domains",
        data={"domain": "example.com", "username": "alice@example.com", "password": "pw-alice-1"},
    )
    assert created.status_code == 200, created.text
    domain_id = int(created.json()["domain"]["id"])
    added = api.post(
        f"/user/{domain_id}", data={"email": "bob@example.com", "password": "pw-bob-123"}
    )
    assert added.status_code == 200, added.text
    return domain_id


def test_racing_domain_deletes(api: httpx.Client, server: LiveServer, token: str) -> None:
    """Eight simultaneous DELETE /domain: one 200, seven 404, one trash entry."""
    _domain_with_mailboxes(api)
    statuses = _race(server, token, "/domain", "domain", "example.com")
    assert statuses == [200] + [404] * (RACERS - 1)
    trash = api.get("/trash").json()["trash"]
    assert [(t["kind"], t["target"], t["mailboxes"]) for t in trash] == [
        ("domain", "example.com", 2)
    ]
    assert api.get("/domains").json()["domains"] == []


def test_racing_mailbox_deletes(api: httpx.Client, server: LiveServer, token: str) -> None:
    """Eight simultaneous DELETE /users of one mailbox: one 200, seven 404, one trash entry."""
    domain_id = _domain_with_mailboxes(api)
    statuses = _race(server, token, "/users", "email", "bob@example.com")
    assert statuses == [200] + [404] * (RACERS - 1)
    trash = api.get("/trash").json()["trash"]
    assert [(t["kind"], t["target"]) for t in trash] == [("mailbox", "bob@example.com")]
    users = api.get(f"/users/{domain_id}").json()["users"]
    assert [u["email"] for u in users] == ["alice@example.com"]
