"""Every field parser fails closed: a value, or a 400/413, for any text a client can send."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from starlette.requests import Request

from mailctl.api.fields import Fields, read_fields
from mailctl.api.routes.ssl import _port
from mailctl.domain.numbers import ascii_digits, ascii_int, json_depth, loads_limited
from mailctl.errors import MailctlError
from mailctl.services.mailboxes import parse_id

LIMIT = 64 * 1024
_POOL = (
    "0123456789 +-.eE_xX,;:\"'{}[]\\/%\x00\t\n\r\x7f"
    "\u00b9\u00b2\u00b3\u0660\u0663\u06f3\u0967\u0e53\uff11\U0001d7d9\u2460\u2167\u00bd"
    "\u200b\u200d\u202e\ufeff\u00a0\u3000\u0301\ud800\udfff\U0001f642"
)


def generated_inputs() -> list[str]:
    """A fixed, generated list: every Unicode decimal digit, edge lengths, JSON, noise."""
    texts = ["", " ", "0", "00", "-0", "+1", "-1", "1.0", "1e3", "0x1f", "1_000", "١٢٣"]
    texts += [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Nd"]
    texts += [c for c in "\u00b9\u00b2\u00b3\u2070\u2074\u2080\u2460\u2776\u3007\u4e00\u216b"]
    texts += ["9" * n for n in (17, 18, 19, 20, 64, 4300, 4301, 5000, LIMIT + 1)]
    texts += [" 42 ", "42\n", "\n42", "4\u00002", "4 2", "42\u00a0", "\u200b42", "65535", "65536"]
    texts += ["true", "TRUE", "yes", "on", "1", "0", "no", "off", "false", "tru\u0435", "y\u0435s"]
    texts += ["null", "NaN", "Infinity", "-Infinity", "1e999", "[]", "{}", '{"a": 1}', '"x"']
    texts += ["[" * 100 + "]" * 100, "{" * 10_000, '{"a": "\\ud800"}', '{"a": "\\u0000"}']
    texts += ['{"a": ' + "9" * 5000 + "}", '{"\\ud800": 1}', '"\\udfff"', "\ud800", "a\udfffb"]
    noise = random.Random(9)
    for _ in range(400):
        texts.append("".join(noise.choice(_POOL) for _ in range(noise.randint(1, 12))))
    return list(dict.fromkeys(texts))


INPUTS = generated_inputs()


def _request(body: bytes, headers: dict[str, str] | None = None, query: bytes = b"") -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": query, "headers": raw}
    return Request(scope, receive)


async def _fields_and_blobs(request: Request) -> None:
    fields = await read_fields(request, LIMIT)
    for name in [*fields.values, *fields.files]:
        await fields.read_blob(name, LIMIT)
        fields.get(name)
        try:
            fields.flag(name)
            fields.require(name)
        except MailctlError as exc:
            assert 400 <= exc.status_code < 500


def _requests(text: str) -> list[Request]:
    raw = text.encode("utf-8", "surrogatepass")
    encoded = quote(text, safe="", errors="surrogatepass").encode("ascii")
    json_type = {"content-type": "application/json"}
    requests = [
        _request(json.dumps({"f": text}).encode("ascii"), json_type),
        _request(raw, json_type),
        _request(b"f=" + encoded, {"content-type": "application/x-www-form-urlencoded"}),
        _request(b"", query=b"f=" + encoded),
        _request(
            b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n' + raw + b"\r\n--b--\r\n",
            {"content-type": "multipart/form-data; boundary=b"},
        ),
    ]
    header = text.encode("utf-8", "surrogatepass").decode("latin-1")
    requests.append(_request(b"{}", {**json_type, "content-length": header}))
    return requests


@pytest.mark.security(
    finding=9,
    claim="Every field parser answers any input (other digits, huge numbers, NUL, unpaired "
    "surrogates, deep JSON) with a value or a 400/413, never another exception.",
)
def test_every_parser_fails_closed(figure: Callable[[str, object], None]) -> None:
    """Numbers, ids, ports, flags, JSON and whole requests, for each generated input."""
    calls = refused = 0
    crashes: list[str] = []

    def attempt(what: str, text: str, call: Callable[[], object]) -> None:
        nonlocal calls, refused
        calls += 1
        try:
            call()
        except MailctlError as exc:
            refused += 1
            if not 400 <= exc.status_code < 500:
                crashes.append(f"{what}({text[:40]!r}): {exc.status_code} {exc.message}")
            try:
                exc.message.encode("utf-8")
            except UnicodeEncodeError:
                crashes.append(f"{what}({text[:40]!r}): a message that is not UTF-8")
        except Exception as exc:  # anything else would be a 500
            crashes.append(f"{what}({text[:40]!r}): {exc.__class__.__name__}: {exc}"[:200])

    for text in INPUTS:
        attempt("ascii_digits", text, lambda t=text: ascii_digits(t))
        attempt("ascii_int", text, lambda t=text: ascii_int(t))
        attempt("json_depth", text, lambda t=text: json_depth(t))
        attempt("loads_limited", text, lambda t=text: loads_limited(t, "The value"))
        attempt("parse_id", text, lambda t=text: parse_id(t, "id"))
        attempt("port", text, lambda t=text: _port(t))
        attempt("flag", text, lambda t=text: Fields(values={"f": t}).flag("f"))
        attempt("require", text, lambda t=text: Fields(values={"f": t}).require("f"))
        for request in _requests(text):
            attempt("read_fields", text, lambda r=request: asyncio.run(_fields_and_blobs(r)))
    figure("generated inputs", len(INPUTS))
    figure("parser calls", calls)
    figure("refused with a 4xx", refused)
    figure("other exceptions", len(crashes))
    assert crashes == []
    assert len(INPUTS) >= 1000


def test_ascii_int_reads_only_short_ascii_numbers() -> None:
    """ascii_int: ASCII digits up to 18 of them; anything else (or longer) is None."""
    assert ascii_int("0042") == 42
    assert ascii_int("9" * 18) == 10**18 - 1
    assert [ascii_int(t) for t in ("9" * 19, "9" * 5000, "¹", "\u0663", " 1", "-1", "")] == [
        None
    ] * 7
    assert ascii_int("9" * 20, max_digits=20) == 10**20 - 1
