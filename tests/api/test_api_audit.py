"""GET /audit: the log of changes, filtered, paged newest first, narrowed to the caller's
domains, and free of the secrets the changes handled."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer
from tests.pki import self_signed

from mailctl.services import admins, aliases, domains, mailboxes
from mailctl.services.context import Actor, Context
from mailctl.storage.tables import AuditEntry

# Per backend unless marked: the filters, the narrowing by grants and keys, the cursor and
# the time comparisons are SQL each dialect runs (and MariaDB keeps whole seconds).
HOST = Actor("host")
ALICE = Actor("alice", "192.0.2.10")
BOB = Actor("bob", "192.0.2.20")
# Digits of another script: datetime would read them, the field takes ASCII only.
FULLWIDTH_YEAR = "\uff12\uff10\uff12\uff16"


def _login(anon: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = anon.post("/auth", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


def _entries(client: httpx.Client, **params: str) -> list[dict[str, object]]:
    answer = client.get("/audit", params=params)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, object]] = answer.json()["entries"]
    return entries


def _at(ctx: Context, moments: list[tuple[str, datetime]]) -> None:
    """Entries of the action ``tick`` at the given moments, in that order."""
    with ctx.uow() as uow:
        for target, moment in moments:
            uow.session.add(
                AuditEntry(at=moment, admin="clock", action="tick", target=target, domain=None)
            )
        uow.commit()


def test_entries_come_newest_first_with_every_field(api: httpx.Client) -> None:
    """A change made through the API is listed with its admin, time, target, domain and the
    address it came from; the newest first."""
    made = api.post("/domains", data={"domain": "example.com"})
    assert made.status_code == 200, made.text
    domain_id = made.json()["domain"]["id"]
    user = api.post(f"/user/{domain_id}", data={"email": "alice", "password": "pw-alice-12"})
    assert user.status_code == 200, user.text
    answer = api.get("/audit")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"result", "entries", "next_after"}
    assert body["result"] is True
    assert body["next_after"] is None
    newest, oldest, first = body["entries"]
    assert (first["admin"], first["action"], first["target"]) == ("init", "create_admin", ADMIN)
    assert newest["id"] > oldest["id"]
    assert {k: newest[k] for k in ("admin", "action", "target", "domain", "client_address")} == {
        "admin": ADMIN,
        "action": "create_user",
        "target": "alice@example.com",
        "domain": "example.com",
        "client_address": "127.0.0.1",
    }
    assert (oldest["action"], oldest["target"], oldest["domain"]) == (
        "create_domain",
        "example.com",
        "example.com",
    )
    assert set(newest) == {
        "id",
        "at",
        "admin",
        "action",
        "target",
        "domain",
        "client_address",
        "detail",
    }
    at = datetime.fromisoformat(str(newest["at"]))
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60


def test_each_change_of_a_domain_names_it_and_admin_changes_name_none(
    api: httpx.Client, ctx: Context
) -> None:
    """Mailboxes, aliases, grants and deletes carry their domain; an admin's creation none.
    A deleted domain's entries keep its name."""
    view, _ = domains.create_domain(ctx, HOST, "gone.example", "a@gone.example", "pw-gone-123")
    aliases.add_alias(ctx, HOST, view.id, "info", "a@gone.example")
    admins.create_admin(ctx, HOST, "owner", "owner-password-1", "domain_admin", "gone.example")
    admins.revoke(ctx, HOST, "owner", "gone.example")
    domains.delete_domain(ctx, HOST, "gone.example")
    found = [(e["action"], e["target"], e["domain"]) for e in _entries(api)]
    assert found == [
        ("delete_domain", "gone.example", "gone.example"),
        ("revoke_domain", "owner", "gone.example"),
        ("create_admin", "owner", None),
        ("create_alias", "info@gone.example", "gone.example"),
        ("create_user", "a@gone.example", "gone.example"),
        ("create_domain", "gone.example", "gone.example"),
        ("create_admin", ADMIN, None),  # by `mailctl init`
    ]
    kept = _entries(api, domain="gone.example")
    assert len(kept) == 5
    assert all(e["domain"] == "gone.example" for e in kept)


