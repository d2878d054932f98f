"""What each route tells /openapi.json: the fields it reads and every status it answers.

A route declares its answers next to its path, in one call that lists them all::

    @router.post("/domains", openapi_extra=form("domain"), **answers(DomainCreated, 400, 401, 409))

``answers`` takes the success body (a model of ``api.bodies``, or a ``{media type:
schema}`` mapping) and the error statuses the route can give; each error is the envelope
``{"result": false, "msg": ...}`` (or a model extending it, as ``(409, JobBusy)``). 500 and
507 are added to every route: any of them may meet an internal error or a full disk,
answered in the envelope.
The fields a route reads by hand are declared with ``form`` (a request body, for POST) or
``query`` (query-string parameters, for GET and DELETE); the wire accepts every field in
any of the four encodings on every method, whatever the document shows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from mailctl.api.bodies import ErrorBody

ErrorSpec = int | tuple[int, type[BaseModel]]
OkBody = type[BaseModel] | dict[str, dict[str, Any]]

MEANINGS = {
    400: "Bad input: a missing or malformed field, a refused certificate or key.",
    401: "Missing, bad or expired token; or a wrong username or password.",
    404: "The domain, mailbox, alias, key, job or trash entry named does not exist.",
    409: "It exists already, or another action holds it.",
    413: "An upload or a field over its size limit.",
    429: "Too many attempts (failed logins, waiting jobs); wait Retry-After seconds.",
    500: "An internal error, or files on this host are not what mailctl expects.",
    502: "A remote party failed: the ACME server, or the TLS server asked.",
    503: "The database or a daemon is unavailable.",
    507: "The disk is full: the database or the data folder could not store the change.",
}

_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm."}},
    429: {
        "Retry-After": {
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "description": "Seconds to wait before trying again.",
        }
    },
}

# Yes/no fields accept exactly these words (api.fields.Fields.flag).
FLAG_VALUES = ("true", "false", "1", "0", "yes", "no", "on", "off")
# Ids are positive whole numbers in ASCII digits (services.mailboxes.parse_id).
ID_PATTERN = "^[1-9][0-9]{0,17}$"

# A numeric id in the path, as the document shows it; the route still parses it itself.
DomainIdPath = Annotated[
    str, Path(description="The domain's numeric id.", json_schema_extra={"pattern": ID_PATTERN})
]


def answers(ok: OkBody, *errors: ErrorSpec, description: str = "Success.") -> dict[str, Any]:
    """Keyword arguments for a route decorator: its success body and every error status."""
    responses: dict[int | str, dict[str, Any]] = {}
    if isinstance(ok, dict):
        responses[200] = {"description": description, "content": ok}
    else:
        responses[200] = {"description": description, "model": ok}
    for spec in (*errors, 500, 507):
        status, model = spec if isinstance(spec, tuple) else (spec, ErrorBody)
        entry: dict[str, Any] = {"description": MEANINGS[status], "model": model}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        responses[status] = entry
    # No response_model: routes return plain dicts; the model above only documents them.
    return {"response_model": None, "responses": responses}


def _field_schema(
    name: str, flags: tuple[str, ...], ids: tuple[str, ...] = (), binary: bool = False
) -> dict[str, Any]:
    if binary:
        return {"type": "string", "format": "binary"}
    if name in flags:
        return {"type": "string", "enum": list(FLAG_VALUES)}
    if name in ids:
        return {"type": "string", "pattern": ID_PATTERN}
    return {"type": "string"}


def _required(schema: dict[str, Any]) -> dict[str, Any]:
    """A required field is refused when blank (api.fields.Fields.require)."""
    if "enum" in schema or "pattern" in schema or schema.get("format") == "binary":
        return schema
    return {**schema, "minLength": 1, "pattern": "\\S"}


def form(
    *required: str,
    optional: tuple[str, ...] = (),
    files: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``openapi_extra`` for a body of named fields: multipart, urlencoded or JSON."""

    def field(name: str, binary: bool = False) -> dict[str, Any]:
        schema = _field_schema(name, flags, ids, binary)
        return _required(schema) if name in required else schema

    names = (*required, *optional)
    properties = {name: field(name) for name in names}
    for name in files:
        properties[name] = field(name, binary=True)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    # A JSON body carries files as text (a PEM, say).
    json_schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: field(name) for name in (*names, *files)},
    }
    if required:
        schema["required"] = list(required)
        json_schema["required"] = list(required)
    return {
        "requestBody": {
            "required": bool(required),
            "content": {
                "multipart/form-data": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/json": {"schema": json_schema},
            },
        }
    }


def query(
    *required: str, optional: tuple[str, ...] = (), flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``openapi_extra`` for named fields in the query string (GET and DELETE).

    A body with the same fields works too (``curl -F`` on GET and DELETE), but a body on
    GET has no meaning to most HTTP tools, so the document shows the query string.
    """
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": True,
            "schema": _required(_field_schema(name, flags)),
        }
        for name in required
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": _field_schema(name, flags)}
        for name in optional
    ]
    return {"parameters": parameters}


def install(app: FastAPI) -> None:
    """Serve the document with errors as they are sent: JSON, and no 422 (they are 400s)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
                for status, response in responses.items():
                    content = response.get("content")
                    if status[0] in "45" and content:
                        # Errors are JSON even where success is text (FastAPI gives an
                        # error model the route's media type).
                        response["content"] = {"application/json": next(iter(content.values()))}
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = build  # type: ignore[method-assign]
