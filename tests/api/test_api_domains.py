"""Domains through HTTP: list, create with a first mailbox, delete to the trash."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer


def test_empty_list(api: httpx.Client) -> None:
    """A new installation lists no domains."""
    response = api.get("/domains")
    assert response.status_code == 200
    assert response.json()["domains"] == []


def test_create_domain_with_first_mailbox(api: httpx.Client, server: LiveServer) -> None:
    """POST /domains with username and password creates both, and the maildir."""
    response = api.post(
        "/domains",
        files={
            "domain": (None, "Example.COM"),
            "username": (None, "admin@example.com"),
            "password": (None, "s3cret-pass"),
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] is True
    assert response.json()["domain"]["name"] == "example.com"
    listed = api.get("/domains").json()["domains"]
    assert listed == [{"id": listed[0]["id"], "name": "example.com", "users_count": 1}]
    users = api.get(f"/users/{listed[0]['id']}").json()["users"]
    assert [u["email"] for u in users] == ["admin@example.com"]
    maildir = server.ctx.settings.mail_root_path / "example.com" / "admin"
    assert sorted(p.name for p in maildir.iterdir()) == ["cur", "new", "tmp"]


def test_create_domain_with_bare_username(api: httpx.Client) -> None:
    """A username without @ is taken as a mailbox of the new domain."""
    response = api.post(
        "/domains", data={"domain": "example.org", "username": "info", "password": "s3cret-pass"}
    )
    assert response.status_code == 200
    assert response.json()["user"]["email"] == "info@example.org"


def test_create_domain_alone(api: httpx.Client) -> None:
    """A domain can be created without a mailbox."""
    response = api.post("/domains", data={"domain": "example.net"})
    assert response.status_code == 200
    assert api.get("/domains").json()["domains"][0]["users_count"] == 0


def test_users_count_per_domain(api: httpx.Client) -> None:
    """users_count counts each domain's own mailboxes."""
    api.post("/domains", data={"domain": "a.example", "username": "x", "password": "password1"})
    api.post("/domains", data={"domain": "b.example"})
    a_id = api.get("/domains").json()["domains"][0]["id"]
    api.post(f"/user/{a_id}", data={"email": "y@a.example", "password": "password2"})
    counts = {d["name"]: d["users_count"] for d in api.get("/domains").json()["domains"]}
    assert counts == {"a.example": 2, "b.example": 0}


def test_duplicate_domain_conflicts(api: httpx.Client) -> None:
    """Creating a domain twice answers 409 and keeps the first."""
    assert api.post("/domains", data={"domain": "example.com"}).status_code == 200
    response = api.post("/domains", data={"domain": "EXAMPLE.com."})
    assert response.status_code == 409
    assert response.json() == {"result": False, "msg": "The domain example.com exists already."}
    assert len(api.get("/domains").json()["domains"]) == 1


def test_mailbox_of_other_domain_is_refused(api: httpx.Client) -> None:
    """The first mailbox must belong to the domain being created; nothing is created."""
    response = api.post(
        "/domains",
        data={"domain": "example.com", "username": "x@other.com", "password": "password1"},
    )
    assert response.status_code == 400
    assert api.get("/domains").json()["domains"] == []


def test_username_without_password_is_refused(api: httpx.Client) -> None:
    """Half a mailbox (username but no password) is a 400, not a domain without it."""
    response = api.post("/domains", data={"domain": "example.com", "username": "x"})
    assert response.status_code == 400
    assert api.get("/domains").json()["domains"] == []


@pytest.mark.parametrize(
    "name",
    ["../../etc", "", "a@b@c", "x" * 300 + ".com", "exa\x00mple.com", "a/b.com", ".", "..", "com"],
)
def test_hostile_domain_names_are_refused(api: httpx.Client, server: LiveServer, name: str) -> None:
    """Names that could become paths outside the root get 400 and touch no file."""
    response = api.post("/domains", data={"domain": name, "username": "u", "password": "password1"})
    assert response.status_code == 400
    assert response.json()["result"] is False
    assert response.json()["msg"]
    mail_root = server.ctx.settings.mail_root_path
    assert not mail_root.exists() or list(mail_root.iterdir()) == []


def test_missing_domain_field(api: httpx.Client) -> None:
    """POST /domains without the domain field says which field is missing."""
    response = api.post("/domains", data={})
    assert response.status_code == 400
    assert response.json()["msg"] == "The field 'domain' is required."


def test_delete_domain_moves_mail_to_trash(api: httpx.Client, server: LiveServer) -> None:
    """DELETE /domain removes rows and moves the maildirs into the trash with a manifest."""
    api.post("/domains", data={"domain": "example.com", "username": "a", "password": "password1"})
    message = server.ctx.settings.mail_root_path / "example.com" / "a" / "new" / "1.msg"
    message.write_bytes(b"Subject: keep me\r\n\r\nbody\r\n")
    response = api.request("DELETE", "/domain", files={"domain": (None, "example.com")})
    assert response.status_code == 200, response.text
    assert api.get("/domains").json()["domains"] == []
    assert not (server.ctx.settings.mail_root_path / "example.com").exists()
    trash = Path(response.json()["trash"])
    assert (trash / "data" / "a" / "new" / "1.msg").read_bytes().startswith(b"Subject: keep me")
    assert '"admin@example.com"' not in (trash / "manifest.json").read_text()
    assert '"a@example.com"' in (trash / "manifest.json").read_text()


def test_delete_unknown_domain_is_404(api: httpx.Client) -> None:
    """Deleting a domain that does not exist answers 404."""
    response = api.request("DELETE", "/domain", data={"domain": "nope.example"})
    assert response.status_code == 404
    assert response.json()["result"] is False


def test_delete_domain_never_follows_symlink_out_of_root(
    api: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    """A domain folder replaced by a symlink elsewhere is refused, and nothing moves."""
    api.post("/domains", data={"domain": "example.com"})
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "file").write_text("keep")
    mail_root = server.ctx.settings.mail_root_path
    mail_root.mkdir(parents=True, exist_ok=True)
    (mail_root / "example.com").symlink_to(outside)
    response = api.request("DELETE", "/domain", data={"domain": "example.com"})
    assert response.status_code == 500
    assert (outside / "file").read_text() == "keep"
    assert [d["name"] for d in api.get("/domains").json()["domains"]] == ["example.com"]


def test_audit_log_records_changes(api: httpx.Client, server: LiveServer) -> None:
    """Every mutating call leaves an audit row with admin, action, target and address."""
    api.post("/domains", data={"domain": "example.com", "username": "a", "password": "password1"})
    api.request("DELETE", "/domain", data={"domain": "example.com"})
    with server.ctx.uow() as uow:
        rows = [(e.admin, e.action, e.target, e.client_address) for e in uow.audit.recent()]
    assert ("admin", "create_domain", "example.com", "127.0.0.1") in rows
    assert ("admin", "create_user", "a@example.com", "127.0.0.1") in rows
    assert ("admin", "delete_domain", "example.com", "127.0.0.1") in rows
