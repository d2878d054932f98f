"""No password or private key sent to ``mailctl serve`` shows up in its output or answers."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from tests.pki import ca_signed
from tests.serverproc import serve

ADMIN_PASSWORD = "admin-" + secrets.token_hex(8)
TRANSPORTS = ("multipart", "urlencoded", "json", "query")


def _send(client: httpx.Client, method: str, path: str, how: str, fields: dict[str, str]) -> Any:
    if how == "multipart":
        return client.request(method, path, files={k: (None, v) for k, v in fields.items()})
    if how == "urlencoded":
        return client.request(method, path, data=fields)
    if how == "json":
        return client.request(method, path, json=fields)
    return client.request(method, path, params=fields)


def _forms(secret: str) -> list[bytes]:
    """The ways a secret could be written: as is, and URL-encoded."""
    return [form.encode() for form in {secret, quote(secret, safe=""), quote_plus(secret)}]


@pytest.mark.slow
def test_no_secret_in_output_or_answers(tmp_path: Path) -> None:
    """Passwords and keys by every transport: none in stdout, stderr, logs or responses."""
    sent: list[str] = [ADMIN_PASSWORD]
    answers: list[str] = []
    with serve(tmp_path, ADMIN_PASSWORD) as server:
        with httpx.Client(base_url=server.url, timeout=60) as anon:
            login = anon.post("/auth", data={"username": "admin", "password": ADMIN_PASSWORD})
            token = login.json()["token"]
        headers = {"Auth-token": token}
        with httpx.Client(base_url=server.url, timeout=60, headers=headers) as api:
            for n, how in enumerate(TRANSPORTS):
                wrong = f"wrong-{how}-{secrets.token_hex(6)}"
                first = f"first-{how}-{secrets.token_hex(6)}"
                second = f"second-{how}-{secrets.token_hex(6)}"
                changed = f"changed-{how}-{secrets.token_hex(6)}"
                short = f"s{n}{secrets.token_hex(1)}"  # refused as too short
                sent += [wrong, first, second, changed, short]
                domain = f"d{n}.example.com"
                replies = [
                    _send(api, "POST", "/auth", how, {"username": "admin", "password": wrong}),
                    _send(
                        api, "POST", "/auth", how, {"username": "admin", "password": ADMIN_PASSWORD}
                    ),
                    _send(
                        api,
                        "POST",
                        "/domains",
                        how,
                        {"domain": domain, "username": f"a@{domain}", "password": first},
                    ),
                ]
                domain_id = replies[-1].json()["domain"]["id"]
                user = _send(
                    api,
                    "POST",
                    f"/user/{domain_id}",
                    how,
                    {"email": f"b@{domain}", "password": second},
                )
                replies.append(user)
                fields = {"id": str(user.json()["user"]["id"]), "domain_id": str(domain_id)}
                for password in (changed, short):
                    replies.append(
                        _send(
                            api,
                            "POST",
                            "/user-change-password",
                            how,
                            {**fields, "password": password},
                        )
                    )
                chain, key, _ = ca_signed(f"mail{n}.example.com")
                sent += [line for line in key.decode().splitlines() if "-----" not in line]
                upload = {"ssl_certificate": chain.decode(), "ssl_certificate_key": key.decode()}
                replies.append(_send(api, "POST", "/ssl/upload", how, upload))
                statuses = [reply.status_code for reply in replies]
                assert statuses == [401, 200, 200, 200, 200, 400, 200], (how, statuses)
                answers += [reply.text for reply in replies]
    written = server.output()
    for log in tmp_path.rglob("*.log"):
        written += log.read_bytes()
    assert b'"POST /auth?' in written  # the access log was on and saw the requests
    for secret in sent:
        for form in _forms(secret):
            assert form not in written, f"{secret!r} is in the server's output"
        assert all(secret not in answer for answer in answers), f"{secret!r} was answered"
