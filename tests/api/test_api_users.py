"""Mailboxes through HTTP: list, create, change password, delete."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.domain.passwords import verify_password


@pytest.fixture
def domain_id(api: httpx.Client) -> int:
    response = api.post("/domains", data={"domain": "example.com"})
    assert response.status_code == 200
    return int(response.json()["domain"]["id"])


def stored_hash(server: LiveServer, email: str) -> str:
    with server.ctx.uow() as uow:
        user = uow.users.by_email(email)
        assert user is not None
        return user.password


def test_create_user_documented_path(api: httpx.Client, domain_id: int, server: LiveServer) -> None:
    """POST /user/:domain_id creates the mailbox, its maildir, and lists it."""
    response = api.post(
        f"/user/{domain_id}",
        files={"email": (None, "Bob@Example.com"), "password": (None, "pw-123456")},
    )
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user == {"id": user["id"], "domain_id": domain_id, "email": "bob@example.com"}
    # The listing adds the quota and the usage Dovecot counted to each mailbox.
    usage = {"quota_bytes": None, "quota_messages": None, "used_bytes": 0, "used_messages": 0}
    assert api.get(f"/users/{domain_id}").json() == {"result": True, "users": [user | usage]}
    assert (server.ctx.settings.mail_root_path / "example.com" / "bob" / "cur").is_dir()


def test_create_user_old_plural_path(api: httpx.Client, domain_id: int) -> None:
    """POST /users/:domain_id works too, as the old service routed it."""
    response = api.post(
        f"/users/{domain_id}", data={"email": "c@example.com", "password": "pw-123456"}
    )
    assert response.status_code == 200
    assert response.json()["user"]["email"] == "c@example.com"


@pytest.mark.production_hashing
def test_password_is_stored_as_argon2id(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    """The stored password is a Dovecot {ARGON2ID} string that verifies, never the plain text.

    With the production costs: 64 MiB, three passes, one lane.
    """
    api.post(f"/user/{domain_id}", data={"email": "d@example.com", "password": "pw-123456"})
    stored = stored_hash(server, "d@example.com")
    assert stored.startswith("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$")
    assert "pw-123456" not in stored
    assert verify_password("pw-123456", stored)


@pytest.mark.production_hashing
def test_stored_hash_verifies_with_doveadm(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    """Dovecot's own doveadm accepts the hash the API stored, and refuses a wrong password."""
    doveadm = shutil.which("doveadm")
    assert doveadm, "doveadm (Debian package dovecot-core) is required; scripts/test installs it"
    api.post(f"/user/{domain_id}", data={"email": "e@example.com", "password": "pw-123456"})
    stored = stored_hash(server, "e@example.com")
    good = subprocess.run(
        [doveadm, "pw", "-t", stored, "-p", "pw-123456"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [doveadm, "pw", "-t", stored, "-p", "wrong-password"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode != 0


def test_duplicate_user_conflicts(api: httpx.Client, domain_id: int) -> None:
    """The same address twice answers 409."""
    api.post(f"/user/{domain_id}", data={"email": "f@example.com", "password": "pw-123456"})
    response = api.post(
        f"/user/{domain_id}", data={"email": "F@EXAMPLE.COM", "password": "pw-123456"}
    )
    assert response.status_code == 409
    assert response.json()["msg"] == "The mailbox f@example.com exists already."


def test_unknown_domain_id_is_404(api: httpx.Client) -> None:
    """Creating or listing in a domain id that does not exist answers 404."""
    assert (
        api.post("/user/999", data={"email": "a@example.com", "password": "pw-123456"}).status_code
        == 404
    )
    assert api.get("/users/999").status_code == 404


def test_non_numeric_domain_id_is_400(api: httpx.Client) -> None:
    """A domain id that is not a number is a 400 with a message."""
    response = api.get("/users/abc")
    assert response.status_code == 400
    assert "domain id" in response.json()["msg"]


def test_address_of_other_domain_is_refused(api: httpx.Client, domain_id: int) -> None:
    """A mailbox must be created in its own domain."""
    response = api.post(
        f"/user/{domain_id}", data={"email": "a@other.com", "password": "pw-123456"}
    )
    assert response.status_code == 400
    assert "does not belong" in response.json()["msg"]


@pytest.mark.parametrize(
    "email", ["../../x@example.com", "a@b@example.com", "", "x\x00@example.com", "a/b@example.com"]
)
def test_hostile_addresses_are_refused(
    api: httpx.Client, domain_id: int, email: str, server: LiveServer
) -> None:
    """Addresses that could build a bad path get 400 and create no directory."""
    response = api.post(f"/user/{domain_id}", data={"email": email, "password": "pw-123456"})
    assert response.status_code == 400
    root = server.ctx.settings.mail_root_path
    assert not (root / "example.com").exists() or list((root / "example.com").iterdir()) == []


@pytest.mark.parametrize(
    ("password", "message"), [("", "required"), ("short", "too short"), ("x" * 2000, "too long")]
)
def test_bad_passwords_are_refused(
    api: httpx.Client, domain_id: int, password: str, message: str
) -> None:
    """Empty, short and absurdly long passwords get 400 with a reason."""
    response = api.post(f"/user/{domain_id}", data={"email": "g@example.com", "password": password})
    assert response.status_code == 400
    msg = response.json()["msg"]
    assert message in msg or (message == "required" and "empty" in msg)


def test_change_password(api: httpx.Client, domain_id: int, server: LiveServer) -> None:
    """The new password verifies and the old one does not, as soon as the call returns."""
    user_id = api.post(
        f"/user/{domain_id}", data={"email": "h@example.com", "password": "old-password"}
    ).json()["user"]["id"]
    response = api.post(
        "/user-change-password",
        files={
            "id": (None, str(user_id)),
            "password": (None, "new-password"),
            "domain_id": (None, str(domain_id)),
        },
    )
    assert response.status_code == 200, response.text
    stored = stored_hash(server, "h@example.com")
    assert verify_password("new-password", stored)
    assert not verify_password("old-password", stored)


def test_change_password_wrong_domain_is_404(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    """A user id that is not in that domain_id answers 404 and changes nothing."""
    other = api.post("/domains", data={"domain": "other.com"}).json()["domain"]["id"]
    user_id = api.post(
        f"/user/{domain_id}", data={"email": "i@example.com", "password": "old-password"}
    ).json()["user"]["id"]
    response = api.post(
        "/user-change-password",
        data={"id": user_id, "password": "new-password", "domain_id": other},
    )
    assert response.status_code == 404
    assert verify_password("old-password", stored_hash(server, "i@example.com"))


def test_change_password_unknown_user_is_404(api: httpx.Client, domain_id: int) -> None:
    """An unknown user id answers 404."""
    response = api.post(
        "/user-change-password",
        data={"id": 4242, "password": "new-password", "domain_id": domain_id},
    )
    assert response.status_code == 404


def test_delete_user_moves_maildir_to_trash(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    """DELETE /users removes the mailbox and keeps its mail in the trash."""
    api.post(f"/user/{domain_id}", data={"email": "j@example.com", "password": "pw-123456"})
    maildir = server.ctx.settings.mail_root_path / "example.com" / "j"
    (maildir / "cur" / "1:2,S").write_bytes(b"mail")
    response = api.request("DELETE", "/users", files={"email": (None, "j@example.com")})
    assert response.status_code == 200, response.text
    assert api.get(f"/users/{domain_id}").json()["users"] == []
    assert not maildir.exists()
    assert (Path(response.json()["trash"]) / "data" / "cur" / "1:2,S").read_bytes() == b"mail"


def test_delete_unknown_user_is_404(api: httpx.Client) -> None:
    """Deleting a mailbox that does not exist answers 404."""
    response = api.request("DELETE", "/users", data={"email": "nobody@example.com"})
    assert response.status_code == 404


@pytest.mark.production_hashing
def test_hashing_does_not_block_other_requests(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    """While 8 mailboxes are being created (slow hashing), /ping is still answered."""
    finished: list[float] = []

    def create(n: int) -> None:
        with httpx.Client(base_url=server.url, headers=dict(api.headers), timeout=60) as client:
            response = client.post(
                f"/user/{domain_id}", data={"email": f"u{n}@example.com", "password": "pw-123456"}
            )
            assert response.status_code == 200
            finished.append(time.monotonic())

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        pong = client.get("/ping")  # through the same server as the hashing requests
    answered = time.monotonic()
    for thread in threads:
        thread.join(timeout=120)
    assert pong.text == "pong"
    assert len(finished) == 8
    assert answered < max(finished)
    assert len(api.get(f"/users/{domain_id}").json()["users"]) == 8


def test_prehashed_password_for_migration(
    api: httpx.Client, domain_id: int, server: LiveServer
) -> None:
    """A mailbox moved from another server keeps its hash, and its password keeps working."""
    old = "{SHA512-CRYPT}$6$saltsalt$" + "x" * 86
    from mailctl.domain.passwords import hash_password

    migrated = hash_password("from-the-old-server", "SHA512-CRYPT")
    response = api.post(
        f"/user/{domain_id}", data={"email": "m@example.com", "password_hash": migrated}
    )
    assert response.status_code == 200, response.text
    assert stored_hash(server, "m@example.com") == migrated
    assert verify_password("from-the-old-server", stored_hash(server, "m@example.com"))
    bad = api.post(f"/user/{domain_id}", data={"email": "n@example.com", "password_hash": "plain"})
    assert bad.status_code == 400
    both = api.post(
        f"/user/{domain_id}",
        data={"email": "o@example.com", "password": "pw-123456", "password_hash": old},
    )
    assert both.status_code == 400
