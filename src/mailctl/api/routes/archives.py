"""Domain archives and the trash: export, import, list and restore deleted mail.

``POST /import/domain`` takes the archive in either of two shapes, both streamed to a
private file under data_dir (never held in memory, never over ``max_import_bytes``):

* the raw request body (``curl -H 'Content-Type: application/gzip' --data-binary
  @example.com.tar.gz``), with ``replace=true`` in the query string; any content type
  other than multipart is read as the archive itself;
* a multipart form (``curl -F archive=@example.com.tar.gz -F replace=true``) whose file
  field is ``archive``.

The general field reader is not used for the upload: it caps every part at
``max_field_bytes``, far below an archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mailctl.api.bodies import ExportWritten, Imported, Restored, TrashList
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.fields import Fields, field_specs, parse_fields
from mailctl.api.openapi import answers, field_schema, query
from mailctl.api.responses import JSONRoute
from mailctl.domain.numbers import ascii_digits, ascii_int
from mailctl.errors import InvalidInputError, TooLargeError
from mailctl.services import archives, scope, trash
from mailctl.services.archives import UploadSpool

router = APIRouter(tags=["archives"], route_class=JSONRoute)

ARCHIVE_FIELD = "archive"
MAX_FORM_FIELDS = 16
MAX_FORM_FIELD_BYTES = 1024
# Multipart framing around the archive: boundaries, part headers, a few small fields.
_FORM_OVERHEAD = 64 * 1024
_JSON_TYPES = ("application/json",)
_ARCHIVE_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")


@dataclass(frozen=True)
class ExportRequest:
    """The fields of export_domain."""

    domain: str
    format: str | None = None


@dataclass(frozen=True)
class ImportOptions:
    """The fields that come with an imported archive (in the query string or the form)."""

    replace: bool = False


@dataclass(frozen=True)
class TrashEntryId:
    """The fields of restore_trash."""

    id: str


def _wants_json(format_field: str | None, accept: str) -> bool:
    """JSON (archive written on the server) when asked by ``format=json`` or ``Accept``."""
    if format_field is not None and format_field.strip():
        chosen = format_field.strip().lower()
        if chosen == "json":
            return True
        if chosen in ("tar.gz", "tgz", "gzip", "archive"):
            return False
        raise InvalidInputError("The field 'format' must be json or tar.gz.")
    # A client that names JSON and not gzip wants JSON; "*/*" alone still gets the archive.
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(types & set(_JSON_TYPES)) and not types & set(_ARCHIVE_TYPES)


@router.get(
    "/export/domain",
    **answers(
        {
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": ExportWritten.model_json_schema()},
        },
        400,
        401,
        404,
        413,
        503,
        description="The archive, or with format=json where it was written on the server.",
    ),
)
def export_domain(
    request: Request,
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[ExportRequest, Depends(parsed(ExportRequest))],
) -> Response:
    """Stream a domain as a .tar.gz: mailboxes with their password hashes, aliases, DKIM
    keys and every maildir file. ``format=json`` (or ``Accept: application/json``) writes
    the archive in the server's archive directory and answers where it is instead.
    """
    name = fields.domain
    scope.domain_name(actor, name)
    if _wants_json(fields.format, request.headers.get("accept", "")):
        written = archives.export_to_file(ctx, actor, name)
        return JSONResponse(
            {
                "result": True,
                "file": str(written.path),
                "size": written.size,
                "sha256": written.sha256,
            }
        )
    export = archives.prepare_export(ctx, actor, name)
    return StreamingResponse(
        export.chunks(),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f"attachment; filename={export.filename}",
            # The archive holds password hashes and private keys: no cache may keep it.
            "Cache-Control": "no-store",
        },
    )


class _FormUpload:
    """Streams a multipart body: the ``archive`` part into the spool, small fields kept."""

    def __init__(self, spool: UploadSpool, boundary: bytes) -> None:
        self.spool = spool
        self.values: dict[str, str] = {}
        self.archive_seen = False
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._is_archive = False
        self._value = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_archive = self._name == ARCHIVE_FIELD
        if self._is_archive:
            if self.archive_seen:
                raise InvalidInputError("The form holds more than one 'archive' field.")
            self.archive_seen = True
        elif b"filename" in options:
            raise InvalidInputError(
                f"The form's file field is {self._name!r}; send the archive as 'archive'."
            )
        elif len(self.values) >= MAX_FORM_FIELDS:
            raise InvalidInputError("The form has too many fields.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_archive:
            self.spool.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FORM_FIELD_BYTES:
            raise TooLargeError(f"The form field {self._name!r} is too large.")

    def _part_end(self) -> None:
        if not self._is_archive:
            self.values[self._name] = self._value.decode("utf-8", "replace")


async def _receive(request: Request, spool: UploadSpool) -> Fields:
    """Stream the upload into ``spool``; return the fields that came with it."""
    fields = Fields(values=dict(request.query_params))
    length = request.headers.get("content-length")
    if length is not None and ascii_digits(length):
        size = ascii_int(length)  # None: more digits than any size mailctl takes
        if size is None or size > spool.limit + _FORM_OVERHEAD:
            raise TooLargeError(f"The archive is larger than {spool.limit} bytes.")
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    form_upload = None
    if kind == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidInputError("The multipart form has no boundary.")
        form_upload = _FormUpload(spool, boundary)
    try:
        async for chunk in request.stream():
            if form_upload is None:
                spool.write(chunk)
            else:
                form_upload.parser.write(chunk)
        if form_upload is not None:
            form_upload.parser.finalize()
    except MultipartParseError as exc:
        raise InvalidInputError(f"The multipart form could not be read: {exc}.") from exc
    except ClientDisconnect as exc:
        raise InvalidInputError(
            "The upload was interrupted before the archive was complete."
        ) from exc
    if form_upload is not None:
        if not form_upload.archive_seen:
            raise InvalidInputError("The form has no 'archive' file field.")
        fields.values.update(form_upload.values)
    return fields


_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        ARCHIVE_FIELD: {"type": "string", "format": "binary"},
                        **{spec.name: field_schema(spec) for spec in field_specs(ImportOptions)},
                    },
                    "required": [ARCHIVE_FIELD],
                }
            },
        },
    },
    **query(ImportOptions),
}


@router.post(
    "/import/domain",
    openapi_extra=_IMPORT_BODY,
    **answers(Imported, 400, 401, 409, 413, 503),
)
async def import_domain(request: Request, ctx: ContextDep, actor: ActorDep) -> dict[str, Any]:
    """Import a domain archive (raw body or multipart field ``archive``).

    Every checksum, name, hash and key is checked before anything changes. An existing
    domain is a 409 unless ``replace=true``, which moves it to the trash first.
    """
    scope.require_superadmin(actor, "import domains")
    with archives.receive_upload(ctx) as spool:
        fields = await _receive(request, spool)
        options = await parse_fields(ImportOptions, fields, 0)
        path = spool.finish()
        result = await run_in_threadpool(archives.import_domain, ctx, actor, path, options.replace)
    return {
        "result": True,
        "msg": f"The domain {result.domain} was imported"
        + (" in place of the old one, which is in the trash." if result.replaced else "."),
        "domain": result.domain,
        "mailboxes": result.mailboxes,
        "aliases": result.aliases,
        "dkim_keys": result.dkim_keys,
        "files": result.files,
    }


def _trash_json(item: trash.TrashItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "target": item.target,
        "deleted_at": item.deleted_at.isoformat() if item.deleted_at else None,
        "has_data": item.has_data,
        "mailboxes": item.mailboxes,
    }


@router.get("/trash", **answers(TrashList, 401, 503))
def list_trash(ctx: ContextDep, _actor: ActorDep) -> dict[str, Any]:
    """Deleted mailboxes and domains waiting in the trash, oldest first (for a domain
    admin, its domains' mailboxes)."""
    items = trash.list_trash(ctx, _actor.scope)
    return {"result": True, "trash": [_trash_json(item) for item in items]}


@router.post(
    "/trash/restore",
    **answers(Restored, 400, 401, 404, 409, 413, 503),
)
def restore_trash(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[TrashEntryId, Depends(parsed(TrashEntryId))]
) -> dict[str, Any]:
    """Restore a deleted mailbox or domain, with its password hashes, aliases and keys."""
    restored = trash.restore(ctx, actor, fields.id)
    return {
        "result": True,
        "msg": f"The {restored.kind} {restored.target} was restored.",
        "kind": restored.kind,
        "target": restored.target,
        "mailboxes": restored.mailboxes,
        "aliases": restored.aliases,
        "dkim_keys": restored.dkim_keys,
    }
