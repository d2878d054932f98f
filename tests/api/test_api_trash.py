"""The trash through HTTP: the id a delete answers restores it, keys and conflicts included."""

from __future__ import annotations

import httpx
from tests.conftest import LiveServer

from mailctl.domain.passwords import verify_password

MESSAGE = "cur/1700000000.M1P1.host,S=5:2,S"


def _domain_with_mailbox(api: httpx.Client, server: LiveServer) -> int:
    created = api.post(
        "/domains",
        data={"domain": "example.com", "username": "alice@example.com", "password": "pw-alice-1"},
    )
    assert created.status_code == 200, created.text
    message = server.ctx.settings.mail_root_path / "example.com" / "alice" / MESSAGE
    message.write_bytes(b"hello")
    domain_id: int = created.json()["domain"]["id"]
    return domain_id


def test_deleted_mailbox_is_listed_and_restored(api: httpx.Client, server: LiveServer) -> None:
    """DELETE /users answers the trash id; POST /trash/restore brings back hash and mail."""
    domain_id = _domain_with_mailbox(api, server)
    assert api.get("/trash").json() == {"result": True, "trash": []}
    deleted = api.request("DELETE", "/users", files={"email": (None, "alice@example.com")})
    assert deleted.status_code == 200, deleted.text
    trash_id = deleted.json()["trash_id"]
    assert deleted.json()["trash"].endswith("/" + trash_id)

    (item,) = api.get("/trash").json()["trash"]
    assert {k: item[k] for k in ("id", "kind", "target", "mailboxes", "has_data")} == {
        "id": trash_id,
        "kind": "mailbox",
        "target": "alice@example.com",
        "mailboxes": 1,
        "has_data": True,
    }
    assert item["deleted_at"].endswith("+00:00")

    restored = api.post("/trash/restore", files={"id": (None, trash_id)})
    assert restored.status_code == 200, restored.text
    assert restored.json() == {
        "result": True,
        "msg": "The mailbox alice@example.com was restored.",
        "kind": "mailbox",
        "target": "alice@example.com",
        "mailboxes": 1,
        "aliases": 0,
        "dkim_keys": 0,
    }
    users = api.get(f"/users/{domain_id}").json()["users"]
    assert [u["email"] for u in users] == ["alice@example.com"]
    with server.ctx.uow() as uow:
        user = uow.users.by_email("alice@example.com")
        assert user is not None
        assert verify_password("pw-alice-1", user.password)
    path = server.ctx.settings.mail_root_path / "example.com" / "alice" / MESSAGE
    assert path.read_bytes() == b"hello"
    assert api.get("/trash").json()["trash"] == []


def test_restored_domain_gets_its_dkim_key_rendered_again(
    api: httpx.Client, server: LiveServer
) -> None:
    """Restoring a domain through the API also puts its DKIM key back in OpenDKIM's tables."""
    _domain_with_mailbox(api, server)
    added = api.post("/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"})
    key_table = server.ctx.settings.opendkim_path / "KeyTable"
    assert "example.com" in key_table.read_text()
    deleted = api.request("DELETE", "/domain", data={"domain": "example.com"})
    assert "example.com" not in key_table.read_text()
    restored = api.post("/trash/restore", data={"id": deleted.json()["trash_id"]})
    assert restored.status_code == 200, restored.text
    assert (restored.json()["kind"], restored.json()["dkim_keys"]) == ("domain", 1)
    assert "example.com" in key_table.read_text()
    assert api.get("/dkim/example.com").json()["dns"] == added.json()["dns"]


def test_restore_refusals(api: httpx.Client, server: LiveServer) -> None:
    """A hostile id is 400, an unknown one 404, a mailbox that exists again 409; all JSON."""
    domain_id = _domain_with_mailbox(api, server)
    deleted = api.request("DELETE", "/users", data={"email": "alice@example.com"})
    trash_id = deleted.json()["trash_id"]
    for hostile in ("../../etc", ".hidden", "a/b"):
        response = api.post("/trash/restore", data={"id": hostile})
        assert response.status_code == 400, hostile
        assert response.json()["result"] is False
    unknown = api.post("/trash/restore", data={"id": "20240101T000000.000000Z-mailbox-x-0"})
    assert unknown.status_code == 404
    assert unknown.json()["result"] is False
    missing = api.post("/trash/restore", data={})
    assert missing.status_code == 400
    assert missing.json()["msg"] == "The field 'id' is required."
    again = api.post(
        f"/user/{domain_id}", data={"email": "alice@example.com", "password": "pw-new-12"}
    )
    assert again.status_code == 200, again.text
    conflict = api.post("/trash/restore", data={"id": trash_id})
    assert conflict.status_code == 409
    assert conflict.json()["result"] is False
    assert [i["id"] for i in api.get("/trash").json()["trash"]] == [trash_id]


def test_trash_needs_a_token(anon: httpx.Client) -> None:
    """Without a token the list and the restore answer 401."""
    assert anon.get("/trash").status_code == 401
    assert anon.post("/trash/restore", data={"id": "x"}).status_code == 401