# Once, on SQLite: which domain an entry names is decided by the services, in Python.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_archives_and_trash_restores_name_their_domain(api: httpx.Client) -> None:
    """DKIM keys, an export, an import in place of the domain and trash restores (of a
    mailbox, of a domain) each name the domain; a certificate names none."""
    made = api.post(
        "/domains",
        data={"domain": "example.com", "username": "ann", "password": "pw-ann-12345"},
    )
    assert made.status_code == 200, made.text
    assert api.post("/dkim/add-new-domain", data={"domain": "example.com"}).status_code == 200
    gone = api.request("DELETE", "/users", data={"email": "ann@example.com"})
    assert gone.status_code == 200, gone.text
    restored = api.post("/trash/restore", data={"id": gone.json()["trash_id"]})
    assert restored.status_code == 200, restored.text
    archive = api.get("/export/domain", params={"domain": "example.com"})
    assert archive.status_code == 200, archive.text
    imported = api.post(
        "/import/domain",
        files={"archive": ("example.com.tar.gz", archive.content)},
        data={"replace": "true"},
    )
    assert imported.status_code == 200, imported.text
    removed = api.request("DELETE", "/domain", data={"domain": "example.com"})
    assert api.post("/trash/restore", data={"id": removed.json()["trash_id"]}).status_code == 200
    chain, key = self_signed("mail.example.com")
    upload = api.post(
        "/ssl/upload",
        files={"ssl_certificate": ("c.pem", chain), "ssl_certificate_key": ("k.pem", key)},
    )
    assert upload.status_code == 200, upload.text

    found = [(e["action"], e["domain"]) for e in _entries(api)]
    certificate, *rest = found
    assert certificate[1] is None
    assert rest == [
        ("restore_domain", "example.com"),
        ("delete_domain", "example.com"),
        ("import_domain", "example.com"),
        ("delete_domain", "example.com"),  # the one the import replaced
        ("export_domain", "example.com"),
        ("restore_user", "example.com"),
        ("delete_user", "example.com"),
        ("create_dkim_key", "example.com"),
        ("create_user", "example.com"),
        ("create_domain", "example.com"),
        ("create_admin", None),
    ]


def test_filters_by_admin_domain_and_action_are_exact(api: httpx.Client, ctx: Context) -> None:
    """admin, domain and action each narrow the list, together too, matching whole values."""
    one, _ = domains.create_domain(ctx, ALICE, "one.example")
    two, _ = domains.create_domain(ctx, BOB, "two.example")
    mailboxes.create_user(ctx, ALICE, one.id, "a@one.example", "pw-a-123456")
    mailboxes.create_user(ctx, BOB, one.id, "b@one.example", "pw-b-123456")
    mailboxes.create_user(ctx, ALICE, two.id, "c@two.example", "pw-c-123456")

    def targets(**params: str) -> list[object]:
        return [e["target"] for e in _entries(api, **params)]

    assert targets(admin="alice") == ["c@two.example", "a@one.example", "one.example"]
    assert targets(admin="ALICE") == []
    assert targets(admin="ali") == []
    assert targets(domain="one.example") == ["b@one.example", "a@one.example", "one.example"]
    assert targets(domain="ONE.example") == targets(domain="one.example")  # names are normalised
    assert targets(action="create_domain") == ["two.example", "one.example"]
    assert targets(action="create") == []
    assert targets(admin="bob", domain="one.example", action="create_user") == ["b@one.example"]
    assert targets(domain="nowhere.example") == []
    addresses = {e["client_address"] for e in _entries(api, admin="bob")}
    assert addresses == {"192.0.2.20"}


