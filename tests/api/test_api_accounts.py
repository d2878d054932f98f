"""Admin accounts: password change, logout, the token list and revocation, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import event
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer

from mailctl.config import Settings
from mailctl.errors import AuthError
from mailctl.services import accounts, admins, auth
from mailctl.services.context import Actor, Context

NEW_PASSWORD = "a-new-admin-password-42"
Figure = Callable[[str, object], None]


def login(anon: httpx.Client, password: str = ADMIN_PASSWORD, agent: str = "test") -> str:
    response = anon.post(
        "/auth", data={"username": ADMIN, "password": password}, headers={"User-Agent": agent}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def call(anon: httpx.Client, token: str, method: str = "GET", path: str = "/domains", **kw):  # type: ignore[no-untyped-def]
    return anon.request(method, path, headers={"Auth-token": token}, **kw)


@pytest.mark.security(
    finding=11,
    claim="An admin changes its password through the API; every token issued before is refused.",
)
def test_password_change_refuses_earlier_tokens(anon: httpx.Client, figure: Figure) -> None:
    """POST /auth/password: the old tokens get 401, the answer's new token and password work."""
    first, second = login(anon), login(anon)
    response = call(
        anon,
        first,
        "POST",
        "/auth/password",
        data={"password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True and body["revoked"] == 2
    assert ADMIN_PASSWORD not in response.text and NEW_PASSWORD not in response.text
    refused = [call(anon, token) for token in (first, second)]
    assert [r.status_code for r in refused] == [401, 401]
    assert refused[0].json() == {
        "result": False,
        "msg": "The admin's password changed after this token was issued; "
        "log in again at POST /auth.",
    }
    assert call(anon, body["token"]).status_code == 200
    old = anon.post("/auth", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert old.status_code == 401
    assert call(anon, login(anon, NEW_PASSWORD)).status_code == 200
    figure("earlier tokens refused after the change", sum(r.status_code == 401 for r in refused))


@pytest.mark.parametrize("how", ["json", "query"])
def test_password_change_takes_every_transport(anon: httpx.Client, token: str, how: str) -> None:
    """The fields may come as JSON or in the query string too."""
    fields = {"password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}
    kwargs = {"json": fields} if how == "json" else {"params": fields}
    response = call(anon, token, "POST", "/auth/password", **kwargs)
    assert response.status_code == 200, response.text
    assert call(anon, response.json()["token"]).status_code == 200


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"new_password": NEW_PASSWORD}, 400, "The field 'password' (the current password)"),
        ({"password": ADMIN_PASSWORD}, 400, "The field 'new_password' is required."),
        ({"password": ADMIN_PASSWORD, "new_password": "sh0rt-x"}, 400, "too short"),
        ({"password": ADMIN_PASSWORD, "new_password": ADMIN_PASSWORD}, 400, "the same"),
        ({"password": "not-it-at-all", "new_password": NEW_PASSWORD}, 401, "not correct"),
    ],
)
def test_password_change_refusals(
    anon: httpx.Client, token: str, fields: dict[str, str], status: int, message: str
) -> None:
    """Missing fields, the policy and a wrong current password: a clear 4xx, nothing changed."""
    response = call(anon, token, "POST", "/auth/password", data=fields)
    assert response.status_code == status, response.text
    assert response.json()["result"] is False
    assert message in response.json()["msg"]
    for value in fields.values():
        assert value not in response.text
    assert call(anon, token).status_code == 200
    assert call(anon, login(anon)).status_code == 200


