"""Running the API: one process, or several worker processes sharing one listening socket.

One Python process serves with one core at a time (the GIL); `mailctl serve` starts one
worker per core by default (``MAILCTL_WORKERS``). The workers share nothing but the
database, which already holds everything several processes must agree on (tokens,
login throttles, jobs). What runs once per server runs once, in the parent, before any
worker starts: the schema check and the clean-up of what a killed process left.
"""

from __future__ import annotations

from typing import Any

from mailctl.config import Settings


def password_slots(settings: Settings) -> int:
    """Hashes one worker computes at once, so the server as a whole stays within
    ``password_workers`` (Argon2id takes 64 MiB per hash)."""
    return max(1, settings.password_workers // settings.workers)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn is told, for one process or many."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": settings.access_log,
        "proxy_headers": settings.trust_forwarded_for,
    }


def serve(settings: Settings) -> None:
    """Serve until told to stop (SIGINT, SIGTERM); the schema was checked by the caller."""
    import uvicorn

    from mailctl.api.app import create_app

    if settings.workers == 1:
        uvicorn.run(create_app(settings), **uvicorn_options(settings))
        return

    from mailctl.api.supervise import serve_forked
    from mailctl.services import leftovers
    from mailctl.services.context import Context

    ctx = Context.from_settings(settings)
    try:
        leftovers.clean_up_safely(ctx)
    finally:
        ctx.close()
    # Each worker gets its share of the password slots.
    per_worker = settings.model_copy(update={"password_workers": password_slots(settings)})
    options = uvicorn_options(settings)
    host, port = options.pop("host"), options.pop("port")
    serve_forked(
        host, port, settings.workers, lambda: create_app(per_worker, clean_up=False), options
    )
