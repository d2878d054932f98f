"""Domain admins and API keys see and change only their own domains, through HTTP."""

from __future__ import annotations

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.services import admins, domains
from mailctl.services.context import Actor

# Per backend: a narrowed listing is SQL of its own (sub-selects of the grants and of a
# key's domains), which each dialect runs.
HOST = Actor("test")


def _login(anon: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = anon.post("/auth", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


@pytest.fixture
def owner(server: LiveServer, anon: httpx.Client) -> dict[str, str]:
    """A domain admin granted mine.example; other.example belongs to someone else."""
    domains.create_domain(server.ctx, HOST, "mine.example", "a@mine.example", "password-a-1")
    domains.create_domain(server.ctx, HOST, "other.example", "b@other.example", "password-b-1")
    admins.create_admin(
        server.ctx, HOST, "owner", "owner-password-1", "domain_admin", "mine.example"
    )
    return _login(anon, "owner", "owner-password-1")


def test_a_domain_admin_lists_and_manages_only_its_domain(
    anon: httpx.Client, owner: dict[str, str]
) -> None:
    listed = anon.get("/domains", headers=owner).json()["domains"]
    assert [d["name"] for d in listed] == ["mine.example"]
    assert anon.get("/users/1", headers=owner).status_code == 200
    other = anon.get("/users/2", headers=owner)
    assert other.status_code == 404
    assert other.json()["msg"] == "There is no domain with id 2."
    assert anon.get("/dkim/other.example/keys", headers=owner).status_code == 404
    removed = anon.request("DELETE", "/users", headers=owner, data={"email": "b@other.example"})
    assert removed.status_code == 404
    assert removed.json()["msg"] == "The mailbox b@other.example does not exist."
    made = anon.post("/domains", headers=owner, data={"domain": "new.example"})
    assert made.status_code == 403
    assert anon.get("/admins", headers=owner).status_code == 403


def test_a_read_only_key_bound_to_a_domain_reads_it_and_changes_nothing(
    anon: httpx.Client, owner: dict[str, str]
) -> None:
    made = anon.post(
        "/auth/keys",
        headers=owner,
        data={"name": "monitor", "access": "read", "domains": "mine.example"},
    ).json()
    assert made["api_key"]["domains"] == ["mine.example"]
    key = {"Authorization": f"Bearer {made['key']}"}
    assert [d["name"] for d in anon.get("/domains", headers=key).json()["domains"]] == [
        "mine.example"
    ]
    denied = anon.post("/user/1", headers=key, data={"username": "c", "password": "pass-c-12"})
    assert denied.status_code == 403
    assert "read-only" in denied.json()["msg"]
    revoked = anon.request(
        "DELETE", "/auth/keys", headers=owner, data={"id": made["api_key"]["id"]}
    )
    assert revoked.status_code == 200
    assert revoked.json()["api_key"]["domains"] == ["mine.example"]
    assert anon.get("/domains", headers=key).status_code == 401


# Once, on SQLite: a count of the admins, decided before anything differs by backend.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_last_superadmin_cannot_be_disabled(api: httpx.Client) -> None:
    me = api.get("/auth/me").json()["admin"]
    answer = api.post("/admin/disable", data={"username": me["username"]})
    assert answer.status_code == 409
    assert "last enabled superadmin" in answer.json()["msg"]


def test_a_key_bound_to_a_domain_reaches_only_keys_bound_within_it(
    api: httpx.Client, anon: httpx.Client, owner: dict[str, str]
) -> None:
    """A superadmin's key bound to mine.example lists and revokes its own kind only: the
    superadmin's key of other.example and its all-domain key are as unknown to it (404)."""
    made = {
        name: api.post("/auth/keys", data={"name": name, "domains": domains}).json()
        for name, domains in (("mine", "mine.example"), ("other", "other.example"), ("all", ""))
    }
    key = {"Auth-token": made["mine"]["key"]}
    listed = anon.get("/auth/keys", headers=key).json()["keys"]
    assert [k["name"] for k in listed] == ["mine"]
    for name in ("other", "all"):
        refused = anon.request(
            "DELETE", "/auth/keys", headers=key, data={"id": made[name]["api_key"]["id"]}
        )
        assert refused.status_code == 404
        assert (
            refused.json()["msg"]
            == f"There is no active API key with id {made[name]['api_key']['id']}."
        )
    assert [k["name"] for k in api.get("/auth/keys").json()["keys"]] == ["mine", "other", "all"]
    itself = anon.request(
        "DELETE", "/auth/keys", headers=key, data={"id": made["mine"]["api_key"]["id"]}
    )
    assert itself.status_code == 200
    assert anon.get("/domains", headers=key).status_code == 401