@pytest.mark.security(
    finding=11,
    claim="The current password of a password change is guessed no faster than a login.",
)
def test_wrong_current_password_is_throttled(
    anon: httpx.Client, token: str, figure: Figure
) -> None:
    """Wrong current passwords count as failed logins: after 10, 429 with Retry-After."""
    statuses = [
        call(
            anon,
            token,
            "POST",
            "/auth/password",
            data={"password": f"guess-{n}", "new_password": NEW_PASSWORD},
        ).status_code
        for n in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    right = call(
        anon,
        token,
        "POST",
        "/auth/password",
        data={"password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert right.status_code == 429
    assert int(right.headers["Retry-After"]) > 0
    assert (
        anon.post("/auth", data={"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 429
    )
    figure("wrong current passwords checked before the block", statuses.count(401))


@pytest.mark.security(finding=11, claim="Logging out revokes the token it is called with.")
def test_logout_revokes_only_its_token(anon: httpx.Client, figure: Figure) -> None:
    """POST /auth/logout: that token gets 401 afterwards, another one keeps working."""
    mine, other = login(anon), login(anon)
    response = call(anon, mine, "POST", "/auth/logout")
    assert response.status_code == 200
    assert response.json() == {"result": True, "msg": "Logged out; this token no longer works."}
    refused = call(anon, mine)
    assert refused.status_code == 401
    assert refused.json()["msg"] == "This token was logged out; log in again at POST /auth."
    assert call(anon, mine, "POST", "/auth/logout").status_code == 401
    assert call(anon, other).status_code == 200
    figure("requests refused after logout", 2)


@pytest.mark.security(
    finding=11, claim="An admin lists its active tokens by id, never seeing a token itself."
)
def test_token_list(anon: httpx.Client, figure: Figure) -> None:
    """GET /auth/tokens: id, issued, expires, address, agent, current; logged-out ones gone."""
    first = login(anon, agent="first-agent")
    second = login(anon, agent="second-agent")
    gone = login(anon)
    assert call(anon, gone, "POST", "/auth/logout").status_code == 200
    response = call(anon, second, "GET", "/auth/tokens")
    assert response.status_code == 200
    tokens = response.json()["tokens"]
    ids = [jwt.decode(t, options={"verify_signature": False})["jti"] for t in (first, second)]
    assert [t["id"] for t in tokens] == ids
    assert [t["agent"] for t in tokens] == ["first-agent", "second-agent"]
    assert [t["current"] for t in tokens] == [False, True]
    assert {t["address"] for t in tokens} == {"127.0.0.1"}
    for entry in tokens:
        issued = datetime.fromisoformat(entry["issued"])
        expires = datetime.fromisoformat(entry["expires"])
        assert expires - issued == timedelta(minutes=30)
    for token in (first, second, gone):
        assert token not in response.text
        assert token.split(".")[2] not in response.text
    figure("active tokens listed", len(tokens))


@pytest.mark.security(
    finding=11, claim="A token is revoked by its id, or all of an admin's tokens at once."
)
def test_revoke_by_id_and_all(anon: httpx.Client, figure: Figure) -> None:
    """DELETE /auth/tokens: id= revokes that one; all=true every one, the caller's included."""
    keeper, victim, third = login(anon), login(anon), login(anon)
    victim_id = jwt.decode(victim, options={"verify_signature": False})["jti"]
    response = call(anon, keeper, "DELETE", "/auth/tokens", data={"id": victim_id})
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 1
    refused = call(anon, victim)
    assert refused.status_code == 401
    assert refused.json()["msg"] == "This token was revoked; log in again at POST /auth."
    again = call(anon, keeper, "DELETE", "/auth/tokens", data={"id": victim_id})
    assert again.status_code == 404
    assert call(anon, keeper).status_code == 200
    every = call(anon, keeper, "DELETE", "/auth/tokens", params={"all": "true"})
    assert every.status_code == 200
    assert every.json()["revoked"] == 2
    statuses = [call(anon, token).status_code for token in (keeper, third)]
    assert statuses == [401, 401]
    figure("tokens revoked by all=true", every.json()["revoked"])


@pytest.mark.parametrize(
    ("fields", "status"),
    [({}, 400), ({"id": "x", "all": "true"}, 400), ({"all": "maybe"}, 400), ({"id": "nope"}, 404)],
)
def test_revoke_refusals(
    anon: httpx.Client, token: str, fields: dict[str, str], status: int
) -> None:
    """Neither or both of id and all, a bad flag, an unknown id: a clear 4xx."""
    response = call(anon, token, "DELETE", "/auth/tokens", data=fields)
    assert response.status_code == status, response.text
    assert response.json()["result"] is False
    assert call(anon, token).status_code == 200


def test_another_admins_token_cannot_be_revoked(anon: httpx.Client, server: LiveServer) -> None:
    """A token id of another admin is not found: an admin revokes only its own by id."""
    admins.create_admin(server.ctx, Actor("test"), "second", "second-password-1")
    other = anon.post("/auth", data={"username": "second", "password": "second-password-1"})
    other_id = jwt.decode(other.json()["token"], options={"verify_signature": False})["jti"]
    response = call(anon, login(anon), "DELETE", "/auth/tokens", data={"id": other_id})
    assert response.status_code == 404
    assert call(anon, other.json()["token"]).status_code == 200


@pytest.mark.security(
    finding=11,
    claim="A revocation made by one mailctl process is honoured at once by every other one.",
)
def test_revocation_is_shared_through_the_database(
    anon: httpx.Client, server: LiveServer, settings: Settings, figure: Figure
) -> None:
    """Revoking from another process's context (the CLI's) refuses the token on this server."""
    token = login(anon)
    other = Context.from_settings(settings)
    try:
        count = accounts.revoke_all(other, Actor("cli:test"), ADMIN)
    finally:
        other.close()
    assert count == 1
    response = call(anon, token)
    assert response.status_code == 401
    assert "revoked" in response.json()["msg"]
    figure("tokens revoked from another process", count)


@pytest.mark.security(finding=11, claim="Checking a token costs one database query.")
def test_token_check_is_one_query(server: LiveServer, anon: httpx.Client, figure: Figure) -> None:
    """authenticate() runs a single SELECT: the token's row joined with its admin."""
    token = login(anon)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = server.ctx.database.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        identity = auth.authenticate(server.ctx, token)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert identity.username == ADMIN
    assert len(statements) == 1, statements
    figure("SELECTs per token check", len(statements))


def test_token_won_with_the_old_password_is_born_revoked(server: LiveServer) -> None:
    """A login that checked the old password just before a change gets a refused token."""
    ctx = server.ctx
    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        identity, generation = auth.AdminIdentity(admin.id, admin.username), admin.token_generation
    accounts.set_password(ctx, Actor("cli:test"), ADMIN, NEW_PASSWORD)
    late = auth.issue_token(ctx, identity, generation=generation)
    with pytest.raises(AuthError, match="password changed or its tokens were revoked"):
        auth.authenticate(ctx, late)


def test_token_without_a_row_is_refused(server: LiveServer, anon: httpx.Client) -> None:
    """A validly signed token mailctl never recorded (made before tokens were) gets 401."""
    with server.ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        admin_id = admin.id
    now = datetime.now(UTC)
    claims = {
        "sub": str(admin_id),
        "username": ADMIN,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "0123456789abcdef",
    }
    unrecorded = jwt.encode(claims, auth.jwt_secret(server.ctx), algorithm="HS256")
    response = call(anon, unrecorded)
    assert response.status_code == 401
    assert "log in again" in response.json()["msg"]


def test_expired_token_rows_are_pruned(server: LiveServer, anon: httpx.Client) -> None:
    """Rows of expired tokens are deleted; rows of live ones stay."""
    live = login(anon)
    ctx = server.ctx
    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        count = len(uow.admin_tokens.active(admin.id, admin.token_generation, time.time()))
    assert count == 1
    assert auth.prune_tokens(ctx, now=time.time()) == 0
    assert auth.prune_tokens(ctx, now=time.time() + 31 * 60) == count
    assert call(anon, live).status_code == 401


def test_openapi_declares_the_account_answers(anon: httpx.Client) -> None:
    """The OpenAPI document lists each new method's statuses, each with a JSON body
    (403: an API key may not use them)."""
    paths = anon.get("/openapi.json").json()["paths"]
    declared = {
        ("post", "/auth/password"): {"200", "400", "401", "403", "409", "413", "429", "503"},
        ("post", "/auth/logout"): {"200", "401", "403", "404", "503"},
        ("get", "/auth/tokens"): {"200", "401", "403", "503"},
        ("delete", "/auth/tokens"): {"200", "400", "401", "403", "404", "413", "503"},
    }
    for (method, path), statuses in declared.items():
        responses = paths[path][method]["responses"]
        # 500 and 507 are declared by every route
        assert set(responses) == statuses | {"500", "507"}, (method, path)
        for answer in responses.values():
            assert "application/json" in answer["content"]
