"""An operation's field model parses the request and describes it in /openapi.json alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from mailctl.api.fields import ID, Fields, Note, Parse, field_specs, parse_fields
from mailctl.api.openapi import form, query
from mailctl.errors import InvalidInputError, MailctlError, TooLargeError


def _port(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInputError("The field 'port' must be a number.")
    return int(value)


@dataclass(frozen=True)
class Sample:
    """Every kind of field a model takes."""

    domain: str
    id: Annotated[str, ID]
    current: Annotated[str, Note("the current password")]
    pem: bytes
    selector: str | None = None
    rotate: bool = False
    key: bytes | None = None
    port: Annotated[int | None, Parse(_port, {"type": "string"})] = None


def _parse(values: dict[str, str], max_file_bytes: int = 100) -> Sample:
    return asyncio.run(parse_fields(Sample, Fields(values=values), max_file_bytes))


COMPLETE = {"domain": "example.com", "id": "7", "current": "old-pass", "pem": "-----BEGIN"}


def test_fields_are_filled_with_their_types() -> None:
    """Text stays text, flags become booleans, file fields bytes, parsed fields their type."""
    sample = _parse({**COMPLETE, "rotate": "yes", "port": "25", "selector": ""})
    assert sample == Sample(
        domain="example.com",
        id="7",
        current="old-pass",
        pem=b"-----BEGIN",
        selector="",
        rotate=True,
        key=None,
        port=25,
    )


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("domain", "The field 'domain' is required."),
        ("id", "The field 'id' is required."),
        ("current", "The field 'current' (the current password) is required."),
        ("pem", "The field 'pem' is required."),
    ],
)
def test_a_missing_or_blank_required_field_is_named(missing: str, message: str) -> None:
    """Absent and blank required fields are a 400 that names the field, in model order."""
    for values in ({k: v for k, v in COMPLETE.items() if k != missing}, {**COMPLETE, missing: " "}):
        with pytest.raises(InvalidInputError) as caught:
            _parse(values)
        assert caught.value.message == message


def test_bad_values_are_refused_as_the_field_reader_says() -> None:
    """A flag that is not yes or no, a port a reader refuses, a file over its limit."""
    with pytest.raises(InvalidInputError, match=r"The field 'rotate' must be true or false\."):
        _parse({**COMPLETE, "rotate": "maybe"})
    with pytest.raises(InvalidInputError, match=r"The field 'port' must be a number\."):
        _parse({**COMPLETE, "port": "smtp"})
    with pytest.raises(TooLargeError):
        _parse({**COMPLETE, "key": "x" * 11}, max_file_bytes=10)


def test_the_document_comes_from_the_same_model() -> None:
    """form() and query() list the model's fields, its required ones, kinds and notes."""
    body = form(Sample)["requestBody"]
    assert body["required"] is True
    multipart = body["content"]["multipart/form-data"]["schema"]
    as_json = body["content"]["application/json"]["schema"]
    names = [spec.name for spec in field_specs(Sample)]
    assert list(multipart["properties"]) == names == list(as_json["properties"])
    assert multipart["required"] == ["domain", "id", "current", "pem"] == as_json["required"]
    props: dict[str, Any] = multipart["properties"]
    assert props["domain"] == {"type": "string", "minLength": 1, "pattern": "\\S"}
    assert props["id"]["pattern"] == "^[1-9][0-9]{0,17}$"
    assert props["current"]["description"] == "The current password."
    assert props["pem"] == {"type": "string", "format": "binary"}
    assert as_json["properties"]["pem"] == {"type": "string", "minLength": 1, "pattern": "\\S"}
    assert props["rotate"]["enum"][:2] == ["true", "false"]
    assert props["port"] == {"type": "string"}
    parameters = {p["name"]: p for p in query(Sample)["parameters"]}
    assert list(parameters) == names
    assert parameters["domain"]["required"] and not parameters["selector"]["required"]


def test_a_field_type_no_request_carries_is_refused_when_described() -> None:
    """A model field the parser could not fill fails at start-up, not on a request."""

    @dataclass(frozen=True)
    class Odd:
        count: int

    @dataclass(frozen=True)
    class Undefaulted:
        name: str | None

    for model in (Odd, Undefaulted):
        with pytest.raises(TypeError):
            field_specs(model)


def test_parse_errors_are_client_errors() -> None:
    """Every refusal of a model is a MailctlError in the 4xx range (never a 500)."""
    for values in ({}, {**COMPLETE, "rotate": "2"}, {**COMPLETE, "port": "-1"}):
        with pytest.raises(MailctlError) as caught:
            _parse(values)
        assert 400 <= caught.value.status_code < 500
