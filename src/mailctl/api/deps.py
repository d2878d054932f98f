"""FastAPI dependencies: the process context, request fields, the acting admin."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool

from mailctl.api.fields import Fields, parse_fields, read_fields
from mailctl.config import Settings
from mailctl.services import auth, mailbox_auth, scope, two_factor
from mailctl.services.context import Actor, Context

# The dependencies below that need no I/O are coroutines: FastAPI runs a plain ``def``
# dependency on its thread pool, and each such hop cost more than the work itself.


async def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(get_context)]


@contextlib.asynccontextmanager
async def _reading(request: Request, max_bytes: int) -> AsyncIterator[Fields]:
    fields = await read_fields(request, max_bytes)
    try:
        yield fields
    finally:
        # Uploaded parts spill to temporary files; close them once the route is done.
        for upload in fields.files.values():
            await upload.close()


async def get_fields(request: Request, ctx: ContextDep) -> AsyncIterator[Fields]:
    async with _reading(request, ctx.settings.max_field_bytes) as fields:
        yield fields


FieldsDep = Annotated[Fields, Depends(get_fields)]


@functools.cache
def parsed(
    model: type[Any], body_bytes: Callable[[Settings], int] | None = None
) -> Callable[..., Any]:
    """The dependency that fills an operation's model from the request's fields.

    Used as ``Annotated[NewKey, Depends(parsed(NewKey))]``; files are read up to
    ``max_upload_bytes``, text up to ``max_field_bytes`` (or ``body_bytes(settings)``, for
    an operation whose fields may be larger, as a batch's).
    """

    async def parse_fields_of(fields: FieldsDep, ctx: ContextDep) -> Any:
        return await parse_fields(model, fields, ctx.settings.max_upload_bytes)

    async def parse_large_fields_of(request: Request, ctx: ContextDep) -> AsyncIterator[Any]:
        limit = ctx.settings.max_field_bytes if body_bytes is None else body_bytes(ctx.settings)
        async with _reading(request, limit) as fields:
            yield await parse_fields(model, fields, ctx.settings.max_upload_bytes)

    parse: Callable[..., Any] = parse_fields_of if body_bytes is None else parse_large_fields_of
    parse.__name__ = f"parse_{model.__name__}"
    _FILLS[parse] = model
    return parse


# Each ``parsed`` dependency and the model it fills, so the OpenAPI document can describe
# a route's fields from the dependency the route already names.
_FILLS: dict[Callable[..., Any], type[Any]] = {}


def model_filled_by(dependency: object) -> type[Any] | None:
    """The model a ``parsed(...)`` dependency fills; None for any other callable."""
    for parse, model in _FILLS.items():
        if parse is dependency:
            return model
    return None


def _address(request: Request, ctx: Context) -> str | None:
    if ctx.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.client.host if request.client else None


async def client_address(request: Request, ctx: ContextDep) -> str | None:
    return _address(request, ctx)


ClientAddressDep = Annotated[str | None, Depends(client_address)]


def token_of(request: Request) -> str | None:
    """The token from ``Auth-token`` (the documented header) or ``Authorization: Bearer``."""
    token = request.headers.get("auth-token")
    if token:
        return token.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


# The two ways to send the token, as /openapi.json shows them on every operation that
# takes one (api.openapi, from AUTHENTICATED); token_of reads them.
SECURITY_SCHEMES = (
    APIKeyHeader(name="Auth-token", auto_error=False, scheme_name="AuthToken"),
    HTTPBearer(auto_error=False, scheme_name="Bearer"),
)


async def user_agent(request: Request) -> str | None:
    """The client's ``User-Agent``, as recorded with the tokens it logs in for."""
    agent = request.headers.get("user-agent", "").strip()
    return agent[:200] or None


UserAgentDep = Annotated[str | None, Depends(user_agent)]


async def current_admin(request: Request) -> auth.AdminIdentity:
    """The admin the request's token speaks for, with that token's id; 401 otherwise.

    A token this process accepted a moment ago needs no database (``ctx.tokens``);
    any other is checked on the thread pool, as the look-up blocks. One dependency, not
    a tree of them: FastAPI's solving of each costs more than the cached check itself.
    """
    ctx: Context = request.app.state.ctx
    token = token_of(request)
    identity = auth.cached_identity(ctx, token)
    if identity is None:
        identity = await run_in_threadpool(auth.authenticate, ctx, token)
    if isinstance(identity, auth.KeyIdentity):
        identity.check_address(_address(request, ctx))
    if identity.enrol_only and (request.method, request.url.path.rstrip("/")) not in ENROLMENT:
        two_factor.refuse_enrol_only(identity.enrol_only)
    if (
        identity.scope.read_only
        and request.method not in READING_METHODS
        and request.url.path not in READING_POSTS
    ):
        scope.require_write(identity.scope)
    return identity


# What a token that may only enrol a second factor may do (services.two_factor).
ENROLMENT = frozenset(
    {
        ("GET", "/auth/totp"),
        ("POST", "/auth/totp"),
        ("POST", "/auth/totp/confirm"),
        ("GET", "/auth/me"),
        ("POST", "/auth/logout"),
    }
)
# The methods a read-only key may use: every operation that changes something is another.
READING_METHODS = frozenset({"GET", "HEAD"})
# A POST that only reads (it probes a certificate), for a monitoring script's key.
READING_POSTS = frozenset({"/ssl/get-left-days"})


CurrentAdminDep = Annotated[auth.AdminIdentity, Depends(current_admin)]


async def current_actor(request: Request) -> Actor:
    """The admin of the request's token, and the address it came from, for the audit."""
    admin = await current_admin(request)
    return Actor(admin.username, _address(request, request.app.state.ctx), admin.scope)


ActorDep = Annotated[Actor, Depends(current_actor)]


async def current_mailbox(request: Request) -> mailbox_auth.MailboxIdentity:
    """The mailbox the request's mailbox token speaks for (``POST /self/auth``); 401 for
    none, or for an admin's token or key: the two kinds are never taken for each other."""
    ctx: Context = request.app.state.ctx
    return await run_in_threadpool(mailbox_auth.authenticate, ctx, token_of(request))


CurrentMailboxDep = Annotated[mailbox_auth.MailboxIdentity, Depends(current_mailbox)]

# The dependencies that need a token: their operations document SECURITY_SCHEMES.
AUTHENTICATED = (current_admin, current_actor, current_mailbox)
