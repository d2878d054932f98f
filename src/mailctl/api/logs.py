"""Keeping secrets out of the server's logs: query-string values never reach the access log.

Clients may send any field, passwords included, in the query string (the old service's
scripts do); uvicorn's access log would write them in clear with the request line.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, quote

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"


def redact_query(path: str) -> str:
    """``/auth?username=a&password=b`` -> ``/auth?username=[redacted]&password=[redacted]``.

    Only the field names stay, so a log still shows which fields a request carried.
    """
    base, sep, query = path.partition("?")
    if not sep:
        return path
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    if not names:
        return f"{base}?{REDACTED}" if query else base
    return base + "?" + "&".join(f"{quote(name[:64], safe='')}={REDACTED}" for name in names)


class RedactQueryFilter(logging.Filter):
    """Rewrites the request path of uvicorn's access records without their query values."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs: client address, method, path with query string, HTTP version, status.
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger once; logging set-up later keeps it."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
        logger.addFilter(RedactQueryFilter())
