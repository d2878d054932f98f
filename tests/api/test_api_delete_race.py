"""Deletes happen exactly once: of racing deletes one answers 200, the others 404."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from tests.conftest import LiveServer


@pytest.fixture
def api(live_api_client: httpx.Client) -> httpx.Client:
    """The set-up and checks go through the same real server as the racers."""
    return live_api_client


RACERS = 8


Figure = Callable[[str, object], None]


def _race(server: LiveServer, token: str, path: str, fields: dict[str, str]) -> list[int]:
    """Send RACERS identical DELETE requests at the same moment; return their statuses."""
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Auth-token": token}) as c:
            barrier.wait()
            files = {name: (None, value) for name, value in fields.items()}
            response = c.request("DELETE", path, files=files)
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


def _record(figure: Figure, statuses: list[int], trash_entries: int | None) -> None:
    figure("racers", RACERS)
    figure("200 answers", statuses.count(200))
    figure("404 answers", statuses.count(404))
    if trash_entries is not None:
        figure("trash entries", trash_entries)


@pytest.mark.security(
    finding=7,
    claim="Of eight simultaneous deletes of one domain, one answers 200 and seven 404, "
    "leaving exactly one trash entry.",
)
def test_racing_domain_deletes(
    api: httpx.Client, server: LiveServer, token: str, figure: Figure
) -> None:
    """Eight simultaneous DELETE /domain: one 200, seven 404, one trash entry."""
    _domain_with_mailboxes(api)
    statuses = _race(server, token, "/domain", {"domain": "example.com"})
    trash = api.get("/trash").json()["trash"]
    _record(figure, statuses, len(trash))
    assert statuses == [200] + [404] * (RACERS - 1)
    assert [(t["kind"], t["target"], t["mailboxes"]) for t in trash] == [
        ("domain", "example.com", 2)
    ]
    assert api.get("/domains").json()["domains"] == []


@pytest.mark.security(
    finding=7,
    claim="Of eight simultaneous deletes of one mailbox, one answers 200 and seven 404, "
    "leaving exactly one trash entry.",
)
def test_racing_mailbox_deletes(
    api: httpx.Client, server: LiveServer, token: str, figure: Figure
) -> None:
    """Eight simultaneous DELETE /users of one mailbox: one 200, seven 404, one trash entry."""
    domain_id = _domain_with_mailboxes(api)
    statuses = _race(server, token, "/users", {"email": "bob@example.com"})
    trash = api.get("/trash").json()["trash"]
    _record(figure, statuses, len(trash))
    assert statuses == [200] + [404] * (RACERS - 1)
    assert [(t["kind"], t["target"]) for t in trash] == [("mailbox", "bob@example.com")]
    users = api.get(f"/users/{domain_id}").json()["users"]
    assert [u["email"] for u in users] == ["alice@example.com"]


@pytest.mark.security(
    finding=7,
    claim="Of eight simultaneous deletes of one alias, one answers 200 and seven 404.",
)
def test_racing_alias_deletes(
    api: httpx.Client, server: LiveServer, token: str, figure: Figure
) -> None:
    """Eight simultaneous DELETE /aliases of one alias: one 200, seven 404, the alias gone."""
    domain_id = _domain_with_mailboxes(api)
    fields = {"source": "postmaster@example.com", "destination": "alice@example.com"}
    created = api.post(f"/alias/{domain_id}", data=fields)
    assert created.status_code == 200, created.text
    statuses = _race(server, token, "/aliases", {"source": "postmaster@example.com"})
    _record(figure, statuses, None)
    assert statuses == [200] + [404] * (RACERS - 1)
    assert api.get(f"/aliases/{domain_id}").json()["aliases"] == []


@pytest.mark.security(
    finding=7,
    claim="Of eight simultaneous deletes of one DKIM key, one answers 200 and seven 404.",
)
def test_racing_dkim_key_deletes(
    api: httpx.Client, server: LiveServer, token: str, figure: Figure
) -> None:
    """Eight simultaneous DELETE /dkim of one selector: one 200, seven 404, the key gone."""
    _domain_with_mailboxes(api)
    for selector in ("mail", "old"):
        fields = {"domain": "example.com", "selector": selector, "key_type": "ed25519"}
        if selector == "old":
            fields["rotate"] = "true"
        created = api.post("/dkim/add-new-domain", data=fields)
        assert created.status_code == 200, created.text
    statuses = _race(server, token, "/dkim", {"domain": "example.com", "selector": "mail"})
    _record(figure, statuses, None)
    assert statuses == [200] + [404] * (RACERS - 1)
    keys = api.get("/dkim/example.com/keys").json()["keys"]
    assert [k["selector"] for k in keys] == ["old"]
