"""POST /ssl/upload over HTTP: installed pairs, refusals that change nothing, reload refusals."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from tests.pki import ca_signed, openssl_signed, self_signed

if TYPE_CHECKING:
    from tests.conftest import LiveServer

HOST = "mail.example.com"


def make_pair(*names: str, days: float = 60, ca_first: bool = False) -> tuple[bytes, bytes]:
    """A chain (leaf, then its CA; reversed if ``ca_first``) and the leaf key, as PEM."""
    chain, key, _ = ca_signed(*names, days=days, ca_first=ca_first)
    return chain, key


def _upload(api: httpx.Client, chain: bytes, key: bytes, **extra: str) -> httpx.Response:
    files = {
        "ssl_certificate": ("fullchain.pem", chain, "application/x-pem-file"),
        "ssl_certificate_key": ("privkey.pem", key, "application/x-pem-file"),
        **{name: (None, value.encode()) for name, value in extra.items()},
    }
    return api.post("/ssl/upload", files=files)


def test_upload_installs_pair_and_never_returns_the_key(
    api: httpx.Client, server: LiveServer
) -> None:
    """A good pair (file fields) is written to disk, key 0600, and the key is never echoed."""
    chain, key = make_pair(HOST, "smtp.example.com", days=60.5)
    response = _upload(api, chain, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert body["name"] == HOST
    assert body["days_left"] == 60
    assert body["names"] == [HOST, "smtp.example.com"]
    leaf = x509.load_pem_x509_certificates(chain)[0]
    assert body["fingerprint_sha256"] == leaf.fingerprint(hashes.SHA256()).hex()
    assert datetime.fromisoformat(body["not_after"]) == leaf.not_valid_after_utc
    assert body["reload"]["ok"] is True
    assert "PRIVATE KEY" not in response.text
    tls_dir = server.ctx.settings.tls_path
    assert body["paths"] == {
        "certificate": str(tls_dir / HOST / "fullchain.pem"),
        "key": str(tls_dir / HOST / "privkey.pem"),
    }
    assert (tls_dir / HOST / "fullchain.pem").read_bytes() == chain
    assert os.stat(tls_dir / HOST / "privkey.pem").st_mode & 0o777 == 0o600


def test_upload_as_text_fields_with_a_name(api: httpx.Client, server: LiveServer) -> None:
    """Certificate and key pasted as text fields are accepted, stored under ``name``."""
    chain, key = make_pair(HOST, "a.b")
    response = api.post(
        "/ssl/upload",
        data={
            "ssl_certificate": chain.decode(),
            "ssl_certificate_key": key.decode(),
            "name": "a.b",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "a.b"
    listing = api.get("/ssl/certificates").json()
    assert [c["name"] for c in listing["certificates"]] == ["a.b"]
    assert "PRIVATE KEY" not in str(listing)


def test_documented_two_field_upload_of_a_cn_only_localhost_certificate(
    api: httpx.Client, server: LiveServer
) -> None:
    """Only ssl_certificate and ssl_certificate_key, a CN-only certificate for localhost:
    stored and served as localhost."""
    chain, key = self_signed("localhost", san=False)
    response = _upload(api, chain, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["result"], body["name"], body["names"]) == (True, "localhost", ["localhost"])
    assert (server.ctx.settings.tls_path / "localhost" / "fullchain.pem").read_bytes() == chain


def test_sha1_signed_certificate_is_refused_for_that_reason(
    api: httpx.Client, tmp_path: Path
) -> None:
    """A SHA-1-signed leaf: 400 saying so, not that its CA did not issue it."""
    chain, key = openssl_signed(tmp_path, HOST, "sha1")
    response = _upload(api, chain, key)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "result": False,
        "msg": "The server certificate is signed with SHA-1, which clients refuse; ask its "
        "issuer for one signed with SHA-256.",
    }


def test_bad_uploads_are_refused_and_change_nothing(api: httpx.Client, server: LiveServer) -> None:
    """Missing, unparsable, mismatched, expired, misordered, oversized: 4xx, files kept."""
    chain, key = make_pair(HOST)
    assert _upload(api, chain, key).status_code == 200
    folder = server.ctx.settings.tls_path / HOST
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    other_chain, other_key = make_pair(HOST)
    expired_chain, expired_key = make_pair(HOST, days=-1)
    reversed_chain, reversed_key = make_pair(HOST, ca_first=True)
    cases = [
        (api.post("/ssl/upload", files={"ssl_certificate": ("c.pem", chain)}), 400, "required"),
        (_upload(api, b"hello", key), 400, "not in PEM format"),
        (_upload(api, other_chain, key), 400, "does not match"),
        (_upload(api, expired_chain, expired_key), 400, "expired"),
        (_upload(api, reversed_chain, reversed_key), 400, "wrong order"),
        (_upload(api, chain, b"-----BEGIN PRIVATE KEY-----\nnope\n"), 400, "could not be parsed"),
        (_upload(api, chain + b"#" * 300_000, key), 413, "larger than"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert response.json()["result"] is False
        assert message in response.json()["msg"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert other_key not in b"".join(before.values())


def test_reload_refusal_is_reported_and_previous_pair_kept(
    api: httpx.Client, server: LiveServer
) -> None:
    """When Postfix refuses the new pair: 503, result false, previous pair on disk and stored."""
    chain, key = make_pair(HOST, days=20)
    assert _upload(api, chain, key).status_code == 200
    settings = server.ctx.settings
    settings.reload_enabled = True
    settings.reload_postfix = "false"
    settings.reload_dovecot = "true"
    settings.reload_opendkim = "true"  # never the machine's own daemon
    new_chain, new_key = make_pair(HOST, days=80)
    response = _upload(api, new_chain, new_key)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["result"] is False
    assert "previous certificate was put back" in body["msg"]
    assert [f["daemon"] for f in body["reload"]["failures"]] == ["postfix"]
    assert (settings.tls_path / HOST / "fullchain.pem").read_bytes() == chain
    assert (settings.tls_path / HOST / "privkey.pem").read_bytes() == key
    [stored] = api.get("/ssl/certificates").json()["certificates"]
    assert stored["days_left"] == 19


def test_ssl_methods_need_a_token(anon: httpx.Client) -> None:
    """Upload, list, days left and ACME orders all answer 401 without a token."""
    chain, key = make_pair(HOST)
    assert _upload(anon, chain, key).status_code == 401
    assert anon.get("/ssl/certificates").status_code == 401
    assert anon.post("/ssl/get-left-days", data={"hostname": HOST}).status_code == 401
    assert anon.post("/ssl/letsencrypt/install", data={"hostname": HOST}).status_code == 401
    assert anon.get("/jobs/123").status_code == 401


def test_unknown_job_and_challenge_are_404(api: httpx.Client, anon: httpx.Client) -> None:
    """An unknown job id and an unknown challenge token are 404 in the JSON envelope."""
    job = api.get("/jobs/6f1d1a55-9a0c-4a53-9d53-000000000000")
    assert job.status_code == 404
    assert job.json() == {"result": False, "msg": job.json()["msg"]}
    challenge = anon.get("/.well-known/acme-challenge/unknown-token")
    assert challenge.status_code == 404
    assert challenge.json()["result"] is False


@pytest.mark.security(
    finding=11,
    claim="A certificate is stored only under a name it is valid for (its SANs, else its CN; "
    "a wildcard covers one label), so an expiry check for a name never reads another's.",
)
def test_upload_under_a_name_the_certificate_does_not_cover_is_refused(
    api: httpx.Client, server: LiveServer, figure: Callable[[str, object], None]
) -> None:
    """name= outside the certificate's names is a 400 listing them; nothing is stored."""
    chain, key = make_pair(HOST)
    wildcard_chain, wildcard_key = make_pair("*.example.org")
    cn_chain, cn_key = self_signed("cn-only.example.net", san=False)
    refused = [
        (chain, key, "www.example.com"),
        (chain, key, "example.com"),
        (wildcard_chain, wildcard_key, "example.org"),
        (wildcard_chain, wildcard_key, "a.b.example.org"),
        (cn_chain, cn_key, "other.example.net"),
    ]
    for pem, private, name in refused:
        response = _upload(api, pem, private, name=name)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["result"] is False
        assert f"does not cover the name {name}" in response.json()["msg"]
    assert api.get("/ssl/certificates").json()["certificates"] == []
    assert not server.ctx.settings.tls_path.exists() or not any(
        server.ctx.settings.tls_path.iterdir()
    )

    accepted = [
        (chain, key, "Mail.Example.COM."),
        (wildcard_chain, wildcard_key, "imap.example.org"),
        (cn_chain, cn_key, "cn-only.example.net"),
    ]
    for pem, private, name in accepted:
        response = _upload(api, pem, private, name=name)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["name"] == name.lower().rstrip(".")
    figure("uncovered names refused", len(refused))
    figure("covered names accepted", len(accepted))
