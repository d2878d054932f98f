"""Many mailboxes at once through HTTP: POST /user/:domain_id/batch, all or none."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.domain.passwords import hash_password, verify_password


@pytest.fixture
def domain_id(api: httpx.Client) -> int:
    response = api.post("/domains", data={"domain": "example.com"})
    assert response.status_code == 200
    return int(response.json()["domain"]["id"])


def listed(api: httpx.Client, domain_id: int) -> list[str]:
    return [user["email"] for user in api.get(f"/users/{domain_id}").json()["users"]]


def test_batch_as_a_json_body(api: httpx.Client, domain_id: int, server: LiveServer) -> None:
    """A JSON list creates every mailbox, its maildir, and answers them in order."""
    migrated = hash_password("from-the-old-server", "SHA512-CRYPT")
    users = [
        {"email": "Ann@Example.com", "password": "pw-ann-123"},
        {"email": "bob", "password": "pw-bob-123"},
        {"email": "cat@example.com", "password_hash": migrated},
    ]
    response = api.post(f"/user/{domain_id}/batch", json={"users": users})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert body["msg"] == "3 mailboxes were created."
    emails = ["ann@example.com", "bob@example.com", "cat@example.com"]
    assert [u["email"] for u in body["users"]] == emails
    assert all(u["domain_id"] == domain_id for u in body["users"])
    assert len({u["id"] for u in body["users"]}) == 3
    assert listed(api, domain_id) == emails
    for local in ("ann", "bob", "cat"):
        assert (server.ctx.settings.mail_root_path / "example.com" / local / "new").is_dir()
    with server.ctx.uow() as uow:
        stored = {e: uow.users.by_email(e).password for e in emails}  # type: ignore[union-attr]
    assert verify_password("pw-ann-123", stored["ann@example.com"])
    assert verify_password("pw-bob-123", stored["bob@example.com"])
    assert stored["cat@example.com"] == migrated


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded", "query"])
def test_batch_as_a_form_field_of_json_text(
    api: httpx.Client, domain_id: int, encoding: str
) -> None:
    """Like every field, ``users`` may come as a form field or in the query string."""
    text = json.dumps([{"email": "x@example.com", "password": "pw-x-12345"}])
    if encoding == "multipart":
        response = api.post(f"/user/{domain_id}/batch", files={"users": (None, text)})
    elif encoding == "urlencoded":
        response = api.post(f"/user/{domain_id}/batch", data={"users": text})
    else:
        response = api.post(f"/user/{domain_id}/batch", params={"users": text})
    assert response.status_code == 200, response.text
    assert response.json()["msg"] == "1 mailbox was created."
    assert listed(api, domain_id) == ["x@example.com"]


@pytest.mark.parametrize(
    ("users", "message"),
    [
        (
            [{"email": "a@example.com", "password": "pw-123456"}, {"email": "b@other.org"}],
            "Entry 2 (b@other.org): A password or a password hash is required.",
        ),
        (
            [
                {"email": "a@example.com", "password": "pw-123456"},
                {"email": "b@example.com", "password": "short"},
            ],
            "Entry 2 (b@example.com): The password is too short",
        ),
        (
            [
                {"email": "a@example.com", "password": "pw-123456"},
                {"email": "b@other.org", "password": "pw-123456"},
            ],
            "Entry 2 (b@other.org): The address b@other.org does not belong to the domain",
        ),
        (
            [
                {"email": "a@example.com", "password": "pw-123456"},
                {"email": "A@example.com", "password": "pw-654321"},
            ],
            "Entry 2 (a@example.com): The address is in the batch already, as entry 1.",
        ),
        (
            [{"email": "a@example.com", "password_hash": "plain-text"}],
            "Entry 1 (a@example.com): The pre-hashed password must start with",
        ),
        (
            [{"email": "a@example.com", "password": "pw-123456", "password_hash": "x"}],
            "Entry 1 (a@example.com): Give either a password or a password hash",
        ),
        ([{"email": "a@example.com", "pasword": "x"}], "Entry 1 (a@example.com): Unknown field"),
        ([{"email": "a@example.com", "password": 12345678}], "'password' must be text"),
        ([{"email": "bad..dots@example.com", "password": "pw-123456"}], "Entry 1 ("),
        (["a@example.com"], "Entry 1 of 'users' must be a JSON object."),
        ([], "The batch is empty"),
        ({"email": "a@example.com"}, "must be a JSON list of objects"),
        ("not json at all", "The field 'users' is not valid JSON."),
    ],
)
def test_a_bad_entry_refuses_the_whole_batch(
    api: httpx.Client, domain_id: int, server: LiveServer, users: object, message: str
) -> None:
    """Any refused entry is a 400 naming it, and no mailbox (nor maildir) is created."""
    response = api.post(f"/user/{domain_id}/batch", json={"users": users})
    assert response.status_code == 400, response.text
    assert response.json()["result"] is False
    assert message in response.json()["msg"]
    assert listed(api, domain_id) == []
    assert not (server.ctx.settings.mail_root_path / "example.com" / "a").exists()


def test_existing_mailboxes_are_a_conflict(api: httpx.Client, domain_id: int) -> None:
    """A batch naming mailboxes that exist is a 409 naming them; nothing else is created."""
    api.post(f"/user/{domain_id}", data={"email": "old@example.com", "password": "pw-123456"})
    api.post(f"/user/{domain_id}", data={"email": "older@example.com", "password": "pw-123456"})
    users = [
        {"email": "new@example.com", "password": "pw-123456"},
        {"email": "old@example.com", "password": "pw-123456"},
        {"email": "older@example.com", "password": "pw-123456"},
    ]
    response = api.post(f"/user/{domain_id}/batch", json={"users": users})
    assert response.status_code == 409, response.text
    assert response.json() == {
        "result": False,
        "msg": "2 mailboxes of the batch exist already: old@example.com, older@example.com; "
        "no mailbox was created.",
    }
    assert listed(api, domain_id) == ["old@example.com", "older@example.com"]


def test_batch_over_the_limit_is_413(
    api: httpx.Client, domain_id: int, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch over ``max_batch_users`` is refused whole, saying the limit."""
    monkeypatch.setattr(server.ctx.settings, "max_batch_users", 3)
    users = [{"email": f"u{n}@example.com", "password": "pw-123456"} for n in range(4)]
    response = api.post(f"/user/{domain_id}/batch", json={"users": users})
    assert response.status_code == 413, response.text
    assert "at most 3" in response.json()["msg"]
    assert listed(api, domain_id) == []
    # The body limit grows with the setting, so a full batch of long hashes fits.
    assert api.post(f"/user/{domain_id}/batch", json={"users": users[:3]}).status_code == 200


