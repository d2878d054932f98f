"""Aliases through HTTP: list, add, remove, and the refusals a user would run into."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def domain_id(api: httpx.Client) -> int:
    response = api.post(
        "/domains",
        data={"domain": "example.com", "username": "alice@example.com", "password": "pw-alice-1"},
    )
    assert response.status_code == 200, response.text
    ident: int = response.json()["domain"]["id"]
    return ident


def test_add_list_and_remove(api: httpx.Client, domain_id: int) -> None:
    """-F source/destination adds an alias; GET lists it; DELETE /aliases removes it."""
    assert api.get(f"/aliases/{domain_id}").json() == {"result": True, "aliases": []}
    created = api.post(
        f"/alias/{domain_id}",
        files={"source": (None, "Postmaster"), "destination": (None, "alice@example.com")},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["msg"] == "The alias postmaster@example.com to alice@example.com was created."
    alias = body["alias"]
    assert (alias["domain_id"], alias["source"], alias["destination"]) == (
        domain_id,
        "postmaster@example.com",
        "alice@example.com",
    )
    catch_all = api.post(
        f"/alias/{domain_id}",
        data={"source": "@EXAMPLE.com", "destination": "alice@example.com, ops@elsewhere.test"},
    )
    assert catch_all.status_code == 200, catch_all.text
    listed = api.get(f"/aliases/{domain_id}").json()["aliases"]
    assert [(a["source"], a["destination"]) for a in listed] == [
        ("postmaster@example.com", "alice@example.com"),
        ("@example.com", "alice@example.com,ops@elsewhere.test"),
    ]

    removed = api.request("DELETE", "/aliases", files={"source": (None, "@example.com")})
    assert removed.status_code == 200, removed.text
    assert removed.json()["msg"] == (
        "The alias @example.com to alice@example.com,ops@elsewhere.test was removed."
    )
    remaining = api.get(f"/aliases/{domain_id}").json()["aliases"]
    assert [a["source"] for a in remaining] == ["postmaster@example.com"]


def test_remove_one_destination_or_all(api: httpx.Client, domain_id: int) -> None:
    """With destination only that alias goes; without it every alias of the address."""
    for target in ("alice@example.com", "a@elsewhere.test", "b@elsewhere.test"):
        response = api.post(f"/alias/{domain_id}", data={"source": "info", "destination": target})
        assert response.status_code == 200, response.text
    one = api.request(
        "DELETE",
        "/aliases",
        data={"source": "info@example.com", "destination": "a@elsewhere.test"},
    )
    assert one.status_code == 200, one.text
    assert [a["destination"] for a in one.json()["aliases"]] == ["a@elsewhere.test"]
    rest = api.request("DELETE", "/aliases", data={"source": "info@example.com"})
    assert rest.json()["msg"] == "The 2 aliases of info@example.com were removed."
    assert api.get(f"/aliases/{domain_id}").json()["aliases"] == []


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"source": "x@other.example", "destination": "alice@example.com"}, 400, "The alias"),
        ({"source": "@other.example", "destination": "alice@example.com"}, 400, "The alias"),
        ({"source": "../etc", "destination": "alice@example.com"}, 400, ""),
        ({"source": "info", "destination": "not an address"}, 400, ""),
        ({"source": "info", "destination": "info@example.com"}, 400, "The alias info@"),
        ({"source": "info"}, 400, "The field 'destination' is required."),
        ({"destination": "alice@example.com"}, 400, "The field 'source' is required."),
        (
            {"source": "info", "destination": ",".join(f"u{n}@elsewhere.test" for n in range(20))},
            400,
            "The alias destination is too long",
        ),
    ],
)
def test_add_refusals(
    api: httpx.Client, domain_id: int, fields: dict[str, str], status: int, message: str
) -> None:
    """Addresses outside the domain, bad addresses, loops, missing fields: 400, nothing kept."""
    response = api.post(f"/alias/{domain_id}", data=fields)
    assert response.status_code == status, response.text
    assert response.json()["result"] is False
    assert response.json()["msg"].startswith(message)
    assert api.get(f"/aliases/{domain_id}").json()["aliases"] == []


def test_duplicate_unknown_and_missing(api: httpx.Client, domain_id: int) -> None:
    """The same alias twice is 409; an unknown domain id or alias is 404; ids must be numbers."""
    fields = {"source": "info", "destination": "alice@example.com"}
    assert api.post(f"/alias/{domain_id}", data=fields).status_code == 200
    again = api.post(f"/alias/{domain_id}", data=fields)
    assert again.status_code == 409
    assert again.json()["msg"] == (
        "The alias info@example.com to alice@example.com exists already."
    )
    assert api.post("/alias/999999", data=fields).status_code == 404
    assert api.get("/aliases/999999").status_code == 404
    assert api.get("/aliases/abc").status_code == 400
    gone = api.request("DELETE", "/aliases", data={"source": "nobody@example.com"})
    assert gone.status_code == 404
    assert gone.json()["msg"] == "There is no alias nobody@example.com."


def test_aliases_need_a_token(anon: httpx.Client) -> None:
    """Without a token every alias method answers 401."""
    assert anon.get("/aliases/1").status_code == 401
    assert anon.post("/alias/1", data={"source": "a", "destination": "b@c.d"}).status_code == 401
    assert anon.request("DELETE", "/aliases", data={"source": "a@c.d"}).status_code == 401


def test_aliases_of_a_deleted_mailbox_go_and_come_back_with_it(
    api: httpx.Client, domain_id: int
) -> None:
    """Aliases leading to a deleted mailbox alone are removed with it and restored with it."""
    for source, destination in (
        ("postmaster", "alice@example.com"),
        ("team", "alice@example.com,ops@elsewhere.test"),
    ):
        response = api.post(
            f"/alias/{domain_id}", data={"source": source, "destination": destination}
        )
        assert response.status_code == 200, response.text
    deleted = api.request("DELETE", "/users", data={"email": "alice@example.com"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["aliases_removed"] == ["postmaster@example.com"]
    assert deleted.json()["msg"].endswith("Its aliases went with it: postmaster@example.com.")
    left = api.get(f"/aliases/{domain_id}").json()["aliases"]
    assert [a["source"] for a in left] == ["team@example.com"]

    restored = api.post("/trash/restore", data={"id": deleted.json()["trash_id"]})
    assert restored.status_code == 200, restored.text
    assert restored.json()["aliases"] == 1
    back = api.get(f"/aliases/{domain_id}").json()["aliases"]
    assert sorted((a["source"], a["destination"]) for a in back) == [
        ("postmaster@example.com", "alice@example.com"),
        ("team@example.com", "alice@example.com,ops@elsewhere.test"),
    ]


def test_restore_skips_an_alias_made_again_meanwhile(api: httpx.Client, domain_id: int) -> None:
    """If the alias exists again when the mailbox comes back, it is not doubled."""
    api.post(f"/alias/{domain_id}", data={"source": "info", "destination": "alice@example.com"})
    deleted = api.request("DELETE", "/users", data={"email": "alice@example.com"})
    assert deleted.json()["aliases_removed"] == ["info@example.com"]
    api.post(f"/alias/{domain_id}", data={"source": "info", "destination": "alice@example.com"})
    restored = api.post("/trash/restore", data={"id": deleted.json()["trash_id"]})
    assert restored.status_code == 200, restored.text
    assert restored.json()["aliases"] == 0
    assert len(api.get(f"/aliases/{domain_id}").json()["aliases"]) == 1
