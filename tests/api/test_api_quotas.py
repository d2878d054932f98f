"""Quotas and domain limits through HTTP: set, list with usage, enforced on create.

Per backend: the listing joins the usage Dovecot writes, and the limits are counted and
summed in SQL that each dialect runs.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import insert
from tests.conftest import LiveServer

from mailctl.services import admins, domains
from mailctl.services.context import Actor
from mailctl.storage.tables import MailboxUsage

HOST = Actor("test")
MiB = 1024 * 1024


@pytest.fixture
def domain_id(api: httpx.Client) -> int:
    response = api.post("/domains", data={"domain": "example.com"})
    assert response.status_code == 200
    return int(response.json()["domain"]["id"])


def _user(api: httpx.Client, domain_id: int, email: str, **more: str) -> httpx.Response:
    return api.post(f"/user/{domain_id}", data={"email": email, "password": "pw-123456", **more})


def test_a_quota_is_set_by_address_or_id_with_a_suffix(api: httpx.Client, domain_id: int) -> None:
    user = _user(api, domain_id, "a@example.com").json()["user"]
    by_email = api.post(
        "/user-quota", data={"email": "a@example.com", "quota": "10M", "messages": "500"}
    )
    assert by_email.status_code == 200, by_email.text
    assert by_email.json()["user"] == {
        **user,
        "quota_bytes": 10 * MiB,
        "quota_messages": 500,
        "used_bytes": 0,
        "used_messages": 0,
    }
    assert by_email.json()["msg"] == "The quota of a@example.com is 10 MiB."
    by_id = api.post("/user-quota", data={"id": str(user["id"]), "quota": "2048"})
    assert by_id.status_code == 200
    # The message count not given stays as it was.
    assert (by_id.json()["user"]["quota_bytes"], by_id.json()["user"]["quota_messages"]) == (
        2048,
        500,
    )
    unlimited = api.post("/user-quota", data={"email": "a@example.com", "quota": "unlimited"})
    assert unlimited.json()["user"]["quota_bytes"] is None


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"email": "a@example.com", "quota": "ten"}, 400, "must be a number of bytes"),
        ({"email": "a@example.com", "quota": "-5"}, 400, "must be a number of bytes"),
        ({"email": "a@example.com", "quota": "9999999999T"}, 400, "larger than"),
        ({"email": "a@example.com", "quota": "1G", "messages": "x"}, 400, "whole number"),
        ({"quota": "1G"}, 400, "by its id or by its email"),
        ({"id": "1", "email": "a@example.com", "quota": "1G"}, 400, "by its id or by its email"),
        ({"email": "nobody@example.com", "quota": "1G"}, 404, "does not exist"),
        ({"id": "999", "quota": "1G"}, 404, "There is no user with id 999."),
        ({"email": "a@example.com"}, 400, "quota"),
    ],
)
def test_bad_quota_requests_are_clear_4xx(
    api: httpx.Client, domain_id: int, fields: dict[str, str], status: int, says: str
) -> None:
    _user(api, domain_id, "a@example.com")
    answer = api.post("/user-quota", data=fields)
    assert answer.status_code == status, answer.text
    assert answer.json()["result"] is False
    assert says in answer.json()["msg"]


def test_the_listing_shows_each_mailboxs_quota_and_usage(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    a = _user(api, domain_id, "a@example.com", quota="1G").json()["user"]
    b = _user(api, domain_id, "b@example.com").json()["user"]
    # What Dovecot's quota_clone writes after a delivery.
    with server.ctx.database.engine.begin() as conn:
        conn.execute(
            insert(MailboxUsage), [{"username": "a@example.com", "bytes": 4321, "messages": 3}]
        )
    listed = api.get(f"/users/{domain_id}").json()["users"]
    assert listed == [
        {
            **a,
            "quota_bytes": 1024**3,
            "quota_messages": None,
            "used_bytes": 4321,
            "used_messages": 3,
        },
        {**b, "quota_bytes": None, "quota_messages": None, "used_bytes": 0, "used_messages": 0},
    ]
    # A deleted mailbox takes its usage along: a new one of that name starts empty.
    api.request("DELETE", "/users", data={"email": "a@example.com"})
    again = _user(api, domain_id, "a@example.com").json()["user"]
    assert api.get(f"/users/{domain_id}").json()["users"][1] == {
        **again,
        "quota_bytes": None,
        "quota_messages": None,
        "used_bytes": 0,
        "used_messages": 0,
    }


def test_domain_limits_are_enforced_when_creating(api: httpx.Client, domain_id: int) -> None:
    _user(api, domain_id, "a@example.com", quota="40M")
    api.post(f"/alias/{domain_id}", data={"source": "x", "destination": "a@example.com"})
    limits = api.post(
        "/domain-limits",
        data={
            "domain": "example.com",
            "max_mailboxes": "2",
            "max_aliases": "1",
            "max_quota": "100M",
        },
    )
    assert limits.status_code == 200, limits.text
    assert limits.json()["limits"] == {
        "domain_id": domain_id,
        "domain": "example.com",
        "max_mailboxes": 2,
        "max_aliases": 1,
        "max_quota_bytes": 100 * MiB,
        "mailboxes": 1,
        "aliases": 1,
        "quota_bytes": 40 * MiB,
    }
    assert (
        api.get("/domain-limits", params={"domain": "example.com"}).json()["limits"]
        == (limits.json()["limits"])
    )
    # A total quota needs every new mailbox to have one, and room for it.
    no_quota = _user(api, domain_id, "b@example.com")
    assert no_quota.status_code == 409
    assert "give each new mailbox a quota" in no_quota.json()["msg"]
    too_big = _user(api, domain_id, "b@example.com", quota="70M")
    assert too_big.status_code == 409
    assert "limits its mailboxes' quotas to 100 MiB in all" in too_big.json()["msg"]
    assert _user(api, domain_id, "b@example.com", quota="59M").status_code == 200
    full = _user(api, domain_id, "c@example.com", quota="1M")
    assert full.status_code == 409
    assert full.json()["msg"] == (
        "The domain example.com may have 2 mailboxes and has 2: no room for 1 more."
    )
    batch = api.post(
        f"/user/{domain_id}/batch",
        json={"users": [{"email": "d@example.com", "password": "pw-123456", "quota": "1M"}]},
    )
    assert batch.status_code == 409
    alias = api.post(f"/alias/{domain_id}", data={"source": "y", "destination": "a@example.com"})
    assert alias.status_code == 409
    assert "may have 1 aliases and has 1" in alias.json()["msg"]
    raised = api.post("/user-quota", data={"email": "a@example.com", "quota": "42M"})
    assert raised.status_code == 409
    assert api.post("/user-quota", data={"email": "a@example.com", "quota": "0"}).status_code == 409
    assert (
        api.post("/user-quota", data={"email": "a@example.com", "quota": "40M"}).status_code == 200
    )
    assert [u["email"] for u in api.get(f"/users/{domain_id}").json()["users"]] == [
        "a@example.com",
        "b@example.com",
    ]
    # Unlimited again: 0, and the next create passes.
    lifted = api.post("/domain-limits", data={"domain": "example.com", "max_mailboxes": "0"})
    assert lifted.json()["limits"]["max_mailboxes"] is None
    assert _user(api, domain_id, "c@example.com", quota="1M").status_code == 200


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"domain": "example.com"}, 400, "at least one"),
        ({"domain": "example.com", "max_mailboxes": "many"}, 400, "whole number"),
        ({"domain": "example.com", "max_quota": "1X"}, 400, "total quota"),
        ({"domain": "nowhere.example", "max_aliases": "3"}, 404, "does not exist"),
        ({"domain": "example.com", "max_mailboxes": "1"}, 409, "has 2 mailboxes already"),
        ({"domain": "example.com", "max_quota": "1G"}, 409, "without a quota"),
    ],
)
def test_limits_that_cannot_hold_are_refused(
    api: httpx.Client, domain_id: int, fields: dict[str, str], status: int, says: str
) -> None:
    _user(api, domain_id, "a@example.com")
    _user(api, domain_id, "b@example.com")
    answer = api.post("/domain-limits", data=fields)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["msg"]


def _login(anon: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = anon.post("/auth", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


def test_a_domain_admin_sets_quotas_of_its_domain_only_and_no_limits(
    server: LiveServer, anon: httpx.Client
) -> None:
    domains.create_domain(server.ctx, HOST, "mine.example", "a@mine.example", "password-a-1")
    domains.create_domain(server.ctx, HOST, "other.example", "b@other.example", "password-b-1")
    admins.create_admin(
        server.ctx, HOST, "owner", "owner-password-1", "domain_admin", "mine.example"
    )
    owner = _login(anon, "owner", "owner-password-1")
    mine = anon.post("/user-quota", headers=owner, data={"email": "a@mine.example", "quota": "1G"})
    assert mine.status_code == 200
    other = anon.post(
        "/user-quota", headers=owner, data={"email": "b@other.example", "quota": "1G"}
    )
    assert other.status_code == 404
    assert other.json()["msg"] == "The mailbox b@other.example does not exist."
    by_id = anon.post("/user-quota", headers=owner, data={"id": "2", "quota": "1G"})
    assert by_id.status_code == 404
    assert by_id.json()["msg"] == "There is no user with id 2."
    seen = anon.get("/domain-limits", headers=owner, params={"domain": "other.example"})
    assert seen.status_code == 404
    assert (
        anon.get("/domain-limits", headers=owner, params={"domain": "mine.example"}).status_code
        == 200
    )
    for domain in ("mine.example", "other.example"):
        refused = anon.post(
            "/domain-limits", headers=owner, data={"domain": domain, "max_mailboxes": "100"}
        )
        assert refused.status_code == 403
        assert refused.json()["msg"] == "Only a superadmin may change a domain's limits."


def test_quotas_and_limits_come_back_from_the_trash(api: httpx.Client, domain_id: int) -> None:
    """A restored mailbox keeps its quota; a restored domain its limits and quotas; a
    mailbox restored into a domain that is full meanwhile is refused (409)."""
    _user(api, domain_id, "a@example.com", quota="5M")
    api.post("/user-quota", data={"email": "a@example.com", "quota": "5M", "messages": "9"})
    trashed = api.request("DELETE", "/users", data={"email": "a@example.com"}).json()
    assert api.post("/trash/restore", data={"id": trashed["trash_id"]}).status_code == 200
    (user,) = api.get(f"/users/{domain_id}").json()["users"]
    assert (user["quota_bytes"], user["quota_messages"]) == (5 * MiB, 9)

    trashed = api.request("DELETE", "/users", data={"email": "a@example.com"}).json()
    api.post("/domain-limits", data={"domain": "example.com", "max_mailboxes": "1"})
    _user(api, domain_id, "b@example.com")
    refused = api.post("/trash/restore", data={"id": trashed["trash_id"]})
    assert refused.status_code == 409
    assert "may have 1 mailboxes and has 1" in refused.json()["msg"]

    gone = api.request("DELETE", "/domain", data={"domain": "example.com"}).json()
    assert api.post("/trash/restore", data={"id": gone["trash_id"]}).status_code == 200
    limits = api.get("/domain-limits", params={"domain": "example.com"}).json()["limits"]
    assert (limits["max_mailboxes"], limits["mailboxes"]) == (1, 1)


RACERS = 6


def test_racing_creates_never_pass_a_limit(
    live_api_client: httpx.Client, server: LiveServer
) -> None:
    """Mailboxes made at the same moment in a domain with room for two: two are made, the
    others answer 409 (the domain's row, or SQLite's write lock, lines them up)."""
    api = live_api_client
    domain_id = int(api.post("/domains", data={"domain": "example.com"}).json()["domain"]["id"])
    api.post("/domain-limits", data={"domain": "example.com", "max_mailboxes": "2"})
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []
    lock = threading.Lock()
    headers = dict(api.headers)

    def one(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:
            barrier.wait()
            answer = client.post(
                f"/user/{domain_id}",
                data={"email": f"racer{number}@example.com", "password": "pw-123456"},
            )
            with lock:
                statuses.append(answer.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200] + [409] * (RACERS - 2)
    assert len(api.get(f"/users/{domain_id}").json()["users"]) == 2