def test_pages_walk_the_log_newest_first_once(api: httpx.Client, ctx: Context) -> None:
    """limit and after (the next_after of the page before) cover every entry once, newest
    first, whatever the filter; the last page says there is no next."""
    for name in ("a.example", "b.example"):
        domains.create_domain(ctx, HOST, name)
    with ctx.uow() as uow:
        uow.audit.record_many(HOST, "tick", [f"t{n}" for n in range(7)], domain="a.example")
        uow.audit.record_many(HOST, "tick", [f"u{n}" for n in range(3)], domain="b.example")
        uow.commit()
    everything = [e["id"] for e in _entries(api)]
    assert everything == sorted(everything, reverse=True)
    assert len(everything) == 13  # the first admin's entry too

    for params, expected in (
        ({}, everything),
        ({"domain": "a.example"}, [e["id"] for e in _entries(api, domain="a.example")]),
    ):
        seen: list[object] = []
        after: int | None = None
        pages = 0
        while True:
            answer = api.get(
                "/audit",
                params={**params, "limit": "3", **({"after": str(after)} if after else {})},
            ).json()
            assert len(answer["entries"]) <= 3
            seen += [e["id"] for e in answer["entries"]]
            pages += 1
            after = answer["next_after"]
            if after is None:
                break
            assert after == answer["entries"][-1]["id"]
        assert seen == expected
        assert pages == -(-len(expected) // 3)
    assert len(_entries(api, domain="a.example")) == 8


def test_without_a_limit_a_page_holds_one_hundred(api: httpx.Client, ctx: Context) -> None:
    """The log is never answered whole: 100 entries unless asked for more, at most 1,000."""
    with ctx.uow() as uow:
        uow.audit.record_many(HOST, "tick", [f"t{n}" for n in range(1005)])
        uow.commit()
    first = api.get("/audit").json()
    assert len(first["entries"]) == 100
    # Ids 1006 down to 2, and 1: the first admin's entry.
    assert first["next_after"] == first["entries"][-1]["id"] == 907
    rest = api.get("/audit", params={"after": str(first["next_after"])}).json()
    assert [e["id"] for e in rest["entries"]] == list(range(906, 806, -1))
    most = api.get("/audit", params={"limit": "1000"}).json()
    assert len(most["entries"]) == 1000
    assert most["next_after"] == 7
    end = api.get("/audit", params={"limit": "1000", "after": "7"}).json()
    assert [e["id"] for e in end["entries"]] == [6, 5, 4, 3, 2, 1]
    assert end["next_after"] is None


def test_since_and_until_take_iso_times_and_unix_seconds(api: httpx.Client, ctx: Context) -> None:
    """since and until include their ends; an offset is honoured; Unix seconds work too."""
    _at(
        ctx,
        [
            ("jan", datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)),
            ("jun", datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)),
            ("dec", datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)),
        ],
    )

    def targets(**params: str) -> list[object]:
        return [e["target"] for e in _entries(api, action="tick", **params)]

    assert targets(since="2026-06-01T12:00:00Z") == ["dec", "jun"]
    assert targets(since="2026-06-01T12:00:01Z") == ["dec"]
    assert targets(until="2026-06-01T12:00:00+00:00") == ["jun", "jan"]
    # 14:00 at +02:00 is noon UTC; a time without an offset is UTC.
    assert targets(since="2026-06-01T14:00:00+02:00") == ["dec", "jun"]
    assert targets(until="2026-06-01 11:59:59") == ["jan"]
    june = str(int(datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()))
    assert targets(since=june) == ["dec", "jun"]
    assert targets(since=june + ".5") == ["dec"]
    assert targets(since="1767225600", until=june) == ["jun", "jan"]  # 2026-01-01T00:00Z
    assert targets(since="2026-07-01T00:00:00Z", until="2026-05-01T00:00:00Z") == []
    (dec,) = _entries(api, since="2026-12-01T00:00:00Z", until="2026-12-02T00:00:00Z")
    assert dec["at"] == "2026-12-01T23:59:59+00:00"


