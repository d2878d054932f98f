"""What each route tells /openapi.json: the fields it reads and every status it answers.

A route declares its answers next to its path, in one call that lists them all::

    @router.post("/domains", **answers(DomainCreated, 400, 401, 409))
    def create_domain(..., fields: Annotated[NewDomain, Depends(parsed(NewDomain))]): ...

``answers`` takes the success body (a model of ``api.bodies``, or a ``{media type:
schema}`` mapping) and the error statuses the route can give; each error is the envelope
``{"result": false, "msg": ...}`` (or a model extending it, as ``(409, JobBusy)``). 500 and
507 are added to every route: any of them may meet an internal error or a full disk,
answered in the envelope.
The fields a route reads are described from the model its ``parsed(Model)`` dependency
fills (``api.deps``, ``api.fields``), as the app takes in the router: ``form(Model)`` as a
request body (POST), ``query(Model)`` as query-string parameters (GET and DELETE). A route
names its model once; one with a body of its own kind (the streamed import) sets
``openapi_extra`` itself. The wire accepts every field in any of the four encodings on
every method, whatever the document shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import FastAPI, Path
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from mailctl.api.bodies import ErrorBody
from mailctl.api.deps import AUTHENTICATED, SECURITY_SCHEMES, model_filled_by
from mailctl.api.fields import FLAG_WORDS, FieldSpec, field_specs

ErrorSpec = int | tuple[int, type[BaseModel]]
OkBody = type[BaseModel] | dict[str, dict[str, Any]]

MEANINGS = {
    304: "Not modified: the listing is still the one the If-None-Match ETag names.",
    400: "Bad input: a missing or malformed field, a refused certificate or key.",
    401: "Missing, bad or expired token; a wrong username or password; or a two-factor code "
    "missing, wrong or used.",
    403: "The caller's role or key may not do this (only a superadmin may; a read-only key).",
    404: "The domain, mailbox, alias, key, job or trash entry named does not exist.",
    409: "It exists already, or another action holds it.",
    413: "An upload or a field over its size limit.",
    429: "Too many attempts (failed logins, waiting jobs); wait Retry-After seconds.",
    500: "An internal error, or files on this host are not what mailctl expects.",
    502: "A remote party failed: the ACME server, or the TLS server asked.",
    503: "The database or a daemon is unavailable.",
    507: "The disk is full: the database or the data folder could not store the change.",
}

_LISTING_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "A tag of this listing's body."}
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
FLAG_VALUES = FLAG_WORDS
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
        if status == 304:
            entry = {"description": MEANINGS[status], "headers": _LISTING_HEADERS}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        responses[status] = entry
    # No response_model: routes return plain dicts; the model above only documents them.
    return {"response_model": None, "responses": responses}


def field_schema(spec: FieldSpec, json: bool = False) -> dict[str, Any]:
    """The schema of one field of an operation's model (``api.fields``)."""
    schema: dict[str, Any]
    if spec.kind == "file" and not json:
        # A JSON body carries files as text (a PEM, say), checked as text below.
        schema = {"type": "string", "format": "binary"}
    elif spec.kind == "flag":
        schema = {"type": "string", "enum": list(FLAG_VALUES)}
    elif spec.json is not None:
        # In a JSON body the value itself; in a form or query string, its JSON text.
        schema = dict(spec.json.schema) if json else {"type": "string", "minLength": 1}
    elif spec.kind == "id":
        schema = {"type": "string", "pattern": ID_PATTERN}
    elif spec.parse is not None:
        schema = dict(spec.parse.schema)
    elif spec.required:
        # A required field is refused when blank (api.fields.Fields.require).
        schema = {"type": "string", "minLength": 1, "pattern": "\\S"}
    else:
        schema = {"type": "string"}
    if spec.note:
        schema["description"] = spec.note[:1].upper() + spec.note[1:] + "."
    return schema


def form(model: type[Any]) -> dict[str, Any]:
    """``openapi_extra`` for a body of the model's fields: multipart, urlencoded or JSON."""
    specs = field_specs(model)
    required = [spec.name for spec in specs if spec.required]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: field_schema(spec) for spec in specs},
    }
    json_schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: field_schema(spec, json=True) for spec in specs},
    }
    if required:
        schema["required"] = required
        json_schema["required"] = required
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


def query(model: type[Any]) -> dict[str, Any]:
    """``openapi_extra`` for the model's fields in the query string (GET and DELETE).

    A body with the same fields works too (``curl -F`` on GET and DELETE), but a body on
    GET has no meaning to most HTTP tools, so the document shows the query string.
    """
    return {
        "parameters": [
            {
                "name": spec.name,
                "in": "query",
                "required": spec.required,
                "schema": field_schema(spec),
            }
            for spec in field_specs(model)
        ]
    }


def describe_fields(routes: Iterable[BaseRoute]) -> None:
    """Give each route that reads a ``parsed(Model)`` its fields' description from Model.

    Called on each router before the app includes it, so the document is built with it.
    """
    for route in routes:
        if not isinstance(route, APIRoute) or route.openapi_extra is not None:
            continue
        filled = (model_filled_by(d.call) for d in route.dependant.dependencies)
        models = {model for model in filled if model is not None}
        if len(models) > 1:
            raise TypeError(f"{route.path} reads the fields of {len(models)} models; one only")
        for model in models:
            in_body = "POST" in (route.methods or ())
            route.openapi_extra = form(model) if in_body else query(model)


def _needs_token(dependant: Any) -> bool:
    return any(
        dependency.call in AUTHENTICATED or _needs_token(dependency)
        for dependency in dependant.dependencies
    )


def _document_security(app: FastAPI, document: dict[str, Any]) -> None:
    """Each operation that takes a token names both ways to send it (api.deps), and the
    403 that a narrower role or key may get there."""
    schemes = {scheme.scheme_name: scheme for scheme in SECURITY_SCHEMES}
    requirement: list[dict[str, list[str]]] = [{name: []} for name in schemes]
    used = False
    # The routes as declared (app.routes holds the included routers, built lazily).
    for route in getattr(app.state, "api_routes", ()):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if not _needs_token(route.dependant):
            continue
        operations = document.get("paths", {}).get(route.path_format, {})
        for method in route.methods or ():
            if method.lower() in operations:
                operation = operations[method.lower()]
                operation["security"] = requirement
                responses = operation.setdefault("responses", {})
                responses["403"] = {
                    "description": MEANINGS[403],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    },
                }
                operation["responses"] = dict(sorted(responses.items()))
                used = True
    if used:
        components = document.setdefault("components", {})
        components["securitySchemes"] = {
            name: scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
            for name, scheme in schemes.items()
        }


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
        _document_security(app, document)
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = build  # type: ignore[method-assign]
