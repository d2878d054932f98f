"""Mailbox self-service through HTTP: a mailbox owner's login, password, forwarding and
auto-reply, and the same settings set by admins."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD

from mailctl.domain import passwords
from mailctl.services.context import Context

# Per backend: mailboxes and their settings are looked up by address and id, tokens by
# their id joined with the mailbox, and the settings' texts and dates must come back whole.

ALICE_PASSWORD = "alice's passphrase 1"
HOSTILE_BODY = 'Away "until" \\ Monday.\n.\n} stop; keep;\r\n\tthe end'


@pytest.fixture
def domain_id(api: httpx.Client) -> int:
    made = api.post(
        "/domains",
        data={"domain": "example.com", "username": "alice@example.com", "password": ALICE_PASSWORD},
    )
    assert made.status_code == 200, made.text
    for local in ("bob", "carol"):
        more = api.post(
            f"/user/{made.json()['domain']['id']}",
            data={"email": f"{local}@example.com", "password": f"{local}'s passphrase"},
        )
        assert more.status_code == 200, more.text
    ident: int = made.json()["domain"]["id"]
    return ident


def _login(anon: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = anon.post("/self/auth", data={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


@pytest.fixture
def alice(anon: httpx.Client, domain_id: int) -> dict[str, str]:
    return _login(anon, "alice@example.com", ALICE_PASSWORD)


def _script(ctx: Context, email: str) -> Path:
    local, _, domain = email.partition("@")
    return ctx.settings.sieve_path / domain / f"{local}.sieve"


def test_login_and_read_own_settings(anon: httpx.Client, alice: dict[str, str]) -> None:
    """POST /self/auth gives a token; GET /self shows the mailbox with nothing set."""
    me = anon.get("/self", headers=alice)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"]["email"] == "alice@example.com"
    assert body["forwarding"] == {"enabled": False, "destinations": [], "keep_copy": False}
    assert body["autoreply"]["enabled"] is False


def test_wrong_password_and_unknown_address_are_told_alike(
    anon: httpx.Client, domain_id: int
) -> None:
    """A wrong password, an unknown mailbox, a malformed address and missing fields: 401,
    one message."""
    answers = [
        anon.post("/self/auth", data={"email": "alice@example.com", "password": "wrong"}),
        anon.post("/self/auth", data={"email": "nobody@example.com", "password": "wrong"}),
        anon.post("/self/auth", data={"email": "not an address", "password": "wrong"}),
        anon.post("/self/auth", data={}),
    ]
    assert {a.status_code for a in answers} == {401}
    assert {a.json()["msg"] for a in answers} == {"Email/password is not correct"}


def test_address_is_case_insensitive_and_crypt_rows_log_in(
    api: httpx.Client, anon: httpx.Client, domain_id: int, ctx: Context
) -> None:
    """The address in any case, and a migrated {SHA512-CRYPT} row, log in as Dovecot's would."""
    _login(anon, "ALICE@Example.COM", ALICE_PASSWORD)
    hashed = passwords.hash_password("dave's old secret", "SHA512-CRYPT")
    made = api.post(
        f"/user/{domain_id}", data={"email": "dave@example.com", "password_hash": hashed}
    )
    assert made.status_code == 200, made.text
    _login(anon, "dave@example.com", "dave's old secret")


def test_mailbox_and_admin_tokens_are_never_taken_for_each_other(
    api: httpx.Client, anon: httpx.Client, alice: dict[str, str]
) -> None:
    """A mailbox token is a 401 on admin operations; an admin token is a 401 on /self."""
    for method, path in (("GET", "/domains"), ("GET", "/auth/me"), ("POST", "/auth/logout")):
        refused = anon.request(method, path, headers=alice)
        assert refused.status_code == 401, (path, refused.text)
        assert "mailbox's token" in refused.json()["msg"]
    for path in ("/self", "/self/logout"):
        refused = api.request("GET" if path == "/self" else "POST", path)
        assert refused.status_code == 401, refused.text
        assert "admin's token" in refused.json()["msg"]
    assert anon.get("/self").status_code == 401


def test_forwarding_on_off_and_its_script(
    anon: httpx.Client, alice: dict[str, str], ctx: Context
) -> None:
    """Forwarding is stored, rendered into a Sieve script with :copy when a copy stays,
    and the script goes when forwarding is turned off."""
    set_ = anon.post(
        "/self/forwarding",
        headers=alice,
        data={"destinations": "Bob@Example.com, friend@elsewhere.test", "keep_copy": "true"},
    )
    assert set_.status_code == 200, set_.text
    assert set_.json()["forwarding"] == {
        "enabled": True,
        "destinations": ["bob@example.com", "friend@elsewhere.test"],
        "keep_copy": True,
    }
    script = _script(ctx, "alice@example.com").read_text()
    assert 'redirect :copy "bob@example.com";' in script
    assert 'redirect :copy "friend@elsewhere.test";' in script
    moved = anon.post("/self/forwarding", headers=alice, data={"destinations": "bob@example.com"})
    assert moved.status_code == 200, moved.text
    assert 'redirect "bob@example.com";' in _script(ctx, "alice@example.com").read_text()
    off = anon.post("/self/forwarding", headers=alice, data={"destinations": ""})
    assert off.status_code == 200, off.text
    assert off.json()["forwarding"]["enabled"] is False
    assert not _script(ctx, "alice@example.com").exists()


