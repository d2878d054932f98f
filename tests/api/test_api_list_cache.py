"""Listings kept per process: the next GET after any committed write shows it.

Per backend: what keeps a body right is the list revision that each database's own
triggers raise (row triggers on SQLite and MariaDB, statement triggers on PostgreSQL),
and every kind of writer below reaches them through different SQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from tests.conftest import LiveServer

from mailctl.services import admins, domains, mailboxes
from mailctl.services.context import Actor, Context
from mailctl.services.listings import MAX_ENTRIES
from mailctl.storage.reads import Reads

HOST = Actor("test")


class ReadCounter:
    """How many times the listing queries ran (not the revision's)."""

    def __init__(self) -> None:
        self.domains = 0
        self.users = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadCounter:
    counter = ReadCounter()
    domain_rows = Reads.domain_rows
    user_rows = Reads.user_rows

    def counted_domains(self: Reads, *args: object, **kwargs: object) -> object:
        counter.domains += 1
        return domain_rows(self, *args, **kwargs)  # type: ignore[arg-type]

    def counted_users(self: Reads, *args: object, **kwargs: object) -> object:
        counter.users += 1
        return user_rows(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Reads, "domain_rows", counted_domains)
    monkeypatch.setattr(Reads, "user_rows", counted_users)
    return counter


def _listed(api: httpx.Client, **params: str) -> dict[str, int]:
    answer = api.get("/domains", params=params)
    assert answer.status_code == 200, answer.text
    return {d["name"]: d["users_count"] for d in answer.json()["domains"]}


def _users(api: httpx.Client, domain_id: int) -> list[str]:
    answer = api.get(f"/users/{domain_id}")
    assert answer.status_code == 200, answer.text
    return [u["email"] for u in answer.json()["users"]]


def _primed(api: httpx.Client, counter: ReadCounter, domain_id: int) -> None:
    """Both listings asked twice: the domains' second answer came from the cache; the
    mailboxes' is read each time (their usage is Dovecot's to write, past the counter)."""
    for _ in range(2):
        _listed(api)
        _users(api, domain_id)
    assert (counter.domains, counter.users) == (1, 2)


@pytest.fixture
def example(ctx: Context) -> int:
    """example.com with alice; its id."""
    domain, _ = domains.create_domain(ctx, HOST, "example.com", "alice@example.com", "pw-alice-1")
    return domain.id


def test_a_second_get_is_answered_from_the_cache(
    api: httpx.Client, example: int, reads: ReadCounter
) -> None:
    """The same listing twice: one query, the same body and tag."""
    first = api.get("/domains")
    second = api.get("/domains")
    assert reads.domains == 1
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert first.json()["domains"] == [{"id": example, "name": "example.com", "users_count": 1}]


def _api_create_domain(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    assert api.post("/domains", data={"domain": "new.example"}).status_code == 200


def _api_delete_domain(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    assert api.request("DELETE", "/domain", data={"domain": "example.com"}).status_code == 200


def _api_create_user(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    made = api.post(f"/user/{domain_id}", data={"email": "bob", "password": "pw-bob-12"})
    assert made.status_code == 200, made.text


def _api_delete_user(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    gone = api.request("DELETE", "/users", data={"email": "alice@example.com"})
    assert gone.status_code == 200, gone.text


def _api_batch_create(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    users = (
        '[{"email": "bob@example.com", "password": "pw-bob-12"}, '
        '{"email": "carol", "password": "pw-carol-1"}]'
    )
    made = api.post(f"/user/{domain_id}/batch", data={"users": users})
    assert made.status_code == 200, made.text


def _trash_restore(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    """Deleted, listed (cached again without it), then restored."""
    gone = api.request("DELETE", "/users", data={"email": "alice@example.com"})
    assert _users(api, domain_id) == []
    restored = api.post("/trash/restore", data={"id": gone.json()["trash_id"]})
    assert restored.status_code == 200, restored.text


def _import(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    """Exported, deleted, listed (cached again without it), then imported."""
    archive = api.get("/export/domain", params={"domain": "example.com"}).content
    assert api.request("DELETE", "/domain", data={"domain": "example.com"}).status_code == 200
    assert "example.com" not in _listed(api)
    imported = api.post(
        "/import/domain", content=archive, headers={"Content-Type": "application/gzip"}
    )
    assert imported.status_code == 200, imported.text


def _other_context(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    """Another process's wiring on the same database: a worker, a replica, the CLI."""
    other = Context.from_settings(ctx.settings)
    try:
        mailboxes.create_users(
            other, HOST, domain_id, [mailboxes.NewMailbox("bob@example.com", "pw-bob-12")]
        )
        domains.create_domain(other, HOST, "new.example")
    finally:
        other.close()


def _plain_sql(api: httpx.Client, ctx: Context, domain_id: int) -> None:
    """SQL past mailctl (another version, a person at the database's prompt)."""
    engine = create_engine(ctx.settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO virtual_users (domain_id, email, password) "
                    "VALUES (:domain, 'bob@example.com', '{PLAIN}x')"
                ),
                {"domain": domain_id},
            )
            conn.execute(text("INSERT INTO virtual_domains (name) VALUES ('new.example')"))
    finally:
        engine.dispose()


# Trash restore and import list the state without the mailbox or domain in between, so
# the cache holds that state when it comes back.
COMES_BACK = ("trash restore", "import")
WRITES: dict[str, Callable[[httpx.Client, Context, int], None]] = {
    "API domain create": _api_create_domain,
    "API domain delete": _api_delete_domain,
    "API mailbox create": _api_create_user,
    "API mailbox delete": _api_delete_user,
    "API batch create": _api_batch_create,
    "trash restore": _trash_restore,
    "import": _import,
    "another context": _other_context,
    "plain SQL": _plain_sql,
}


def _expected(ctx: Context, domain_id: int) -> tuple[dict[str, int], list[str] | None]:
    """The listings as the database has them, read without the cache."""
    listed = {d.name: d.users_count for d in domains.list_domains(ctx)}
    if "example.com" not in listed:
        return listed, None
    ident = next(d.id for d in domains.list_domains(ctx) if d.name == "example.com")
    return listed, [u.email for u in mailboxes.list_users(ctx, ident)]


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_the_next_get_after_a_write_shows_it(
    api: httpx.Client, server: LiveServer, example: int, reads: ReadCounter, write: str
) -> None:
    """After each kind of write, whoever made it, both listings answer what is stored."""
    _primed(api, reads, example)
    before = _listed(api), _users(api, example)
    WRITES[write](api, server.ctx, example)
    listed, users = _expected(server.ctx, example)
    assert ((listed, users) == before) == (write in COMES_BACK)
    assert _listed(api) == listed
    if users is None:
        assert api.get(f"/users/{example}").status_code == 404
    else:
        ident = next(
            d["id"] for d in api.get("/domains").json()["domains"] if d["name"] == "example.com"
        )
        assert _users(api, ident) == users


def test_a_command_on_the_host_shows_in_the_next_get(
    api: httpx.Client, server: LiveServer, example: int, reads: ReadCounter, tmp_path: Path
) -> None:
    """`mailctl user add` in a process of its own, on the same database."""
    _primed(api, reads, example)
    env = {
        **os.environ,
        "MAILCTL_DATA_DIR": str(server.ctx.settings.data_dir),
        "MAILCTL_DATABASE_URL": server.ctx.settings.database_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "mailctl", "user", "add", "bob@example.com", "--password-stdin"],
        input="pw-bob-123\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _listed(api) == {"example.com": 2}
    assert _users(api, example) == ["alice@example.com", "bob@example.com"]


@pytest.fixture
def owner(server: LiveServer, anon: httpx.Client, example: int) -> dict[str, str]:
    """A domain admin granted mine.example, beside example.com (someone else's)."""
    domains.create_domain(server.ctx, HOST, "mine.example", "a@mine.example", "password-a-1")
    admins.create_admin(
        server.ctx, HOST, "owner", "owner-password-1", "domain_admin", "mine.example"
    )
    answer = anon.post("/auth", data={"username": "owner", "password": "owner-password-1"})
    return {"Auth-token": answer.json()["token"]}


def test_a_domain_admin_never_gets_a_superadmins_body(
    api: httpx.Client, anon: httpx.Client, owner: dict[str, str], reads: ReadCounter
) -> None:
    """The whole list cached for a superadmin is not what a domain admin or its key gets,
    nor the other way round; each is kept apart and asked once."""
    every = {"example.com": 1, "mine.example": 1}
    key = anon.post("/auth/keys", headers=owner, data={"name": "k", "domains": "mine.example"})
    bound = {"Auth-token": key.json()["key"]}
    for _ in range(2):
        assert _listed(api) == every
        owned = anon.get("/domains", headers=owner).json()["domains"]
        assert [d["name"] for d in owned] == ["mine.example"]
        keyed = anon.get("/domains", headers=bound).json()["domains"]
        assert [d["name"] for d in keyed] == ["mine.example"]
    assert reads.domains == 3


def test_a_grant_shows_in_the_domain_admins_next_get(
    server: LiveServer, anon: httpx.Client, owner: dict[str, str]
) -> None:
    """Granting or taking back a domain changes the admin's list at once."""

    def listed() -> list[str]:
        return [d["name"] for d in anon.get("/domains", headers=owner).json()["domains"]]

    assert listed() == ["mine.example"]
    admins.grant(server.ctx, HOST, "owner", "example.com")
    assert listed() == ["example.com", "mine.example"]
    admins.revoke(server.ctx, HOST, "owner", "mine.example")
    assert listed() == ["example.com"]


def test_pages_and_searches_are_kept_apart(
    api: httpx.Client, ctx: Context, reads: ReadCounter
) -> None:
    """Each page, offset, cursor and search is a body of its own."""
    for n in range(5):
        domains.create_domain(ctx, HOST, f"d{n}.example")
    asks: list[dict[str, str]] = [
        {},
        {"limit": "2"},
        {"limit": "2", "offset": "2"},
        {"limit": "2", "after": "2"},
        {"search": "d3"},
        {"search": "D3", "limit": "1"},
    ]
    first = [api.get("/domains", params=ask).json() for ask in asks]
    again = [api.get("/domains", params=ask).json() for ask in asks]
    assert first == again
    assert reads.domains == len(asks)
    assert [d["name"] for d in first[2]["domains"]] == ["d2.example", "d3.example"]
    assert [d["name"] for d in first[3]["domains"]] == ["d2.example", "d3.example"]
    assert [d["name"] for d in first[4]["domains"]] == ["d3.example"]
    assert first[1]["next_after"] == 2


def test_etags_follow_the_revision(api: httpx.Client, ctx: Context, example: int) -> None:
    """A client's tag gets 304 while the list stands; after a write, the new body."""
    tag = api.get("/domains").headers["etag"]
    unchanged = api.get("/domains", headers={"If-None-Match": tag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == tag
    domains.create_domain(ctx, HOST, "new.example")
    changed = api.get("/domains", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    assert "new.example" in changed.text
    users_tag = api.get(f"/users/{example}").headers["etag"]
    assert api.get(f"/users/{example}", headers={"If-None-Match": users_tag}).status_code == 304


def test_the_cache_is_bounded(api: httpx.Client, ctx: Context, example: int) -> None:
    """However many pages are asked for, a process keeps at most MAX_ENTRIES of them,
    within its byte budget."""
    for offset in range(MAX_ENTRIES + 20):
        assert api.get("/domains", params={"limit": "1", "offset": str(offset)}).status_code == 200
    assert len(ctx.listings) == MAX_ENTRIES
    assert ctx.listings.bytes <= ctx.settings.list_cache_bytes


def test_without_its_row_nothing_is_kept(
    api: httpx.Client, ctx: Context, example: int, reads: ReadCounter
) -> None:
    """A database whose revision row is gone is read on every request, and stays right."""
    engine = create_engine(ctx.settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM list_revisions"))
    finally:
        engine.dispose()
    _listed(api)
    _listed(api)
    assert reads.domains == 2
    domains.create_domain(ctx, HOST, "new.example")
    assert set(_listed(api)) == {"example.com", "new.example"}
