"""Every operation of the API, aimed at a domain the caller may not see, answers as if
that domain did not exist (or 403 where only a superadmin may act), and changes nothing.

The operations come from the app's own OpenAPI document: one that takes a token and is
not classified below fails the walk, so a new route must say here how it is narrowed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer

from mailctl.api.app import create_app
from mailctl.domain import totp
from mailctl.services import admins, domains
from mailctl.services.context import Actor

# Per backend: the narrowed listings are SQL of their own (sub-selects of an admin's grants
# and of a key's domains), and mailboxes, aliases and domains are looked up by name, which
# each dialect compares by its own collation rules.

HOST = Actor("test")
MINE, OTHER, GHOST = "mine.example", "other.example", "ghost.example"
GHOST_ID = "999"
OWNER_PASSWORD = "owner-password-1"
BOB_PASSWORD = "bob-password-22"
# The operations that take no token: answered alike for everyone.
PUBLIC = {
    ("GET", "/ping"),
    ("POST", "/auth"),
    ("POST", "/self/auth"),
    ("GET", "/.well-known/acme-challenge/{token}"),
}
# A mailbox owner's own operations: they take a mailbox token only, so every admin's
# token and key is refused them (401), whatever its scope.
MAILBOX_OWN = (
    ("GET", "/self"),
    ("POST", "/self/password"),
    ("POST", "/self/forwarding"),
    ("POST", "/self/autoreply"),
    ("POST", "/self/logout"),
)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@dataclass(frozen=True)
class Call:
    """One request, its fields in the query string (GET, DELETE) or the form (POST)."""

    method: str
    path: str
    fields: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None

    def send(self, client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
        if self.json is not None:
            return client.request(self.method, self.path, headers=headers, json=self.json)
        if self.content is not None:
            kind = {"Content-Type": "application/gzip"}
            return client.request(
                self.method,
                self.path,
                headers=headers | kind,
                params=self.fields,
                content=self.content,
            )
        if self.method in ("GET", "DELETE"):
            return client.request(self.method, self.path, headers=headers, params=self.fields)
        return client.request(self.method, self.path, headers=headers, data=self.fields)


@dataclass(frozen=True)
class Caller:
    """Who walks: a login token, or an API key (refused what only a login may do)."""

    name: str
    headers: dict[str, str]
    is_key: bool


@dataclass
class World:
    """What the superadmin set up: mine.example for the callers, other.example (B) with
    mailboxes, an alias, a DKIM key, a deleted mailbox, its own admin and a key of its own."""

    mine_id: str
    other_id: str
    other_mailbox_id: str
    trash_id: str
    other_key_id: str
    superadmin_token_id: str
    archive: bytes
    callers: list[Caller] = field(default_factory=list)


@dataclass(frozen=True)
class Aim:
    """A request aimed at B, and the same request aimed at something that does not exist;
    ``same`` lists the values of the first that the second holds in their place."""

    at_other: Call
    at_ghost: Call
    same: tuple[tuple[str, str], ...]


def _aim(call: Call, world: World, **extra: str) -> Aim:
    """``call`` at B, and the same with B's names and ids swapped for ones nobody has."""
    given = {
        OTHER: GHOST,
        world.other_id: GHOST_ID,
        world.other_mailbox_id: "99999",
        world.other_key_id: "0123456789abcdef",
        world.trash_id: world.trash_id.replace(OTHER, GHOST),
        **extra,
    }
    # The longest first: a trash id holds B's name, and is swapped whole.
    swaps = dict(sorted(given.items(), key=lambda item: -len(item[0])))

    def swapped(text: str) -> str:
        for old, new in swaps.items():
            text = re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w-])", new, text)
        return text

    ghost = replace(
        call,
        path=swapped(call.path),
        fields={k: swapped(v) for k, v in call.fields.items()},
        json=None if call.json is None else _swapped_json(call.json, swapped),
    )
    return Aim(call, ghost, tuple(swaps.items()))


