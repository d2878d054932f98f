"""Request fields from anywhere the old clients put them: form, multipart, JSON or query."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from mailctl.domain.numbers import ascii_digits, ascii_int, loads_limited
from mailctl.errors import InvalidInputError, TooLargeError

MAX_FIELDS = 64
MAX_FILES = 8


@dataclass
class Fields:
    """The named values of one request; body values win over query-string values."""

    values: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str) -> str:
        value = self.values.get(name)
        if value is None or value.strip() == "":
            raise InvalidInputError(f"The field '{name}' is required.")
        return value

    def flag(self, name: str) -> bool:
        """Read a yes/no field (true/false, 1/0, yes/no, on/off); absent means no."""
        value = self.values.get(name)
        if value is None or value.strip() == "":
            return False
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
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
                if scalar is None and value is not None:
                    raise InvalidInputError(f"The field '{_shown(name)}' must be a plain value.")
                if scalar is not None:
                    fields.values[name] = scalar
    for name, value in fields.values.items():
        _check_text(name, value)
        if len(value) > max_bytes:
            raise TooLargeError(f"The field '{_shown(name)}' is too large.")
    for name in fields.files:
        _check_text(name, "")
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
