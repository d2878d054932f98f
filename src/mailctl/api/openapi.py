"""OpenAPI descriptions of the form fields each method reads."""

from __future__ import annotations

from typing import Any


def form(
    *required: str, optional: tuple[str, ...] = (), files: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``openapi_extra`` declaring the fields a route reads by hand (any content type)."""
    properties: dict[str, Any] = {name: {"type": "string"} for name in (*required, *optional)}
    for name in files:
        properties[name] = {"type": "string", "format": "binary"}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    json_schema = {
        "type": "object",
        "properties": {n: {"type": "string"} for n in (*required, *optional, *files)},
    }
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


# The error envelope every failure answers with (DESIGN.md), and what each status means.
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["result", "msg"],
    "properties": {"result": {"type": "boolean", "enum": [False]}, "msg": {"type": "string"}},
}
ERROR_MEANINGS = {
    400: "Bad input: a missing or malformed field.",
    401: "Missing, bad, expired or revoked token; or a wrong password.",
    404: "Not found.",
    409: "Exists already, or changed by another request meanwhile.",
    413: "A field or the request body is over its size limit.",
    429: "Too many failed logins from this address; wait Retry-After seconds.",
    503: "The database is unavailable.",
}
_ERROR_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    },
}


def body(**properties: dict[str, Any]) -> dict[str, Any]:
    """A success body's JSON schema: ``result: true`` and the given keys, all present."""
    fields = {"result": {"type": "boolean", "enum": [True]}, **properties}
    return {"type": "object", "required": list(fields), "properties": fields}


def answers(
    success: dict[str, Any], *errors: int, description: str = "Done."
) -> dict[int | str, Any]:
    """``responses=`` of a route: its 200 body, and each error status it answers.

    Every error answer is the envelope ``{"result": false, "msg": "..."}``.
    """
    declared: dict[int | str, Any] = {
        200: {"description": description, "content": {"application/json": {"schema": success}}}
    }
    for status in errors:
        answer: dict[str, Any] = {
            "description": ERROR_MEANINGS[status],
            "content": {"application/json": {"schema": ERROR_BODY}},
        }
        if status in _ERROR_HEADERS:
            answer["headers"] = _ERROR_HEADERS[status]
        declared[status] = answer
    return declared
