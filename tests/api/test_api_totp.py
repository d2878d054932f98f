"""Two-factor login through HTTP: enrol, confirm, log in with a code, recovery codes, the
superadmin's reset and policy; API keys and domain admins refused where they must be."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer

from mailctl.domain import totp
from mailctl.services import admins, api_keys
from mailctl.services.context import Actor

HOST = Actor("test")
# What these check is refused before any query, or is the same SQL as the flows above:
# once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])


class Phone:
    """An authenticator app: the secret of an enrolment, and the step it was confirmed in."""

    def __init__(self, secret: str) -> None:
        self.secret = totp.decode_secret(secret)
        self.step = totp.time_step(time.time())

    def code(self, after: int = 0) -> str:
        """The code of ``after`` steps after the confirming one (still within the window)."""
        return totp.hotp(self.secret, self.step + after)

    def wrong(self) -> str:
        now = totp.time_step(time.time())
        taken = {totp.hotp(self.secret, s) for s in range(now - 2, now + 3)}
        return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in taken)


def _login(anon: httpx.Client, username: str = ADMIN, password: str = ADMIN_PASSWORD, **more: str):  # type: ignore[no-untyped-def]
    return anon.post("/auth", data={"username": username, "password": password, **more})


def _enrol(client: httpx.Client, headers: dict[str, str] | None = None) -> tuple[Phone, list[str]]:
    started = client.post("/auth/totp", headers=headers)
    assert started.status_code == 200, started.text
    phone = Phone(started.json()["secret"])
    confirmed = client.post("/auth/totp/confirm", headers=headers, data={"code": phone.code()})
    assert confirmed.status_code == 200, confirmed.text
    return phone, confirmed.json()["recovery_codes"]


def test_enrol_confirm_and_log_in_with_codes(api: httpx.Client, anon: httpx.Client) -> None:
    """The whole flow: enrol, confirm, login needs a code, a wrong one is 401, a good one
    works once, a recovery code works once."""
    started = api.post("/auth/totp")
    assert started.status_code == 200
    body = started.json()
    assert body["result"] is True
    assert body["uri"].startswith("otpauth://totp/mailctl:admin?secret=" + body["secret"])
    assert body["qr_svg"].startswith("<svg")
    assert base64.b64decode(body["qr_png"]).startswith(b"\x89PNG")
    assert api.get("/auth/totp").json() == {
        "result": True,
        "username": ADMIN,
        "enrolled": True,
        "confirmed": False,
        "recovery_codes_left": 0,
        "required": False,
    }
    assert _login(anon).status_code == 200  # not on until confirmed

    phone = Phone(body["secret"])
    confirmed = api.post("/auth/totp/confirm", data={"code": phone.code()})
    assert confirmed.status_code == 200
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert api.get("/auth/totp").json()["recovery_codes_left"] == 10

    needed = _login(anon)
    assert needed.status_code == 401
    assert needed.json()["totp_required"] is True
    assert "field 'code'" in needed.json()["msg"]
    assert needed.json()["result"] is False

    wrong = _login(anon, code=phone.wrong())
    assert wrong.status_code == 401
    assert wrong.json() == {
        "result": False,
        "msg": "The two-factor code is not correct.",
        "totp_required": True,
    }
    bad_password = _login(anon, password="nope", code=phone.code(1))
    assert bad_password.json() == {"msg": "Username/password is not correct", "result": False}

    good = _login(anon, code=phone.code(1))
    assert good.status_code == 200
    assert set(good.json()) == {"result", "token"}
    assert anon.get("/domains", headers={"Auth-token": good.json()["token"]}).status_code == 200
    replayed = _login(anon, code=phone.code(1))
    assert replayed.status_code == 401
    assert "used already" in replayed.json()["msg"]

    assert _login(anon, code=codes[3]).status_code == 200
    again = _login(anon, code=codes[3])
    assert again.status_code == 401
    assert "used already" in again.json()["msg"]
    assert api.get("/auth/totp").json()["recovery_codes_left"] == 9


def test_documented_curl_login_with_a_code(server: LiveServer, api: httpx.Client) -> None:
    """``curl -F username=... -F password=... -F code=...`` through the real server."""
    phone, _ = _enrol(api)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        fields = {"username": ADMIN, "password": ADMIN_PASSWORD, "code": phone.code(1)}
        answer = client.post("/auth", files={k: (None, v) for k, v in fields.items()})
    assert answer.status_code == 200
    assert answer.json()["result"] is True


def test_turn_off_with_password(api: httpx.Client, anon: httpx.Client) -> None:
    """DELETE /auth/totp needs the password (or a code): wrong is 401, right turns it off."""
    phone, _ = _enrol(api)
    assert api.request("DELETE", "/auth/totp", data={"password": "nope"}).status_code == 401
    assert api.request("DELETE", "/auth/totp", data={"code": phone.wrong()}).status_code == 401
    off = api.request("DELETE", "/auth/totp", data={"password": ADMIN_PASSWORD})
    assert off.status_code == 200
    assert off.json()["msg"] == "Two-factor login is off for admin."
    assert _login(anon).status_code == 200
    assert api.request("DELETE", "/auth/totp", data={"password": ADMIN_PASSWORD}).status_code == 404


def test_superadmin_resets_a_locked_out_admin(
    server: LiveServer, api: httpx.Client, anon: httpx.Client
) -> None:
    """An admin who lost its phone and codes is reset by a superadmin; it may not reset
    anyone itself."""
    admins.create_admin(server.ctx, HOST, "ops", "ops-password-1", "domain_admin")
    ops = {"Auth-token": _login(anon, "ops", "ops-password-1").json()["token"]}
    _enrol(anon, ops)
    assert _login(anon, "ops", "ops-password-1").status_code == 401
    refused = anon.post("/admin/totp/reset", headers=ops, data={"username": ADMIN})
    assert refused.status_code == 403
    assert anon.post("/auth/totp/policy", headers=ops, data={"required": "true"}).status_code == 403
    reset = api.post("/admin/totp/reset", data={"username": "ops"})
    assert reset.status_code == 200
    assert "reset" in reset.json()["msg"]
    assert _login(anon, "ops", "ops-password-1").status_code == 200
    assert api.post("/admin/totp/reset", data={"username": "nobody"}).status_code == 404


def test_policy_lets_unenrolled_admins_only_enrol(api: httpx.Client, anon: httpx.Client) -> None:
    """Required: an admin without a second factor gets a token that may only enrol; after
    enrolling, its login needs a code, and the full token works everywhere."""
    policy = api.post("/auth/totp/policy", data={"required": "true"})
    assert policy.status_code == 200
    assert policy.json()["required"] is True
    assert policy.json()["not_enrolled"] == [ADMIN]
    login = _login(anon)
    assert login.status_code == 200
    assert login.json()["totp_enrolment_required"] is True
    limited = {"Auth-token": login.json()["token"]}
    blocked = anon.get("/domains", headers=limited)
    assert blocked.status_code == 403
    assert "POST /auth/totp" in blocked.json()["msg"]
    assert (
        anon.post("/auth/totp/policy", headers=limited, data={"required": "false"}).status_code
        == 403
    )
    assert anon.get("/auth/totp", headers=limited).json()["required"] is True
    assert anon.get("/auth/me", headers=limited).status_code == 200
    phone, _ = _enrol(anon, limited)
    assert anon.get("/domains", headers=limited).status_code == 403  # log in again
    assert _login(anon).status_code == 401
    full = _login(anon, code=phone.code(1))
    assert full.status_code == 200 and "totp_enrolment_required" not in full.json()
    headers = {"Auth-token": full.json()["token"]}
    assert anon.get("/domains", headers=headers).status_code == 200
    kept = anon.request("DELETE", "/auth/totp", headers=headers, data={"password": ADMIN_PASSWORD})
    assert kept.status_code == 409
    off = anon.post("/auth/totp/policy", headers=headers, data={"required": "no"})
    assert off.json()["required"] is False


def test_api_keys_are_refused(server: LiveServer, anon: httpx.Client) -> None:
    """Two-factor operations are for logins: a key, even a superadmin's, gets 403."""
    made = api_keys.create_key(server.ctx, Actor(ADMIN), name="script")
    key = {"Auth-token": made.key}
    for method, path, data in (
        ("GET", "/auth/totp", {}),
        ("POST", "/auth/totp", {}),
        ("POST", "/auth/totp/confirm", {"code": "123456"}),
        ("DELETE", "/auth/totp", {"password": ADMIN_PASSWORD}),
        ("POST", "/admin/totp/reset", {"username": ADMIN}),
        ("POST", "/auth/totp/policy", {"required": "true"}),
    ):
        answer = anon.request(method, path, headers=key, data=data)
        assert answer.status_code == 403, (method, path)
        assert "API key" in answer.json()["msg"]


