"""Listings page (limit, offset, after, search) and answer 304 to a matching ETag."""

from __future__ import annotations

import httpx
import pytest

from mailctl.services import domains, mailboxes
from mailctl.services.context import Actor, Context

ACTOR = Actor("tester", "192.0.2.1")
HASH = "{SHA512-CRYPT}$6$saltsalt$" + "a" * 86


def _domains(ctx: Context, names: list[str]) -> list[int]:
    return [domains.create_domain(ctx, ACTOR, name)[0].id for name in names]


def test_without_paging_fields_the_whole_list_comes_back_as_documented(
    api: httpx.Client, ctx: Context
) -> None:
    """No limit: every domain, and only the documented keys."""
    _domains(ctx, [f"d{n}.example" for n in range(7)])
    body = api.get("/domains").json()
    assert set(body) == {"result", "domains"}
    assert [d["name"] for d in body["domains"]] == [f"d{n}.example" for n in range(7)]


def test_pages_by_offset_and_by_cursor_cover_the_list_once(api: httpx.Client, ctx: Context) -> None:
    """limit with offset, and limit with after, walk the same list in the same order."""
    _domains(ctx, [f"d{n}.example" for n in range(7)])
    seen_by_offset: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = api.get("/domains", params={"limit": "3", "offset": str(offset)}).json()
        seen_by_offset += [d["name"] for d in body["domains"]]
        offset = body["next_offset"]
    seen_by_cursor: list[str] = []
    after: int | None = None
    pages = 0
    while True:
        params = {"limit": "3"} | ({"after": str(after)} if after is not None else {})
        body = api.get("/domains", params=params).json()
        seen_by_cursor += [d["name"] for d in body["domains"]]
        pages += 1
        after = body["next_after"]
        if after is None:
            break
    everything = [f"d{n}.example" for n in range(7)]
    assert seen_by_offset == everything
    assert seen_by_cursor == everything
    assert pages == 3


def test_an_offset_without_a_limit_is_a_page_of_the_most_a_page_holds(
    api: httpx.Client, ctx: Context
) -> None:
    """offset alone skips that many and returns a page (up to 1,000), with its next."""
    _domains(ctx, [f"d{n}.example" for n in range(4)])
    body = api.get("/domains", params={"offset": "1"}).json()
    assert [d["name"] for d in body["domains"]] == ["d1.example", "d2.example", "d3.example"]
    assert body["next_offset"] is None


def test_the_last_page_says_there_is_no_next(api: httpx.Client, ctx: Context) -> None:
    """A page that ends the list answers next_offset and next_after as null."""
    _domains(ctx, ["a.example", "b.example"])
    body = api.get("/domains", params={"limit": "2"}).json()
    assert [d["name"] for d in body["domains"]] == ["a.example", "b.example"]
    assert body["next_offset"] is None
    assert body["next_after"] is None


def test_search_finds_names_holding_the_text_in_any_case(api: httpx.Client, ctx: Context) -> None:
    """search is a case-insensitive substring; % and _ are taken literally."""
    _domains(ctx, ["shop.example", "myshop.example", "mail.example", "a-b.example", "axb.example"])
    found = api.get("/domains", params={"search": "SHOP"}).json()["domains"]
    assert [d["name"] for d in found] == ["shop.example", "myshop.example"]
    assert api.get("/domains", params={"search": "%"}).json()["domains"] == []
    assert api.get("/domains", params={"search": "a_b"}).json()["domains"] == []
    dashed = api.get("/domains", params={"search": "a-b"}).json()["domains"]
    assert [d["name"] for d in dashed] == ["a-b.example"]


def test_paging_fields_may_come_as_a_form_on_get(api: httpx.Client, ctx: Context) -> None:
    """Like every field, limit and search may be sent as curl -F on a GET."""
    _domains(ctx, ["one.example", "two.example", "three.example"])
    response = api.request("GET", "/domains", files={"limit": (None, "1"), "search": (None, "t")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [d["name"] for d in body["domains"]] == ["two.example"]
    assert body["next_offset"] == 1


def test_mailboxes_page_and_search_within_their_domain(api: httpx.Client, ctx: Context) -> None:
    """GET /users/:id pages the domain's mailboxes by id and searches their addresses."""
    (domain_id,) = _domains(ctx, ["example.com"])
    (other,) = _domains(ctx, ["other.example"])
    for name in ("alice", "bob", "carol", "dave", "alicia"):
        mailboxes.create_user(ctx, ACTOR, domain_id, f"{name}@example.com", None, HASH)
    mailboxes.create_user(ctx, ACTOR, other, "alice@other.example", None, HASH)
    first = api.get(f"/users/{domain_id}", params={"limit": "2"}).json()
    assert [u["email"] for u in first["users"]] == ["alice@example.com", "bob@example.com"]
    rest = api.get(
        f"/users/{domain_id}", params={"limit": "10", "after": str(first["next_after"])}
    ).json()
    assert [u["email"] for u in rest["users"]] == [
        "carol@example.com",
        "dave@example.com",
        "alicia@example.com",
    ]
    assert rest["next_after"] is None
    found = api.get(f"/users/{domain_id}", params={"search": "ALI"}).json()["users"]
    assert [u["email"] for u in found] == ["alice@example.com", "alicia@example.com"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "'limit' must be a whole number from 1 to 1000."),
        ({"limit": "1001"}, "'limit' must be a whole number from 1 to 1000."),
        ({"limit": "ten"}, "'limit' must be a whole number from 1 to 1000."),
        ({"limit": "٣"}, "'limit' must be a whole number from 1 to 1000."),
        ({"offset": "-1"}, "'offset' must be a whole number from 0 to 1000000000000000."),
        ({"offset": "2", "after": "1"}, "Give 'offset' or 'after', not both."),
        ({"search": "x" * 255}, "'search' must be at most 254 characters."),
    ],
)
def test_bad_paging_fields_get_a_clear_400(
    api: httpx.Client, params: dict[str, str], message: str
) -> None:
    """A wrong limit, offset, cursor or search is a 400 that says what is wrong."""
    for path in ("/domains", "/users/1"):
        response = api.get(path, params=params)
        assert response.status_code == 400, response.text
        assert response.json() == {"result": False, "msg": message}


def test_a_matching_etag_answers_304_until_the_list_changes(
    api: httpx.Client, ctx: Context
) -> None:
    """If-None-Match with the list's ETag gets 304 and no body; a change gives a new tag."""
    (domain_id,) = _domains(ctx, ["example.com"])
    first = api.get("/domains")
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    again = api.get("/domains", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    weak = api.get("/domains", headers={"If-None-Match": f'"other", W/{tag}'})
    assert weak.status_code == 304
    mailboxes.create_user(ctx, ACTOR, domain_id, "new@example.com", None, HASH)
    changed = api.get("/domains", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.json()["domains"][0]["users_count"] == 1
    assert changed.headers["etag"] != tag
    users = api.get(f"/users/{domain_id}")
    assert (
        api.get(f"/users/{domain_id}", headers={"If-None-Match": users.headers["etag"]}).status_code
        == 304
    )


def test_the_largest_offset_and_cursor_accepted_answer_an_empty_page(
    api: httpx.Client, ctx: Context
) -> None:
    """The largest offset and cursor the fields take reach the database as numbers it
    compares, and answer an empty last page (not a 500)."""
    (domain_id,) = _domains(ctx, ["example.com"])
    for path in ("/domains", f"/users/{domain_id}"):
        for params in ({"offset": str(10**15)}, {"after": str(10**18 - 1)}):
            response = api.get(path, params={"limit": "5", **params})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["next_offset"] is None
            assert [] in body.values()