def test_forwarding_refusals(anon: httpx.Client, domain_id: int) -> None:
    """Forwarding to itself, to a bad address, to too many, or round a loop: 400."""
    alice = _login(anon, "alice@example.com", ALICE_PASSWORD)
    bob = _login(anon, "bob@example.com", "bob's passphrase")
    too_many = ",".join(f"x{n}@elsewhere.test" for n in range(11))
    for destinations, words in (
        ("ALICE@example.com", "itself"),
        ("not-an-address", "no '@domain'"),
        ('a"b@elsewhere.test', "may use letters"),
        (too_many, "10 addresses at most"),
    ):
        refused = anon.post("/self/forwarding", headers=alice, data={"destinations": destinations})
        assert refused.status_code == 400, refused.text
        assert words in refused.json()["msg"], refused.text
    ok = anon.post("/self/forwarding", headers=bob, data={"destinations": "carol@example.com"})
    assert ok.status_code == 200, ok.text
    carol = _login(anon, "carol@example.com", "carol's passphrase")
    ok = anon.post("/self/forwarding", headers=carol, data={"destinations": "alice@example.com"})
    assert ok.status_code == 200, ok.text
    loop = anon.post("/self/forwarding", headers=alice, data={"destinations": "bob@example.com"})
    assert loop.status_code == 400, loop.text
    assert "loop" in loop.json()["msg"]


