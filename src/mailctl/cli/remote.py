"""Talk to a remote mailctl API: log in, export and import domains, list and restore trash."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from mailctl.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    MailctlError,
    NotFoundError,
    ThrottledError,
    TooLargeError,
    UnavailableError,
    UpstreamError,
)

CHUNK = 64 * 1024
TIMEOUT = httpx.Timeout(30.0, read=600.0)
# Errors keep their meaning (and so the CLI's exit code) across the wire.
_BY_STATUS: dict[int, type[MailctlError]] = {
    400: InvalidInputError,
    401: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: ThrottledError,
    503: UnavailableError,
}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\.tar\.gz")


def _error(response: httpx.Response) -> MailctlError:
    try:
        body = response.json()
        message = str(body["msg"]) if isinstance(body, dict) and "msg" in body else None
    except ValueError:
        message = None
    if message is None:
        message = f"The server answered {response.status_code} {response.reason_phrase}."
    return _BY_STATUS.get(response.status_code, UpstreamError)(message)


@contextlib.contextmanager
def connect(
    url: str, token: str | None, username: str | None, password: str | None
) -> Iterator[httpx.Client]:
    """A client for the API at ``url``, holding a token given or obtained by logging in."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"The URL {url!r} must start with http:// or https://.")
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT) as client:
            if not token:
                if not username or password is None:
                    raise AuthError(
                        "Give --token (or MAILCTL_TOKEN), or --username and --password, "
                        "to use a remote mailctl."
                    )
                response = client.post(
                    "/auth", files={"username": (None, username), "password": (None, password)}
                )
                if response.status_code != 200:
                    raise _error(response)
                token = str(response.json()["token"])
            client.headers["Auth-token"] = token
            yield client
    except httpx.HTTPError as exc:
        raise UnavailableError(f"Cannot talk to {url}: {exc}.") from exc


def _filename(response: httpx.Response, domain: str) -> str:
    disposition = response.headers.get("content-disposition", "")
    match = re.search(r'filename="?([^";]+)"?', disposition)
    # The name comes from the server: only a plain file name is taken, never a path.
    if match and _SAFE_NAME.fullmatch(match.group(1)):
        return match.group(1)
    return f"{domain}.tar.gz"


def download_export(
    client: httpx.Client, domain: str, output: Path, progress: Callable[[int], None]
) -> tuple[Path, int]:
    """Stream the export of ``domain`` into ``output`` (a file, or a directory to put it in).

    The archive is written to a private temporary sibling and renamed into place once
    complete, so an interrupted download never leaves a partial archive behind.
    """
    with client.stream("GET", "/export/domain", params={"domain": domain}) as response:
        if response.status_code != 200:
            response.read()
            raise _error(response)
        target = output / _filename(response, domain) if output.is_dir() else output
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            raise InvalidInputError(f"Cannot write in {target.parent}: {exc.strerror}.") from exc
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in response.iter_bytes(CHUNK):
                    handle.write(chunk)
                    size += len(chunk)
                    progress(size)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
    return target, size


def upload_import(
    client: httpx.Client, archive: Path, replace: bool, progress: Callable[[int], None]
) -> dict[str, Any]:
    """Stream ``archive`` to the API's import as the raw request body; return its answer."""
    try:
        size = archive.stat().st_size
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {archive}: {exc.strerror}.") from exc

    def body() -> Iterator[bytes]:
        sent = 0
        with archive.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                sent += len(chunk)
                progress(sent)
                yield chunk

    response = client.post(
        "/import/domain",
        params={"replace": "true"} if replace else None,
        content=body(),
        # A known length lets the server refuse an oversized archive before it is sent.
        headers={"Content-Type": "application/gzip", "Content-Length": str(size)},
    )
    return _json(response)


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise _error(response)
    answer: dict[str, Any] = response.json()
    return answer


def list_trash(client: httpx.Client) -> list[dict[str, Any]]:
    """The remote trash's entries, as ``GET /trash`` lists them."""
    items: list[dict[str, Any]] = _json(client.get("/trash"))["trash"]
    return items


def restore_trash(client: httpx.Client, trash_id: str) -> dict[str, Any]:
    """Restore one entry of the remote trash; the API's answer."""
    return _json(client.post("/trash/restore", files={"id": (None, trash_id)}))
