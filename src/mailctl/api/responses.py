"""Success bodies rendered straight to JSON bytes: routes return plain dicts, quickly.

FastAPI walks a returned dict with ``jsonable_encoder`` before it renders it, object by
object: for a list of a thousand domains that walk took twenty times what the query did.
``JSONRoute`` hands the dict to orjson instead, which renders the same compact JSON in C.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: object) -> object:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError


def render_json(content: Any) -> bytes:
    """Compact UTF-8 JSON, as Starlette's JSONResponse writes it."""
    try:
        return orjson.dumps(content, default=_default, option=_OPTIONS)
    except TypeError:
        # Something orjson does not know: FastAPI's own conversion, then render that.
        return orjson.dumps(jsonable_encoder(content), option=_OPTIONS)


class JSONBody(Response):
    """A JSON response rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render_json(content)


def _as_response(result: Any) -> Any:
    # Only a dict is a JSON body: a route with its own response class (``/ping``'s plain
    # text) returns what that class renders.
    return JSONBody(result) if isinstance(result, dict) else result


def json_endpoint(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The endpoint, answering a dict it returns as a ``JSONBody`` (same signature)."""
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return _as_response(await endpoint(*args, **kwargs))

        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        return _as_response(endpoint(*args, **kwargs))

    return run


class JSONRoute(APIRoute):
    """An API route whose dict results are rendered by orjson (``JSONBody``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, json_endpoint(endpoint), **kwargs)


def _tags(header: str | None) -> set[str]:
    if not header:
        return set()
    tags = set()
    for part in header.split(","):
        tag = part.strip()
        tags.add(tag[2:] if tag.startswith("W/") else tag)
    return tags


@dataclass(frozen=True)
class TaggedBody:
    """A listing rendered once: its JSON and its ETag; ``len()`` is the body's size, so a
    cache of them can bound its memory (services.listings)."""

    body: bytes
    tag: str

    def __len__(self) -> int:
        return len(self.body)


def tagged(content: dict[str, Any]) -> TaggedBody:
    """The JSON of a listing and its ETag, a digest of the body itself: it changes exactly
    when the listing does, whichever process or host made the change."""
    body = render_json(content)
    return TaggedBody(body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')


def answer(request: Request, listing: TaggedBody) -> Response:
    """A listing's JSON with its ETag; 304 and no body when the client has it already."""
    headers = {"ETag": listing.tag, "Cache-Control": "private, no-cache"}
    wanted = _tags(request.headers.get("if-none-match"))
    if listing.tag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(listing.body, media_type="application/json", headers=headers)
