"""The paging fields of a listing (``limit``, ``offset``, ``after``, ``search``) and its body."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from mailctl.api.fields import Note
from mailctl.services.paging import MAX_LIMIT, Page, Paged, read_page

T = TypeVar("T")


@dataclass(frozen=True)
class ListPage:
    """The fields of a listing; none of them: the whole list, as the old service gave it."""

    limit: Annotated[str | None, Note(f"at most this many items, 1 to {MAX_LIMIT}")] = None
    offset: Annotated[str | None, Note("skip this many items first")] = None
    after: Annotated[str | None, Note("only items with a greater id (next_after)")] = None
    search: Annotated[str | None, Note("only names holding this text, in any case")] = None

    def page(self) -> Page:
        return read_page(self.limit, self.offset, self.after, self.search)


def page_json(key: str, paged: Paged[T], shape: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """``{"result": true, key: [...]}``, and where the next page starts when it is one."""
    body: dict[str, Any] = {"result": True, key: [shape(item) for item in paged.items]}
    if paged.limited:
        body["next_offset"] = paged.next_offset
        body["next_after"] = paged.next_after
    return body
