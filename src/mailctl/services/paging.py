"""Pages of a listing: how many, from where (an offset or a cursor), and a search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from mailctl.domain.numbers import ascii_int
from mailctl.errors import InvalidInputError
from mailctl.storage.reads import Window

# The most items one page holds; a listing without a limit still returns everything.
MAX_LIMIT = 1000
MAX_SEARCH = 254

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Page:
    """What part of a listing to return; ``Page()`` is the whole of it, as documented.

    ``after`` is the id of the last item of the previous page (a cursor: as fast on the
    last page as on the first), ``offset`` a number of items to skip.
    """

    limit: int | None = None
    offset: int = 0
    after: int | None = None
    search: str | None = None


@dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a listing, and where the next one starts (None: this was the last)."""

    items: list[T]
    next_offset: int | None = None
    next_after: int | None = None
    limited: bool = False  # a page was asked for (a limit), not the whole listing


def _number(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None or text.strip() == "":
        return None
    value = ascii_int(text.strip())
    if value is None or not low <= value <= high:
        raise InvalidInputError(f"'{name}' must be a whole number from {low} to {high}.")
    return value


def read_page(
    limit: str | None = None,
    offset: str | None = None,
    after: str | None = None,
    search: str | None = None,
) -> Page:
    """The page the words of a request or a command ask for; InvalidInputError if wrong."""
    size = _number("limit", limit, 1, MAX_LIMIT)
    skip = _number("offset", offset, 0, 10**15) or 0
    cursor = _number("after", after, 0, 10**18 - 1)  # an id: at most 18 digits
    if cursor is not None and skip:
        raise InvalidInputError("Give 'offset' or 'after', not both.")
    if size is None and (skip or cursor is not None):
        size = MAX_LIMIT  # a page that starts somewhere is a page, of the most it may hold
    text = search.strip() if search is not None else ""
    if len(text) > MAX_SEARCH:
        raise InvalidInputError(f"'search' must be at most {MAX_SEARCH} characters.")
    return Page(size, skip, cursor, text or None)


def fetch(
    page: Page,
    read: Callable[[Window], Sequence[R]],
    item: Callable[[R], T],
    key: Callable[[T], int],
) -> Paged[T]:
    """Read one page with ``read`` (one row more than asked, to know whether more follow)."""
    limit = None if page.limit is None else page.limit + 1
    rows = read(Window(limit, page.offset, page.after, page.search))
    items = [item(row) for row in rows]
    if page.limit is None:
        return Paged(items)
    if len(items) <= page.limit:
        return Paged(items, limited=True)
    items = items[: page.limit]
    return Paged(items, page.offset + page.limit, key(items[-1]), limited=True)
