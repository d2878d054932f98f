"""Paths with a trailing slash answer as the same path without it, instead of a redirect.

A 307 to the other spelling would break scripts: curl does not follow redirects unless
told (``-L``), and the redirect carried no JSON. So ``/domains/`` is ``/domains``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class TrailingSlash:
    """ASGI middleware: strip trailing slashes from the path before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                stripped = path.rstrip("/") or "/"
                raw: bytes = scope.get("raw_path") or path.encode()
                scope = {
                    **scope,
                    "path": stripped,
                    "raw_path": raw.rstrip(b"/") or b"/",
                }
        await self.app(scope, receive, send)