def test_autoreply_with_dates_and_hostile_text(
    anon: httpx.Client, alice: dict[str, str], ctx: Context
) -> None:
    """An auto-reply's subject, body and dates come back whole; the script quotes them;
    turning it off removes the script and keeps the texts."""
    fields = {
        "subject": 'Out "of" office \\ back soon',
        "body": HOSTILE_BODY,
        "start": "2026-01-01",
        "end": "2099-12-31T23:00:00+00:00",
    }
    on = anon.post("/self/autoreply", headers=alice, data=fields)
    assert on.status_code == 200, on.text
    reply = on.json()["autoreply"]
    assert reply == {
        "enabled": True,
        "subject": fields["subject"],
        "body": HOSTILE_BODY.replace("\r\n", "\n"),
        "start": "2026-01-01",
        "end": "2099-12-31",
    }
    script = _script(ctx, "alice@example.com").read_text()
    assert ':subject "Out \\"of\\" office \\\\ back soon"' in script
    assert '"date" "2026-01-01"' in script and '"date" "2099-12-31"' in script
    off = anon.post("/self/autoreply", headers=alice, data={"enabled": "false"})
    assert off.status_code == 200, off.text
    assert off.json()["autoreply"]["subject"] == fields["subject"]
    assert not _script(ctx, "alice@example.com").exists()
    again = anon.post("/self/autoreply", headers=alice, data={"enabled": "true"})
    assert again.status_code == 200, again.text
    assert again.json()["autoreply"]["body"] == HOSTILE_BODY.replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"subject": "Away"}, "needs a subject and a body"),
        ({"subject": "line\nbreak", "body": "x"}, "line breaks"),
        ({"subject": "x" * 201, "body": "x"}, "too long"),
        ({"subject": "Away", "body": "x" * 10_001}, "too long"),
        ({"subject": "Away", "body": "escape \x1b[2J here"}, "control characters"),
        ({"subject": "Away", "body": "x", "start": "tomorrow"}, "ISO 8601"),
        ({"subject": "Away", "body": "x", "start": "2026-13-01"}, "ISO 8601"),
        ({"subject": "Away", "body": "x", "start": "2030-02-01", "end": "2030-01-01"}, "before"),
        ({"subject": "Away", "body": "x", "end": "2001-01-01"}, "in the past"),
        ({"subject": "Away", "body": "x", "enabled": "maybe"}, "enabled"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"])  # refused before any query
def test_autoreply_refusals(
    anon: httpx.Client, alice: dict[str, str], fields: dict[str, str], words: str
) -> None:
    """Bad auto-reply input is a 400 that says what is wrong, never a 500."""
    refused = anon.post("/self/autoreply", headers=alice, data=fields)
    assert refused.status_code == 400, refused.text
    assert words in refused.json()["msg"], refused.text


def test_password_change_revokes_the_mailbox_tokens(
    api: httpx.Client, anon: httpx.Client, domain_id: int
) -> None:
    """POST /self/password checks the current password, revokes every token of the
    mailbox and answers a new one; an admin's change refuses the new one in turn."""
    first = _login(anon, "alice@example.com", ALICE_PASSWORD)
    second = _login(anon, "alice@example.com", ALICE_PASSWORD)
    wrong = anon.post(
        "/self/password", headers=first, data={"password": "nope", "new_password": "x" * 12}
    )
    assert wrong.status_code == 401, wrong.text
    changed = anon.post(
        "/self/password",
        headers=first,
        data={"password": ALICE_PASSWORD, "new_password": "alice's new passphrase"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["revoked"] == 2
    for old in (first, second):
        refused = anon.get("/self", headers=old)
        assert refused.status_code == 401
        assert "password changed" in refused.json()["msg"]
    fresh = {"Auth-token": changed.json()["token"]}
    assert anon.get("/self", headers=fresh).status_code == 200
    assert (
        anon.post(
            "/self/auth", data={"email": "alice@example.com", "password": ALICE_PASSWORD}
        ).status_code
        == 401
    )
    user_id = anon.get("/self", headers=fresh).json()["user"]["id"]
    by_admin = api.post(
        "/user-change-password",
        data={"id": str(user_id), "password": "set by the admin 1", "domain_id": str(domain_id)},
    )
    assert by_admin.status_code == 200, by_admin.text
    assert anon.get("/self", headers=fresh).status_code == 401


def test_logout_and_a_deleted_mailbox(
    api: httpx.Client, anon: httpx.Client, domain_id: int, ctx: Context
) -> None:
    """A logged-out token is refused; deleting a mailbox refuses its tokens and removes
    its script."""
    token = _login(anon, "alice@example.com", ALICE_PASSWORD)
    assert anon.post("/self/logout", headers=token).status_code == 200
    assert "logged out" in anon.get("/self", headers=token).json()["msg"]
    bob = _login(anon, "bob@example.com", "bob's passphrase")
    on = anon.post(
        "/self/autoreply", headers=bob, data={"subject": "Away", "body": "Back on Monday."}
    )
    assert on.status_code == 200, on.text
    assert _script(ctx, "bob@example.com").is_file()
    gone = api.request("DELETE", "/users", params={"email": "bob@example.com"})
    assert gone.status_code == 200, gone.text
    assert not _script(ctx, "bob@example.com").exists()
    assert anon.get("/self", headers=bob).status_code == 401


def test_admin_sets_forwarding_and_autoreply_by_id_or_email(
    api: httpx.Client, anon: httpx.Client, domain_id: int, ctx: Context
) -> None:
    """/user-forwarding and /user-autoreply take the mailbox by id or by email; the owner
    sees the same settings."""
    users = api.get(f"/users/{domain_id}").json()["users"]
    alice_id = next(u["id"] for u in users if u["email"] == "alice@example.com")
    set_ = api.post(
        "/user-forwarding",
        data={"id": str(alice_id), "destinations": "bob@example.com", "keep_copy": "yes"},
    )
    assert set_.status_code == 200, set_.text
    reply = api.post(
        "/user-autoreply",
        json={"email": "alice@example.com", "subject": "Away", "body": "Back soon.", "end": ""},
    )
    assert reply.status_code == 200, reply.text
    for path in ("/user-forwarding", "/user-autoreply"):
        read = api.get(path, params={"email": "alice@example.com"})
        assert read.status_code == 200, read.text
        assert read.json()["forwarding"]["destinations"] == ["bob@example.com"]
        assert read.json()["autoreply"]["enabled"] is True
    mine = anon.get("/self", headers=_login(anon, "alice@example.com", ALICE_PASSWORD))
    assert mine.json()["forwarding"]["keep_copy"] is True
    for fields in ({}, {"id": str(alice_id), "email": "alice@example.com"}):
        refused = api.get("/user-forwarding", params=fields)
        assert refused.status_code == 400, refused.text
    for fields in ({"id": "999"}, {"email": "nobody@example.com"}):
        missing = api.get("/user-autoreply", params=fields)
        assert missing.status_code == 404, missing.text
    audit = api.get("/audit", params={"action": "set_forwarding"}).json()
    assert audit["entries"][0]["target"] == "alice@example.com"


def test_mailbox_logins_are_throttled(anon: httpx.Client, domain_id: int, ctx: Context) -> None:
    """Failed mailbox logins count like admin ones: past the limit, 429 with Retry-After."""
    limit = ctx.settings.login_max_failures
    for _ in range(limit):
        anon.post("/self/auth", data={"email": "alice@example.com", "password": "wrong"})
    blocked = anon.post(
        "/self/auth", data={"email": "alice@example.com", "password": ALICE_PASSWORD}
    )
    assert blocked.status_code == 429, blocked.text
    assert "Retry-After" in blocked.headers
    # The admin's own counter is another: the admin still logs in from here.
    admin = anon.post("/auth", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert admin.status_code == 200, admin.text