@ONCE_ON_SQLITE
def test_bad_input_is_a_clear_400(api: httpx.Client) -> None:
    """Missing or malformed fields answer 400 with a sentence, never a 500."""
    assert api.post("/auth/totp/confirm", data={"code": "123456"}).status_code == 404
    api.post("/auth/totp")
    for data in ({}, {"code": ""}, {"code": "abc"}, {"code": "1234567"}):
        answer = api.post("/auth/totp/confirm", data=data)
        assert answer.status_code == 400, data
        assert answer.json()["result"] is False
    assert api.post("/auth/totp/policy", data={"required": "maybe"}).status_code == 400
    assert api.post("/auth/totp/policy").status_code == 400
    assert api.request("DELETE", "/auth/totp").status_code == 400
    assert api.post("/admin/totp/reset").status_code == 400


@ONCE_ON_SQLITE
def test_enrolling_twice(api: httpx.Client) -> None:
    """A new enrolment replaces an unconfirmed one; once confirmed, it is a 409."""
    first = api.post("/auth/totp").json()["secret"]
    second = api.post("/auth/totp").json()["secret"]
    assert first != second
    old = totp.totp(totp.decode_secret(first), time.time())
    new = totp.totp(totp.decode_secret(second), time.time())
    if old != new:
        assert api.post("/auth/totp/confirm", data={"code": old}).status_code == 400
    assert api.post("/auth/totp/confirm", data={"code": new}).status_code == 200
    assert api.post("/auth/totp").status_code == 409
    assert api.post("/auth/totp/confirm", data={"code": new}).status_code == 409
