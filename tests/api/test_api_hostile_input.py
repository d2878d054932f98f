"""Hostile input fails closed: a 400 with a clear JSON message, never a 500."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable

import httpx
import pytest
from tests.conftest import LiveServer

# Characters str.isdigit() accepts that are not the ASCII digits 0-9.
NOT_ASCII_DIGITS = ["¹", "³", "\u0663", "\u0967\u0968", "\U0001d7d9"]


@pytest.fixture
def domain_id(api: httpx.Client) -> int:
    response = api.post("/domains", data={"domain": "example.com"})
    assert response.status_code == 200, response.text
    return int(response.json()["domain"]["id"])


def _is_clear_400(response: httpx.Response, words: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["result"] is False
    assert words in body["msg"]


@pytest.mark.security(9, "Ids in paths are ASCII digits; others get 400, never 500")
@pytest.mark.parametrize("digits", NOT_ASCII_DIGITS)
def test_ids_in_paths_must_be_ascii_digits(api: httpx.Client, domain_id: int, digits: str) -> None:
    """/users/¹, /aliases/¹, /user/³ and user-change-password answer 400, not 500."""
    _is_clear_400(api.get(f"/users/{digits}"), "domain id must be a positive whole number")
    _is_clear_400(api.get(f"/aliases/{digits}"), "domain id must be a positive whole number")
    created = api.post(f"/user/{digits}", data={"email": "a@example.com", "password": "pw-123456"})
    _is_clear_400(created, "domain id must be a positive whole number")
    changed = api.post(
        "/user-change-password",
        data={"id": digits, "password": "pw-1234567", "domain_id": str(domain_id)},
    )
    _is_clear_400(changed, "user id must be a positive whole number")


@pytest.mark.security(9, "A port is ASCII digits; others get 400, never 500")
@pytest.mark.parametrize("digits", NOT_ASCII_DIGITS)
def test_port_must_be_ascii_digits(api: httpx.Client, digits: str) -> None:
    """port=¹ on /ssl/get-left-days is a 400 naming the field."""
    response = api.post("/ssl/get-left-days", data={"hostname": "mail.example.com", "port": digits})
    _is_clear_400(response, "'port' must be a number")


@pytest.mark.security(9, "A deeply nested JSON body gets 400, not a RecursionError")
def test_deeply_nested_json_body(api: httpx.Client) -> None:
    """A JSON body nested a hundred thousand levels deep is a 400, not a RecursionError."""
    body = '{"domain": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post("/domains", content=body, headers={"Content-Type": "application/json"})
    _is_clear_400(response, "nested more than")


def _archive_with_manifest(manifest: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return gzip.compress(raw.getvalue())


@pytest.mark.security(9, "A deeply nested import manifest gets 400, not a RecursionError")
def test_deeply_nested_import_manifest(api: httpx.Client) -> None:
    """A tiny archive whose manifest.json nests 100,000 levels is refused with a 400."""
    manifest = b'{"version": 1, "domain": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    archive = _archive_with_manifest(manifest)
    assert len(archive) < 2000
    response = api.post("/import/domain", files={"archive": ("a.tar.gz", archive)})
    _is_clear_400(response, "manifest is nested more than")
    # A manifest at a sane depth still reaches the normal checks.
    plain = _archive_with_manifest(json.dumps({"version": 1}).encode())
    response = api.post("/import/domain", files={"archive": ("a.tar.gz", plain)})
    _is_clear_400(response, "lacks")


def test_deeply_nested_trash_manifest(api: httpx.Client, server: LiveServer) -> None:
    """A trash entry whose manifest nests deeply is listed as unreadable, not a 500."""
    entry = server.ctx.settings.trash_path / "20260101T000000.000000Z-domain-x.example-0000"
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text('{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}")
    listed = api.get("/trash")
    assert listed.status_code == 200, listed.text
    assert [item["kind"] for item in listed.json()["trash"]] == ["unknown"]
    restored = api.post("/trash/restore", data={"id": entry.name})
    _is_clear_400(restored, "has no readable manifest")


@pytest.mark.security(
    finding=9,
    claim="Fields holding a 5,000-digit number, a NUL or an unpaired surrogate are a 400 on "
    "every backend, never a 500.",
)
def test_fields_that_are_not_text_or_numbers_are_400(
    api: httpx.Client, anon: httpx.Client, figure: Callable[[str, object], None]
) -> None:
    """port=9999…, a lone surrogate in a pasted certificate, NUL in a login name: 400."""
    answers = [
        api.post("/ssl/get-left-days", data={"hostname": "mail.example.com", "port": "9" * 5000}),
        api.post(
            "/ssl/upload",
            content=b'{"ssl_certificate": "\\ud800", "ssl_certificate_key": "x"}',
            headers={"Content-Type": "application/json"},
        ),
        api.post(
            "/domains",
            content=b'{"domain": "example.com", "\\udfff": "x"}',
            headers={"Content-Type": "application/json"},
        ),
        anon.post("/auth", json={"username": "admin\x00", "password": "correct horse battery"}),
        anon.post("/auth", data={"username": "ad\x00min", "password": "x"}),
        api.post("/domains", params={"domain": "example.com\x00.evil"}),
    ]
    for response in answers:
        assert response.status_code == 400, response.text
        assert response.json()["result"] is False
    figure("requests", len(answers))
    figure("5xx answers", sum(r.status_code >= 500 for r in answers))


def test_refused_and_repeated_file_parts_leave_no_open_files(api: httpx.Client) -> None:
    """File parts of a request refused for a NUL in a field, or sent twice under one
    name, are closed: nothing is left for the garbage collector to warn about."""
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused = api.request(
            "GET",
            "/domains",
            files=[("key", ("a.txt", b"1")), ("search", (None, "x\x00y"))],
        )
        repeated = api.request(
            "GET", "/domains", files=[("x", ("a.txt", b"1")), ("x", ("b.txt", b"2"))]
        )
        gc.collect()
    assert refused.status_code == 400, refused.text
    assert repeated.status_code == 200, repeated.text
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
