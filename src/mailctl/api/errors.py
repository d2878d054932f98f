"""One place that turns every error into the JSON envelope ``{"result": false, "msg": ...}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailctl.errors import (
    AuthError,
    MailctlError,
    SecondFactorError,
    ThrottledError,
    UnavailableError,
    reported,
)

log = logging.getLogger("mailctl.api")

_STATUS_MESSAGES = {
    404: "There is no such API method; see /docs for the list.",
    405: "This API method does not accept that HTTP method.",
}


def envelope(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"result": False, "msg": message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path accepts (``app.state.api_routes``).

    Starlette's own ``Allow`` names only the first route that matched the path, but one
    path may have a route per method (``GET /dkim`` and ``DELETE /dkim``).
    """
    path = request.scope["path"]
    methods: set[str] = set()
    for route in getattr(request.app.state, "api_routes", ()):
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods.update(route.methods or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(MailctlError)
    async def mailctl_error(_request: Request, exc: MailctlError) -> JSONResponse:
        shown = reported(exc) or exc
        if shown.status_code >= 500:
            log.error("request failed: %s", shown.message, exc_info=exc.__cause__ or exc)
        headers = None
        if isinstance(shown, AuthError):
            headers = {"WWW-Authenticate": 'Bearer realm="mailctl"'}
        elif isinstance(shown, ThrottledError | UnavailableError) and shown.retry_after:
            headers = {"Retry-After": str(shown.retry_after)}
        # A client that logs in learns from the body, not the sentence, to ask for a code.
        extra: dict[str, object] | None = None
        if isinstance(shown, SecondFactorError):
            extra = {"totp_required": True}
        return envelope(shown.status_code, shown.message, headers, extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = _STATUS_MESSAGES.get(exc.status_code) or str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return envelope(exc.status_code, message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "path")
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return envelope(400, "Invalid request: " + "; ".join(problems) + ".")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        full = reported(exc)
        if full is not None:  # a write no adapter translated: still a full disk, not a bug
            return await mailctl_error(request, full)
        log.exception("unexpected error", exc_info=exc)
        return envelope(500, "Internal error; the server log has the details.")