def test_unknown_domain_and_missing_field(api: httpx.Client) -> None:
    """An unknown domain id is a 404; no ``users`` field is a 400."""
    users = [{"email": "a@example.com", "password": "pw-123456"}]
    response = api.post("/user/999/batch", json={"users": users})
    assert response.status_code == 404
    assert response.json() == {"result": False, "msg": "There is no domain with id 999."}
    missing = api.post("/user/999/batch", json={})
    assert missing.status_code == 400
    assert "'users'" in missing.json()["msg"]


def test_other_routes_still_refuse_lists(api: httpx.Client, domain_id: int) -> None:
    """A list where a route takes a plain value is still a 400."""
    response = api.post(f"/user/{domain_id}", json={"email": ["a@example.com"], "password": "x"})
    assert response.status_code == 400
    assert response.json()["msg"] == "The field 'email' must be a plain value."


def test_batch_needs_a_token(anon: httpx.Client) -> None:
    """Without a token nothing is created."""
    users = [{"email": "a@example.com", "password": "pw-123456"}]
    assert anon.post("/user/1/batch", json={"users": users}).status_code == 401


def test_the_readme_batch_example(
    api: httpx.Client, server: LiveServer, token: str, tmp_path: Path
) -> None:
    """The README's curl command creates its two mailboxes, as it says."""
    from tests.api.test_api_readme_examples import readme_command, run_curl

    created = api.post("/domains", data={"domain": "alsoanotherexample.com"})
    assert created.json()["domain"]["id"] == 1
    result = run_curl(readme_command("/batch"), server, token, tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["msg"] == "2 mailboxes were created."
    assert [u["email"] for u in body["users"]] == [
        "ann@alsoanotherexample.com",
        "bob@alsoanotherexample.com",
    ]
