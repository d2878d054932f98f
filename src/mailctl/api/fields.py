"""Request fields from anywhere the old clients put them: form, multipart, JSON or query.

Each operation names its fields once, as a frozen dataclass whose annotations say what
each field is; ``parse_fields`` fills it from the request and ``api.openapi`` describes it
from the same annotations::

    @dataclass(frozen=True)
    class NewKey:
        domain: str                    # required text: absent or blank is a 400
        selector: str | None = None    # optional text, as sent
        rotate: bool = False           # a yes/no word; absent means no

``bytes`` is a file part (or a text field of that name), ``Annotated[str, ID]`` a numeric
id kept as text, ``Annotated[T, Parse(read, schema)]`` a field read by a function of its
own, ``Annotated[object, Json(schema)]`` a list or object (in a JSON body as itself, in
any other encoding as JSON text), and ``Note`` says what a field holds.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from mailctl.domain.numbers import ascii_digits, ascii_int, loads_limited
from mailctl.errors import InvalidInputError, TooLargeError

MAX_FIELDS = 64
MAX_FILES = 8
# The words a yes/no field takes, yes and no in turn.
FLAG_WORDS = ("true", "false", "1", "0", "yes", "no", "on", "off")


@dataclass
class Fields:
    """The named values of one request; body values win over query-string values."""

    values: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)
    # Lists and objects of a JSON body, for the fields that take them (``Json``).
    structured: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str, note: str | None = None) -> str:
        value = self.values.get(name)
        if value is None or value.strip() == "":
            raise InvalidInputError(_required_message(name, note))
        return value

    def flag(self, name: str) -> bool:
        """Read a yes/no field (true/false, 1/0, yes/no, on/off); absent means no."""
        value = self.values.get(name)
        if value is None or value.strip() == "":
            return False
        lowered = value.strip().lower()
        if lowered in FLAG_WORDS[::2]:
            return True
        if lowered in FLAG_WORDS[1::2]:
            return False
        raise InvalidInputError(f"The field '{name}' must be true or false.")

    async def read_blob(self, name: str, max_bytes: int) -> bytes | None:
        """The bytes of a file field, or of a text field of that name; size-checked."""
        upload = self.files.get(name)
        if upload is not None:
            data = await upload.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise TooLargeError(f"The field '{name}' is larger than {max_bytes} bytes.")
            return data
        text = self.values.get(name)
        if text is None:
            return None
        data = text.encode("utf-8")
        if len(data) > max_bytes:
            raise TooLargeError(f"The field '{name}' is larger than {max_bytes} bytes.")
        return data


def _required_message(name: str, note: str | None) -> str:
    shown = f"'{name}' ({note})" if note else f"'{name}'"
    return f"The field {shown} is required."


@dataclass(frozen=True)
class Note:
    """Annotation: what a field holds, in the document and in its "required" message."""

    text: str


@dataclass(frozen=True)
class Parse:
    """Annotation: read the field's text (or None) with ``read``; ``schema`` documents it."""

    read: Callable[[str | None], Any]
    schema: dict[str, Any]


@dataclass(frozen=True)
class Json:
    """Annotation: the field is a JSON list or object; ``schema`` documents it.

    A JSON body carries it as itself, the other encodings as JSON text; the route gets
    the decoded value (or None when absent) and checks its shape.
    """

    schema: dict[str, Any]


class _IdMarker:
    """Annotation: the field is a numeric id (documented with its pattern; kept as text)."""


ID = _IdMarker()

Kind = Literal["text", "flag", "id", "file", "parsed", "json"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of an operation, as read from its model's annotation."""

    name: str
    kind: Kind
    required: bool
    note: str | None = None
    parse: Parse | None = None
    json: Json | None = None


def _spec(name: str, hint: Any, has_default: bool) -> FieldSpec:
    note: str | None = None
    parse: Parse | None = None
    json: Json | None = None
    is_id = False
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, Note):
                note = extra.text
            elif isinstance(extra, Parse):
                parse = extra
            elif extra is ID:
                is_id = True
            elif isinstance(extra, Json):
                json = extra
    if json is not None:
        return FieldSpec(name, "json", not has_default, note, json=json)
    if parse is not None:
        return FieldSpec(name, "parsed", False, note, parse)
    args = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    optional = type(None) in args
    args.discard(type(None))
    if args == {bool}:
        return FieldSpec(name, "flag", False, note)
    if args == {bytes}:
        return FieldSpec(name, "file", not optional, note)
    if args != {str}:
        raise TypeError(f"The field {name} has a type no request field takes: {hint}.")
    if optional != has_default:
        raise TypeError(f"The field {name} must default to None exactly when it is optional.")
    return FieldSpec(name, "id" if is_id else "text", not optional, note)


_SPECS: dict[type[Any], tuple[FieldSpec, ...]] = {}