def test_a_domain_admin_reads_only_its_domains_entries(
    server: LiveServer, anon: httpx.Client, api: httpx.Client
) -> None:
    """Entries of other domains, and of admins and keys, are not shown to a domain admin;
    another domain asked for by name is a 404 worded as for a domain that does not exist.
    A key bound to one of its domains reads that one; a domain taken back disappears."""
    ctx = server.ctx
    mine, _ = domains.create_domain(ctx, HOST, "mine.example", "a@mine.example", "pw-mine-123")
    domains.create_domain(ctx, HOST, "also.example", "b@also.example", "pw-also-123")
    domains.create_domain(ctx, HOST, "other.example", "c@other.example", "pw-other-12")
    admins.create_admin(
        ctx, HOST, "owner", "owner-password-1", "domain_admin", "mine.example,also.example"
    )
    aliases.add_alias(ctx, HOST, mine.id, "info", "a@mine.example")
    owner = _login(anon, "owner", "owner-password-1")

    listed = anon.get("/audit", headers=owner)
    assert listed.status_code == 200, listed.text
    found = [(e["action"], e["target"]) for e in listed.json()["entries"]]
    assert found == [
        ("create_alias", "info@mine.example"),
        ("create_user", "b@also.example"),
        ("create_domain", "also.example"),
        ("create_user", "a@mine.example"),
        ("create_domain", "mine.example"),
    ]
    assert {e["domain"] for e in listed.json()["entries"]} == {"mine.example", "also.example"}

    other = anon.get("/audit", headers=owner, params={"domain": "other.example"})
    assert other.status_code == 404
    assert other.json() == {"result": False, "msg": "The domain other.example does not exist."}
    nowhere = anon.get("/audit", headers=owner, params={"domain": "nowhere.example"})
    assert nowhere.status_code == 404
    assert nowhere.json()["msg"] == "The domain nowhere.example does not exist."
    own = anon.get("/audit", headers=owner, params={"domain": "also.example"}).json()
    assert {e["domain"] for e in own["entries"]} == {"also.example"}
    assert anon.get("/audit", headers=owner, params={"admin": ADMIN}).json()["entries"] == []

    made = anon.post(
        "/auth/keys",
        headers=owner,
        data={"name": "monitor", "access": "read", "domains": "mine.example"},
    )
    assert made.status_code == 200, made.text
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    by_key = anon.get("/audit", headers=key)
    assert by_key.status_code == 200, by_key.text
    assert {e["domain"] for e in by_key.json()["entries"]} == {"mine.example"}
    assert anon.get("/audit", headers=key, params={"domain": "also.example"}).status_code == 404

    admins.revoke(ctx, HOST, "owner", "also.example")
    after = anon.get("/audit", headers=owner).json()["entries"]
    assert {e["domain"] for e in after} == {"mine.example"}
    assert len(_entries(api)) > len(after)


# Once, on SQLite: these fields are refused before any query is made.
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "'since' must be an ISO 8601 date-time"),
        ({"until": "2026-12-08"}, "'until' must be an ISO 8601 date-time"),
        ({"since": "-5"}, "'since' must be an ISO 8601 date-time"),
        ({"since": "1e9"}, "'since' must be an ISO 8601 date-time"),
        ({"until": "2026-13-01T00:00:00"}, "'until' must be an ISO 8601 date-time"),
        ({"until": FULLWIDTH_YEAR + "-12-01T00:00:00"}, "'until' must be an ISO 8601 date-time"),
        ({"since": "1969-12-31T23:59:59Z"}, "'since' must be a moment from 1970 to 9999."),
        ({"limit": "0"}, "'limit' must be a whole number from 1 to 1000."),
        ({"limit": "1001"}, "'limit' must be a whole number from 1 to 1000."),
        ({"after": "x"}, "'after' must be a whole number"),
        ({"admin": "a" * 65}, "'admin' must be at most 64 characters."),
        ({"action": "a" * 65}, "'action' must be at most 64 characters."),
        ({"domain": "not a domain"}, "The domain name must not contain spaces"),
    ],
)
def test_bad_fields_are_a_clear_400(
    api: httpx.Client, params: dict[str, str], message: str
) -> None:
    """A time that is neither ISO 8601 nor Unix seconds, a page out of range, a name too
    long or no domain name: a 400 in the envelope that names the field."""
    answer = api.get("/audit", params=params)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["result"] is False
    assert body["msg"].startswith(message)


# Once, on SQLite: how the fields arrive is decided before the database.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_fields_may_come_as_a_form_on_get(
    api: httpx.Client, anon: httpx.Client, ctx: Context
) -> None:
    """Like every field, the filters may be sent as curl -F on a GET; without a token, 401."""
    domains.create_domain(ctx, ALICE, "one.example")
    domains.create_domain(ctx, BOB, "two.example")
    answer = api.request("GET", "/audit", files={"admin": (None, "bob"), "limit": (None, "5")})
    assert answer.status_code == 200, answer.text
    assert [e["target"] for e in answer.json()["entries"]] == ["two.example"]
    refused = anon.get("/audit")
    assert refused.status_code == 401
    assert refused.json()["result"] is False


def _pem_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM block: any of them in an entry would leak part of the key."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


