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