def field_specs(model: type[Any]) -> tuple[FieldSpec, ...]:
    """The fields of an operation's model, in the order they are checked."""
    if model not in _SPECS:
        _SPECS[model] = _read_specs(model)
    return _SPECS[model]


def _read_specs(model: type[Any]) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(model, include_extras=True)
    return tuple(
        _spec(
            item.name,
            hints[item.name],
            item.default is not dataclasses.MISSING
            or item.default_factory is not dataclasses.MISSING,
        )
        for item in dataclasses.fields(model)
    )


Model = TypeVar("Model")


async def parse_fields(model: type[Model], fields: Fields, max_file_bytes: int) -> Model:
    """Fill an operation's model from the request's fields; InvalidInputError (400) or
    TooLargeError (413) for a field that is missing, blank, malformed or too large."""
    values: dict[str, Any] = {}
    specs = field_specs(model)
    takes_json = {spec.name for spec in specs if spec.kind == "json"}
    for name in fields.structured:
        if name not in takes_json:
            raise InvalidInputError(f"The field '{_shown(name)}' must be a plain value.")
    for spec in specs:
        if spec.kind == "json":
            values[spec.name] = _json_value(fields, spec)
        elif spec.kind == "flag":
            values[spec.name] = fields.flag(spec.name)
        elif spec.kind == "file":
            data = await fields.read_blob(spec.name, max_file_bytes)
            if spec.required and (data is None or not data.strip()):
                raise InvalidInputError(_required_message(spec.name, spec.note))
            values[spec.name] = data
        elif spec.parse is not None:
            values[spec.name] = spec.parse.read(fields.get(spec.name))
        elif spec.required:
            values[spec.name] = fields.require(spec.name, spec.note)
        else:
            values[spec.name] = fields.get(spec.name)
    return model(**values)


def _json_value(fields: Fields, spec: FieldSpec) -> Any:
    """A ``Json`` field's value: from a JSON body as sent, else decoded from its text."""
    if spec.name in fields.structured:
        return fields.structured[spec.name]
    text = fields.get(spec.name)
    if text is None or not text.strip():
        if spec.required:
            raise InvalidInputError(_required_message(spec.name, spec.note))
        return None
    return loads_limited(text, f"The field '{spec.name}'")


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


async def read_fields(request: Request, max_bytes: int) -> Fields:
    """Collect the request's fields whatever the method and content type."""
    fields = Fields(values=dict(request.query_params))
    length = request.headers.get("content-length")
    if length is not None and ascii_digits(length):
        size = ascii_int(length)  # None: more digits than any size mailctl takes
        if size is None or size > max_bytes:
            raise TooLargeError(f"The request body is larger than {max_bytes} bytes.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(
                max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=max_bytes
            )
        except MultiPartException as exc:
            raise InvalidInputError(f"The form data could not be read: {exc.message}.") from exc
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name in fields.files:
                    # A repeated part: the last one counts; the one it replaces is closed
                    # here, as nothing else holds it.
                    await fields.files[name].close()
                fields.files[name] = value
            else:
                fields.values[name] = value
    elif content_type == "application/json" or content_type.endswith("+json"):
        body = await _read_limited(request, max_bytes)
        if body.strip():
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError("The request body is not valid JSON.") from exc
            data = loads_limited(text, "The JSON body")
            if not isinstance(data, dict):
                raise InvalidInputError("The JSON body must be an object of named fields.")
            for name, value in data.items():
                scalar = _scalar(value)
                if isinstance(value, list | dict):
                    # Refused by parse_fields unless the operation takes it (``Json``).
                    fields.structured[name] = value
                elif scalar is not None:
                    fields.values[name] = scalar
    try:
        for name, value in fields.values.items():
            _check_text(name, value)
            if len(value) > max_bytes:
                raise TooLargeError(f"The field '{_shown(name)}' is too large.")
        for name in (*fields.files, *fields.structured):
            _check_text(name, "")
    except BaseException:
        # Refused before the route could take the parts: close their spooled files now.
        for upload in fields.files.values():
            await upload.close()
        raise
    return fields


def _shown(name: str) -> str:
    return name.encode("ascii", "backslashreplace").decode("ascii")[:80]


def _check_text(name: str, value: str) -> None:
    """Refuse what no field may hold: NUL, and unpaired surrogates (JSON's "\ud800").

    Neither is text any database, daemon or file name takes; an unpaired surrogate cannot
    even be written as UTF-8, so letting it through would fail later, as a 500.
    """
    for text, what in ((name, "name"), (value, "value")):
        if "\x00" in text:
            raise InvalidInputError(f"The field {what} '{_shown(name)}' contains a NUL character.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"The field {what} '{_shown(name)}' is not valid Unicode text (it holds an "
                "unpaired surrogate)."
            ) from exc


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(f"The request body is larger than {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