# Once, on SQLite: an entry's text is made by the services before it reaches the database.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_secret_reaches_an_entry(api: httpx.Client, anon: httpx.Client, ctx: Context) -> None:
    """The changes that handle secrets (mailbox passwords, admin passwords, logins, tokens,
    API keys, DKIM keys, a certificate's key) are all in the log, and none of the secrets:
    neither as given, nor as stored (hashes, private keys)."""
    secrets: list[str] = []

    def secret(value: str) -> str:
        secrets.append(value)
        return value

    made = api.post(
        "/domains",
        data={
            "domain": "example.com",
            "username": "first@example.com",
            "password": secret("first-Mailbox-pw-1"),
        },
    )
    assert made.status_code == 200, made.text
    domain_id = made.json()["domain"]["id"]
    user = api.post(
        f"/user/{domain_id}", data={"email": "alice", "password": secret("alice-Mailbox-pw-2")}
    )
    assert user.status_code == 200, user.text
    batch = api.post(
        f"/user/{domain_id}/batch",
        json={
            "users": [
                {"email": "bob@example.com", "password": secret("bob-Mailbox-pw-3")},
                {
                    "email": "carol@example.com",
                    "password_hash": secret("{SHA512-CRYPT}$6$saltsalt$" + "c" * 86),
                },
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    changed = api.post(
        "/user-change-password",
        data={
            "id": str(user.json()["user"]["id"]),
            "domain_id": str(domain_id),
            "password": secret("alice-New-pw-4"),
        },
    )
    assert changed.status_code == 200, changed.text

    admin = api.post(
        "/admins", data={"username": "second", "password": secret("second-Admin-pw-5")}
    )
    assert admin.status_code == 200, admin.text
    wrong = anon.post("/auth", data={"username": "second", "password": secret("not-It-pw-6")})
    assert wrong.status_code == 401
    token = _login(anon, "second", "second-Admin-pw-5")
    secrets.append(token["Auth-token"])
    renewed = anon.post(
        "/auth/password",
        headers=token,
        data={"password": "second-Admin-pw-5", "new_password": secret("second-New-pw-7")},
    )
    assert renewed.status_code == 200, renewed.text
    fresh = {"Auth-token": secret(renewed.json()["token"])}
    key = anon.post("/auth/keys", headers=fresh, data={"name": "backup"})
    assert key.status_code == 200, key.text
    secrets.append(key.json()["key"])
    secrets.append(key.json()["key"].rsplit("_", 1)[1])  # the secret part alone
    assert anon.post("/auth/logout", headers=fresh).status_code == 200

    dkim = api.post("/dkim/add-new-domain", data={"domain": "example.com"})
    assert dkim.status_code == 200, dkim.text
    chain, pem_key = self_signed("mail.example.com")
    upload = api.post(
        "/ssl/upload",
        files={
            "ssl_certificate": ("fullchain.pem", chain, "application/x-pem-file"),
            "ssl_certificate_key": ("privkey.pem", pem_key, "application/x-pem-file"),
            "name": (None, b"mail.example.com"),
        },
    )
    assert upload.status_code == 200, upload.text

    with ctx.uow() as uow:
        for email in ("first", "alice", "bob", "carol"):
            stored = uow.users.by_email(f"{email}@example.com")
            assert stored is not None
            secrets.append(stored.password)
        for name in (ADMIN, "second"):
            row = uow.admins.by_username(name)
            assert row is not None
            secrets.append(row.password)
        (dkim_key,) = uow.dkim_keys.for_domain(domain_id)
        secrets.extend(_pem_lines(dkim_key.private_key))
        secrets.append(uow.secrets.get("jwt_secret") or "")
    secrets.extend(_pem_lines(pem_key.decode()))
    secrets.append(ADMIN_PASSWORD)

    answer = api.get("/audit", params={"limit": "1000"})
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    actions = {e["action"] for e in entries}
    assert {
        "create_domain",
        "create_user",
        "change_password",
        "create_admin",
        "change_admin_password",
        "create_api_key",
        "logout",
        "create_dkim_key",
    } <= actions
    assert any("certificate" in action for action in actions), actions
    text = json.dumps(entries)
    leaked = [value for value in secrets if value and value in text]
    assert leaked == []
    assert len([value for value in secrets if value]) >= 20