def _swapped_json(value: Any, swapped: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return swapped(value)
    if isinstance(value, list):
        return [_swapped_json(v, swapped) for v in value]
    if isinstance(value, dict):
        return {k: _swapped_json(v, swapped) for k, v in value.items()}
    return value


def _hidden(world: World) -> dict[tuple[str, str], list[Call]]:
    """The operations bound to a domain, each aimed at other.example (B): 404, exactly
    what the same operation answers for a domain that does not exist."""
    b, mailbox = world.other_id, f"b@{OTHER}"
    password = "new-password-123"
    return {
        ("GET", "/users/{domain_id}"): [Call("GET", f"/users/{b}")],
        ("POST", "/user/{domain_id}"): [
            Call("POST", f"/user/{b}", {"email": f"new@{OTHER}", "password": password})
        ],
        ("POST", "/users/{domain_id}"): [
            Call("POST", f"/users/{b}", {"email": f"new@{OTHER}", "password": password})
        ],
        ("POST", "/user/{domain_id}/batch"): [
            Call(
                "POST",
                f"/user/{b}/batch",
                json={"users": [{"email": f"new@{OTHER}", "password": password}]},
            )
        ],
        ("POST", "/user-change-password"): [
            Call(
                "POST",
                "/user-change-password",
                {"id": world.other_mailbox_id, "password": password, "domain_id": b},
            )
        ],
        ("DELETE", "/users"): [Call("DELETE", "/users", {"email": mailbox})],
        ("POST", "/user-quota"): [
            Call("POST", "/user-quota", {"email": mailbox, "quota": "1G"}),
            Call("POST", "/user-quota", {"id": world.other_mailbox_id, "quota": "1G"}),
        ],
        ("GET", "/domain-limits"): [Call("GET", "/domain-limits", {"domain": OTHER})],
        ("GET", "/aliases/{domain_id}"): [Call("GET", f"/aliases/{b}")],
        ("POST", "/alias/{domain_id}"): [
            Call("POST", f"/alias/{b}", {"source": f"x@{OTHER}", "destination": mailbox})
        ],
        ("DELETE", "/aliases"): [
            Call("DELETE", "/aliases", {"source": f"alias@{OTHER}"}),
            Call("DELETE", "/aliases", {"source": f"alias@{OTHER}", "destination": mailbox}),
        ],
        ("POST", "/dkim/add-new-domain"): [
            Call("POST", "/dkim/add-new-domain", {"domain": OTHER}),
            Call("POST", "/dkim/add-new-domain", {"domain": OTHER, "rotate": "true"}),
        ],
        ("GET", "/dkim"): [Call("GET", "/dkim", {"domain": OTHER})],
        ("DELETE", "/dkim"): [Call("DELETE", "/dkim", {"domain": OTHER, "selector": "mail"})],
        ("GET", "/dkim/{domain}"): [Call("GET", f"/dkim/{OTHER}")],
        ("GET", "/dkim/{domain}/keys"): [Call("GET", f"/dkim/{OTHER}/keys")],
        ("GET", "/export/domain"): [
            Call("GET", "/export/domain", {"domain": OTHER}),
            Call("GET", "/export/domain", {"domain": OTHER, "format": "json"}),
        ],
        ("POST", "/trash/restore"): [Call("POST", "/trash/restore", {"id": world.trash_id})],
        ("GET", "/user-forwarding"): [
            Call("GET", "/user-forwarding", {"email": mailbox}),
            Call("GET", "/user-forwarding", {"id": world.other_mailbox_id}),
        ],
        ("POST", "/user-forwarding"): [
            Call("POST", "/user-forwarding", {"email": mailbox, "destinations": f"a@{MINE}"}),
            Call("POST", "/user-forwarding", {"id": world.other_mailbox_id, "destinations": ""}),
        ],
        ("GET", "/user-autoreply"): [
            Call("GET", "/user-autoreply", {"email": mailbox}),
            Call("GET", "/user-autoreply", {"id": world.other_mailbox_id}),
        ],
        ("POST", "/user-autoreply"): [
            Call(
                "POST", "/user-autoreply", {"email": mailbox, "subject": "Away", "body": "Later."}
            ),
            Call("POST", "/user-autoreply", {"id": world.other_mailbox_id, "enabled": "false"}),
        ],
    }


def _like_ghost(world: World) -> list[Call]:
    """B's things named through an operation of mine.example: refused (4xx) exactly as
    names that do not exist."""
    mine, password = world.mine_id, "new-password-123"
    return [
        Call(
            "POST",
            "/user-change-password",
            {"id": world.other_mailbox_id, "password": password, "domain_id": mine},
        ),
        Call("POST", f"/user/{mine}", {"email": f"new@{OTHER}", "password": password}),
        Call(
            "POST",
            f"/user/{mine}/batch",
            json={"users": [{"email": f"new@{OTHER}", "password": password}]},
        ),
        Call("POST", f"/alias/{mine}", {"source": f"x@{OTHER}", "destination": f"a@{MINE}"}),
        Call("POST", f"/alias/{mine}", {"source": f"@{OTHER}", "destination": f"a@{MINE}"}),
        # A superadmin reads a deleted domain's entries: only to others is B a 404.
        Call("GET", "/audit", {"domain": OTHER}),
    ]


def _superadmin_only(world: World) -> dict[tuple[str, str], list[Call]]:
    """What only a superadmin may do, aimed at B, its admin bob, or the caller's own
    rights: 403, whatever it aims at."""
    return {
        ("GET", "/admins"): [Call("GET", "/admins")],
        ("POST", "/admins"): [
            Call(
                "POST",
                "/admins",
                {
                    "username": "mallory",
                    "password": "mallory-pass-1",
                    "role": "domain_admin",
                    "domains": OTHER,
                },
            )
        ],
        ("DELETE", "/admins"): [Call("DELETE", "/admins", {"username": "bob"})],
        ("POST", "/admin/disable"): [Call("POST", "/admin/disable", {"username": "bob"})],
        ("POST", "/admin/enable"): [Call("POST", "/admin/enable", {"username": "bob"})],
        ("POST", "/admin/role"): [
            Call("POST", "/admin/role", {"username": "owner", "role": "superadmin"}),
            Call("POST", "/admin/role", {"username": "bob", "role": "superadmin"}),
        ],
        ("POST", "/admin/domains"): [
            Call("POST", "/admin/domains", {"username": "owner", "domains": OTHER})
        ],
        ("DELETE", "/admin/domains"): [
            Call("DELETE", "/admin/domains", {"username": "bob", "domains": OTHER})
        ],
        ("POST", "/domains"): [
            Call("POST", "/domains", {"domain": OTHER}),
            Call("POST", "/domains", {"domain": "new.example"}),
        ],
        ("DELETE", "/domain"): [Call("DELETE", "/domain", {"domain": OTHER})],
        ("POST", "/domain-limits"): [
            Call("POST", "/domain-limits", {"domain": OTHER, "max_mailboxes": "100"}),
            Call("POST", "/domain-limits", {"domain": MINE, "max_mailboxes": "100"}),
        ],
        ("POST", "/ssl/upload"): [
            Call(
                "POST",
                "/ssl/upload",
                {"ssl_certificate": PEM, "ssl_certificate_key": PEM, "hostname": f"mail.{OTHER}"},
            )
        ],
        ("GET", "/ssl/certificates"): [Call("GET", "/ssl/certificates")],
        ("POST", "/ssl/get-left-days"): [
            Call("POST", "/ssl/get-left-days", {"hostname": f"mail.{OTHER}"})
        ],
        ("POST", "/ssl/letsencrypt/install"): [
            Call("POST", "/ssl/letsencrypt/install", {"hostname": f"mail.{OTHER}"})
        ],
        ("GET", "/jobs/{job_id}"): [Call("GET", "/jobs/0123456789abcdef")],
        ("POST", "/import/domain"): [
            Call("POST", "/import/domain", {"replace": "true"}, content=world.archive)
        ],
        ("POST", "/admin/totp/reset"): [Call("POST", "/admin/totp/reset", {"username": "bob"})],
        ("POST", "/auth/totp/policy"): [Call("POST", "/auth/totp/policy", {"required": "true"})],
    }


def _listings() -> dict[tuple[str, str], list[Call]]:
    """The listings: 200, narrowed to the caller's domains, B not in them."""
    return {
        ("GET", "/domains"): [
            Call("GET", "/domains"),
            Call("GET", "/domains", {"search": "other"}),
            Call("GET", "/domains", {"limit": "1", "after": "1"}),
        ],
        ("GET", "/trash"): [Call("GET", "/trash")],
        ("GET", "/audit"): [
            Call("GET", "/audit"),
            Call("GET", "/audit", {"action": "create_user", "limit": "1000"}),
        ],
    }


# The caller's own account: what a login token and an API key each get. A password change
# refuses every token of before, the walking one too: it comes last.
OWN_OPERATIONS = (
    ("GET", "/auth/me"),
    ("GET", "/auth/keys"),
    ("POST", "/auth/keys"),
    ("DELETE", "/auth/keys"),
    ("GET", "/auth/tokens"),
    ("DELETE", "/auth/tokens"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/password"),
    ("GET", "/auth/totp"),
    ("POST", "/auth/totp"),
    ("POST", "/auth/totp/confirm"),
    ("DELETE", "/auth/totp"),
)


def _login(anon: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = anon.post("/auth", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


def _key(anon: httpx.Client, headers: dict[str, str], **fields: str) -> tuple[str, str]:
    answer = anon.post("/auth/keys", headers=headers, data={"name": "walk", **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()["key"], answer.json()["api_key"]["id"]


@pytest.fixture
def world(server: LiveServer, api: httpx.Client, anon: httpx.Client) -> World:
    """mine.example for the callers; other.example (B) full of things they must not reach."""
    ctx = server.ctx
    mine, _ = domains.create_domain(ctx, HOST, MINE, f"a@{MINE}", "password-a-1")
    other, _ = domains.create_domain(ctx, HOST, OTHER, f"b@{OTHER}", "password-b-1")
    for email in (f"b2@{OTHER}", f"b3@{OTHER}"):
        made = api.post(f"/user/{other.id}", data={"email": email, "password": "password-b-2"})
        assert made.status_code == 200, made.text
    mailbox_id = str(made.json()["user"]["id"])
    for domain_id, name in ((mine.id, MINE), (other.id, OTHER)):
        alias = {"source": f"alias@{name}", "destination": f"a@{MINE}"}
        assert api.post(f"/alias/{domain_id}", data=alias).status_code == 200
    dkim = api.post("/dkim/add-new-domain", data={"domain": OTHER, "key_type": "ed25519"})
    assert dkim.status_code == 200, dkim.text
    deleted = api.request("DELETE", "/users", params={"email": f"b2@{OTHER}"})
    assert deleted.status_code == 200, deleted.text
    archive = api.get("/export/domain", params={"domain": OTHER})
    assert archive.status_code == 200, archive.text
    admins.create_admin(ctx, HOST, "owner", OWNER_PASSWORD, "domain_admin", MINE)
    admins.create_admin(ctx, HOST, "bob", BOB_PASSWORD, "domain_admin", OTHER)
    _, other_key_id = _key(anon, dict(api.headers), domains=OTHER)
    tokens = api.get("/auth/tokens").json()["tokens"]
    owner = _login(anon, "owner", OWNER_PASSWORD)
    superadmins_key, _ = _key(anon, dict(api.headers), domains=MINE)
    owners_key, _ = _key(anon, owner, domains=MINE)
    return World(
        mine_id=str(mine.id),
        other_id=str(other.id),
        other_mailbox_id=mailbox_id,
        trash_id=deleted.json()["trash_id"],
        other_key_id=other_key_id,
        superadmin_token_id=tokens[0]["id"],
        archive=archive.content,
        callers=[
            Caller("domain admin's token", owner, is_key=False),
            Caller(
                "superadmin's key bound to mine.example",
                {"Authorization": f"Bearer {superadmins_key}"},
                is_key=True,
            ),
            Caller(
                "domain admin's key bound to mine.example",
                {"Auth-token": owners_key},
                is_key=True,
            ),
        ],
    )


def _state(api: httpx.Client, world: World) -> dict[str, Any]:
    """What the superadmin sees of everything the walk aims at."""
    other = world.other_id
    reads = {
        "domains": api.get("/domains"),
        "users": api.get(f"/users/{other}"),
        "aliases": api.get(f"/aliases/{other}"),
        "dkim": api.get(f"/dkim/{OTHER}/keys"),
        "trash": api.get("/trash"),
        "admins": api.get("/admins"),
        "keys": api.get("/auth/keys", params={"admin": "*"}),
        "certificates": api.get("/ssl/certificates"),
        "settings": api.get("/user-forwarding", params={"email": f"b@{OTHER}"}),
    }
    for name, answer in reads.items():
        assert answer.status_code == 200, (name, answer.text)
    return {name: answer.json() for name, answer in reads.items()}


def _same_refusal(aim: Aim, client: httpx.Client, headers: dict[str, str], who: str) -> int:
    """Aim at B and at a ghost: the same status, and the same message but for the names."""
    at_other = aim.at_other.send(client, headers)
    at_ghost = aim.at_ghost.send(client, headers)
    where = f"{who}: {aim.at_other.method} {aim.at_other.path} {aim.at_other.fields}"
    assert at_other.status_code >= 400, (where, at_other.text)
    body = at_other.json()
    assert body["result"] is False, where
    message = body["msg"]
    for old, new in aim.same:
        message = re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w-])", new, message)
    assert (at_other.status_code, message) == (at_ghost.status_code, at_ghost.json()["msg"]), (
        where,
        at_other.text,
        at_ghost.text,
    )
    return at_other.status_code


def _walk_own(operation: tuple[str, str], world: World, anon: httpx.Client, caller: Caller) -> None:
    """The caller's own account: a login token uses it; a key is refused what it may not do.

    Another admin's token or key named here is not found, as one that does not exist.
    """
    is_key, headers, who = caller.is_key, caller.headers, caller.name
    method, path = operation
    if operation == ("GET", "/auth/me"):
        me = anon.get(path, headers=headers)
        assert me.status_code == 200, (who, me.text)
        assert me.json()["admin"]["domains"] == [MINE], who
        return
    if operation == ("GET", "/auth/keys"):
        listed = anon.get(path, headers=headers)
        assert listed.status_code == 200, (who, listed.text)
        assert OTHER not in listed.text and world.other_key_id not in listed.text, (
            who,
            listed.text,
        )
        every = anon.get(path, headers=headers, params={"admin": "*"})
        assert every.status_code == 403, (who, every.text)
        return
    if operation == ("DELETE", "/auth/keys"):
        aim = _aim(Call(method, path, {"id": world.other_key_id}), world)
        assert _same_refusal(aim, anon, headers, who) == 404
        return
    if operation == ("POST", "/auth/keys"):
        if is_key:
            made = anon.post(path, headers=headers, data={"name": "more"})
            assert made.status_code == 403, (who, made.text)
            return
        aim = _aim(Call(method, path, {"name": "wider", "domains": OTHER}), world)
        assert _same_refusal(aim, anon, headers, who) == 404
        return
    # The token's own session: a key is refused (403); a fresh login of the domain admin
    # does it, so the caller's token stays for the rest of the walk.
    if operation == ("DELETE", "/auth/tokens"):
        if is_key:
            refused = anon.request(method, path, headers=headers, params={"all": "true"})
            assert refused.status_code == 403, (who, refused.text)
            return
        aim = _aim(
            Call(method, path, {"id": world.superadmin_token_id}),
            world,
            **{world.superadmin_token_id: "0123456789abcdef"},
        )
        assert _same_refusal(aim, anon, headers, who) == 404
        fresh = _login(anon, "owner", OWNER_PASSWORD)
        mine = [t["id"] for t in anon.get(path, headers=fresh).json()["tokens"] if t["current"]]
        revoked = anon.request(method, path, headers=fresh, params={"id": mine[0]})
        assert revoked.status_code == 200, (who, revoked.text)
        assert anon.get("/auth/me", headers=fresh).status_code == 401, who
        return
    if is_key:
        fields = {"password": OWNER_PASSWORD, "new_password": "another-pass-1", "code": "000000"}
        refused = Call(method, path, fields).send(anon, headers)
        assert refused.status_code == 403, (who, refused.text)
        assert "An API key cannot" in refused.json()["msg"], who
        return
    fresh = _login(anon, "owner", OWNER_PASSWORD)
    if operation == ("GET", "/auth/tokens"):
        listed = anon.get(path, headers=fresh)
        assert listed.status_code == 200, (who, listed.text)
        assert world.superadmin_token_id not in listed.text, who
    elif operation == ("POST", "/auth/logout"):
        assert anon.post(path, headers=fresh).status_code == 200, who
        assert anon.get("/auth/me", headers=fresh).status_code == 401, who
    elif operation == ("POST", "/auth/password"):
        there = {"password": OWNER_PASSWORD, "new_password": "another-pass-1"}
        changed = anon.post(path, headers=fresh, data=there)
        assert changed.status_code == 200, (who, changed.text)
        back = {"password": "another-pass-1", "new_password": OWNER_PASSWORD}
        again = {"Auth-token": changed.json()["token"]}
        assert anon.post(path, headers=again, data=back).status_code == 200, who
    elif path == "/auth/totp" or path == "/auth/totp/confirm":
        _walk_own_two_factor(method, path, fresh, anon, who)
    else:
        pytest.fail(f"{method} {path} is classified as the caller's own, but not walked")


def _walk_own_two_factor(
    method: str, path: str, fresh: dict[str, str], anon: httpx.Client, who: str
) -> None:
    """The caller's own second factor: enrolling, confirming and turning it off again
    touch no one else, and leave the domain admin as it was (no second factor)."""
    if method == "GET":
        state = anon.get(path, headers=fresh)
        assert state.status_code == 200, (who, state.text)
        assert state.json()["confirmed"] is False, who
        return
    started = anon.post("/auth/totp", headers=fresh)
    assert started.status_code == 200, (who, started.text)
    if method == "POST" and path == "/auth/totp":
        assert started.json()["uri"].startswith("otpauth://totp/"), who
        return
    if path == "/auth/totp/confirm":
        wrong = anon.post(path, headers=fresh, data={"code": "000000"})
        assert wrong.status_code == 400, (who, wrong.text)
        return
    secret = totp.decode_secret(started.json()["secret"])
    code = {"code": totp.totp(secret, time.time())}
    assert anon.post("/auth/totp/confirm", headers=fresh, data=code).status_code == 200, who
    off = anon.request(method, path, headers=fresh, params={"password": OWNER_PASSWORD})
    assert off.status_code == 200, (who, off.text)
    assert anon.get(path, headers=fresh).json()["confirmed"] is False, who


def test_every_operation_hides_other_domains(
    server: LiveServer, api: httpx.Client, anon: httpx.Client, world: World
) -> None:
    """A domain admin of mine.example and keys bound to it, aiming every operation of the
    document at other.example: 404 as for a domain that does not exist (403 for what only
    a superadmin does), listings without it, and other.example unchanged afterwards."""
    document = create_app(ctx=server.ctx, clean_up=False).openapi()
    operations = {
        (method.upper(), path): bool(spec.get("security"))
        for path, methods in document["paths"].items()
        for method, spec in methods.items()
    }
    assert {op for op, secured in operations.items() if not secured} == PUBLIC
    hidden, superadmin_only, listings = _hidden(world), _superadmin_only(world), _listings()
    classified = (
        hidden.keys()
        | superadmin_only.keys()
        | listings.keys()
        | set(OWN_OPERATIONS)
        | set(MAILBOX_OWN)
    )
    secured = {op for op, takes_token in operations.items() if takes_token}
    assert sorted(secured - classified) == [], "operations the walk does not know"
    assert sorted(classified - secured) == [], "operations the document no longer has"
    before = _state(api, world)

    # Each ghost is a thing that does not exist, for the superadmin too (not a bad request).
    for calls in hidden.values():
        for call in calls:
            ghost = _aim(call, world).at_ghost
            answer = ghost.send(anon, dict(api.headers))
            assert answer.status_code == 404, (ghost, answer.text)
    walked: set[tuple[str, str]] = set()
    for caller in world.callers:
        who, headers = caller.name, caller.headers
        for operation, calls in hidden.items():
            for call in calls:
                assert _same_refusal(_aim(call, world), anon, headers, who) == 404
            walked.add(operation)
        for call in _like_ghost(world):
            _same_refusal(_aim(call, world), anon, headers, who)
        for operation, calls in superadmin_only.items():
            for call in calls:
                answer = call.send(anon, headers)
                assert answer.status_code == 403, (who, operation, answer.text)
                message = answer.json()["msg"]
                # Two-factor settings are a login's business: a key is refused them as a key.
                as_key = caller.is_key and message.startswith("An API key cannot")
                assert message.startswith("Only a superadmin may") or as_key, (who, answer.text)
            walked.add(operation)
        for operation, calls in listings.items():
            for call in calls:
                answer = call.send(anon, headers)
                assert answer.status_code == 200, (who, operation, answer.text)
                assert OTHER not in answer.text, (who, operation, answer.text)
            walked.add(operation)
        domains_seen = anon.get("/domains", headers=headers).json()["domains"]
        assert [d["name"] for d in domains_seen] == [MINE], who
        for operation in OWN_OPERATIONS:
            _walk_own(operation, world, anon, caller)
            walked.add(operation)
        for method, path in MAILBOX_OWN:
            refused = Call(method, path, {"destinations": f"a@{MINE}"}).send(anon, headers)
            assert refused.status_code == 401, (who, path, refused.text)
            walked.add((method, path))
    assert walked == secured

    after = _state(api, world)
    assert after == before
    names = [d["name"] for d in after["domains"]["domains"]]
    assert names == [MINE, OTHER]
    assert [u["email"] for u in after["users"]["users"]] == [f"b@{OTHER}", f"b3@{OTHER}"]
    bob = _login(anon, "bob", BOB_PASSWORD)
    assert [d["name"] for d in anon.get("/domains", headers=bob).json()["domains"]] == [OTHER]
    assert anon.get("/auth/me", headers=_login(anon, ADMIN, ADMIN_PASSWORD)).status_code == 200
