"""The application factory: wires settings, context, routers and the error envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from mailctl import __version__
from mailctl.api import errors, logs, openapi
from mailctl.api.paths import TrailingSlash
from mailctl.api.routes import (
    acme_challenge,
    admins,
    aliases,
    archives,
    audit,
    auth,
    dkim,
    domains,
    jobs,
    mailbox_settings,
    quotas,
    selfservice,
    ssl,
    system,
    totp,
    users,
)
from mailctl.config import Settings, load_settings
from mailctl.services import leftovers
from mailctl.services.context import Context

DESCRIPTION = (
    "Control plane of a self-hosted mail server. Every field may be sent as multipart, "
    "urlencoded, JSON or in the query string, on every method (GET and DELETE included); "
    "the document shows a body for POST and the query string for GET and DELETE. Send the "
    "token from POST /auth as `Auth-token` or `Authorization: Bearer`. Every error is "
    'JSON: `{"result": false, "msg": "..."}`.'
)
ROUTERS = (
    system,
    auth,
    totp,
    admins,
    domains,
    users,
    mailbox_settings,
    quotas,
    selfservice,
    aliases,
    dkim,
    ssl,
    jobs,
    acme_challenge,
    archives,
    audit,
)


def create_app(
    settings: Settings | None = None, ctx: Context | None = None, *, clean_up: bool = True
) -> FastAPI:
    """Build the API; nothing is read from the environment before this is called.

    ``clean_up`` False leaves the start-up clean-up to the caller (the parent of several
    worker processes runs it once, before they start).
    """
    if ctx is None:
        ctx = Context.from_settings(settings or load_settings())
    context = ctx

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if clean_up:
            # What a process killed mid-operation left (one warning each), before any request.
            await run_in_threadpool(leftovers.clean_up_safely, context)
        yield
        # Background jobs stop with the app: those not started are recorded as cancelled,
        # running ones get a bounded wait (Context.close).
        await run_in_threadpool(context.close)

    app = FastAPI(
        title="mailctl",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Both spellings answer (TrailingSlash): an empty 307 broke scripts that parse JSON.
        redirect_slashes=False,
    )
    app.state.ctx = context
    errors.install(app)
    logs.install()
    for module in ROUTERS:
        openapi.describe_fields(module.router.routes)
        app.include_router(module.router)
    # The routes as declared, for the Allow header of a 405 (api.errors).
    app.state.api_routes = [route for module in ROUTERS for route in module.router.routes]
    app.add_middleware(TrailingSlash)
    openapi.install(app)
    return app
