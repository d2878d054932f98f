"""``POST /auth`` and the token rules every other method enforces."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer

from mailctl.services import admins, auth


def test_login_returns_token_as_documented(anon: httpx.Client) -> None:
    """The documented curl -F login answers result true and a token."""
    response = anon.post(
        "/auth", files={"username": (None, ADMIN), "password": (None, ADMIN_PASSWORD)}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["result"] is True
    assert body["token"].count(".") == 2


def test_wrong_password_gets_documented_error(anon: httpx.Client) -> None:
    """Wrong credentials answer 401 with the documented message."""
    response = anon.post("/auth", data={"username": ADMIN, "password": "nope"})
    assert response.status_code == 401
    assert response.json() == {"msg": "Username/password is not correct", "result": False}


def test_unknown_admin_gets_same_error(anon: httpx.Client) -> None:
    """An unknown username is indistinguishable from a wrong password."""
    response = anon.post("/auth", data={"username": "ghost", "password": "x"})
    assert response.status_code == 401
    assert response.json()["msg"] == "Username/password is not correct"


def test_missing_token_is_refused(anon: httpx.Client) -> None:
    """A call without a token gets 401 and a JSON body."""
    response = anon.get("/domains")
    assert response.status_code == 401
    assert response.json()["result"] is False
    assert "Auth-token" in response.json()["msg"]


def test_bearer_header_works_too(anon: httpx.Client, token: str) -> None:
    """``Authorization: Bearer`` is accepted as well as ``Auth-token``."""
    response = anon.get("/domains", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_bad_signature_is_refused(anon: httpx.Client, token: str) -> None:
    """A token signed with another key is refused."""
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-secret-not-the-secret-not-the-secret", algorithm="HS256")
    response = anon.get("/domains", headers={"Auth-token": forged})
    assert response.status_code == 401
    assert response.json()["result"] is False


def test_alg_none_is_refused(anon: httpx.Client, token: str) -> None:
    """An unsigned token (alg none) is refused."""
    claims = jwt.decode(token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    response = anon.get("/domains", headers={"Auth-token": unsigned})
    assert response.status_code == 401


def test_expired_token_is_refused(anon: httpx.Client, server: LiveServer) -> None:
    """A token past its expiry is refused with a message saying so."""
    now = datetime.now(UTC)
    with server.ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        claims = {
            "sub": str(admin.id),
            "username": ADMIN,
            "iat": now - timedelta(hours=2),
            "exp": now - timedelta(hours=1),
        }
    expired = jwt.encode(claims, auth.jwt_secret(server.ctx), algorithm="HS256")
    response = anon.get("/domains", headers={"Auth-token": expired})
    assert response.status_code == 401
    assert "expired" in response.json()["msg"]


def test_garbage_token_is_refused(anon: httpx.Client) -> None:
    """A token that is not a JWT at all is refused, not a 500."""
    response = anon.get("/domains", headers={"Auth-token": b"garbage\xff"})
    assert response.status_code == 401


def test_token_of_deleted_admin_is_refused(api: httpx.Client, server: LiveServer) -> None:
    """Deleting an admin invalidates its tokens at once."""
    assert api.get("/domains").status_code == 200
    # A second superadmin first: the last one cannot be deleted.
    admins.create_admin(server.ctx, auth_actor(), "spare", "spare-password-1")
    admins.delete_admin(server.ctx, auth_actor(), ADMIN)
    response = api.get("/domains")
    assert response.status_code == 401
    assert "no longer exists" in response.json()["msg"]


def test_token_expiry_follows_setting(anon: httpx.Client, token: str) -> None:
    """Tokens expire after the configured 30 minutes by default."""
    claims = jwt.decode(token, options={"verify_signature": False})
    assert 29 * 60 <= claims["exp"] - claims["iat"] <= 30 * 60
    assert claims["exp"] > time.time()


def test_repeated_failures_are_throttled(anon: httpx.Client) -> None:
    """Many wrong passwords in a row get 429 instead of more guesses."""
    statuses = [
        anon.post("/auth", data={"username": ADMIN, "password": f"guess{i}"}).status_code
        for i in range(12)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert (
        anon.post("/auth", data={"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 429
    )


def auth_actor():  # type: ignore[no-untyped-def]
    from mailctl.services.context import Actor

    return Actor("test", None)
