"""No password, key, token or hash sent to or made by ``mailctl serve`` shows up in what it writes.

One session against the real ``mailctl serve`` process (uvicorn's access log on) sends every
password- or key-bearing field of every method by each documented transport (multipart,
urlencoded, JSON, query string), right values and wrong ones that produce errors. Then
everything the server wrote (stdout, stderr, any ``*.log`` file, the ``audit_log`` table)
and every answer it gave is searched for each secret, as is and URL-encoded.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from tests.pki import ca_signed
from tests.serverproc import ServeProcess, serve

from mailctl.domain.passwords import hash_password

ADMIN = "admin"
ADMIN_PASSWORD = "admin-" + secrets.token_hex(8)
TRANSPORTS = ("multipart", "urlencoded", "json", "query")
Figure = Callable[[str, object], None]


@dataclass
class Session:
    """The requests of the test, and what must never be written or answered."""

    server: ServeProcess
    secrets: list[str] = field(default_factory=list)  # never written, never answered
    tokens: list[str] = field(default_factory=list)  # answered by /auth, never written
    answers: list[str] = field(default_factory=list)
    requests: int = 0

    def secret(self, kind: str, how: str) -> str:
        value = f"{kind}-{how}-{secrets.token_hex(8)}"
        self.secrets.append(value)
        return value

    def short(self) -> str:
        """A password the policy refuses as too short (7 characters), random all the same."""
        value = "s" + secrets.token_hex(3)
        self.secrets.append(value)
        return value

    def send(
        self,
        method: str,
        path: str,
        how: str,
        fields: dict[str, str],
        *,
        token: str | None = None,
        expect: int = 200,
    ) -> httpx.Response:
        headers = {"Auth-token": token} if token else {}
        with httpx.Client(base_url=self.server.url, timeout=60, headers=headers) as client:
            if how == "multipart":
                reply = client.request(
                    method, path, files={k: (None, v) for k, v in fields.items()}
                )
            elif how == "urlencoded":
                reply = client.request(method, path, data=fields)
            elif how == "json":
                reply = client.request(method, path, json=fields)
            else:
                reply = client.request(method, path, params=fields)
        self.requests += 1
        assert reply.status_code == expect, (method, path, how, reply.status_code, reply.text)
        self.answers.append(reply.text)
        return reply


def _forms(secret: str) -> set[bytes]:
    """The ways a secret could be written: as is, and URL-encoded."""
    return {form.encode() for form in (secret, quote(secret, safe=""), quote_plus(secret))}


def _key_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM key long enough to be unmistakable."""
    return [line for line in pem.splitlines() if "-----" not in line and len(line) >= 16]


def _login(session: Session, how: str, password: str) -> str:
    reply = session.send("POST", "/auth", how, {"username": ADMIN, "password": password})
    token = str(reply.json()["token"])
    session.tokens.append(token)
    return token


def _mailboxes(session: Session, how: str, n: int, token: str) -> None:
    """Domain with a first mailbox, mailbox create (both paths), pre-hashed, password change."""
    domain = f"d{n}.example.com"
    reply = session.send(
        "POST",
        "/domains",
        how,
        {"domain": domain, "username": f"a@{domain}", "password": session.secret("first", how)},
        token=token,
    )
    domain_id = str(reply.json()["domain"]["id"])
    session.send(
        "POST",
        "/domains",
        how,
        {
            "domain": f"x{n}.example.com",
            "username": f"a@x{n}.example.com",
            "password": session.short(),
        },
        token=token,
        expect=400,
    )
    user = session.send(
        "POST",
        f"/user/{domain_id}",
        how,
        {"email": f"b@{domain}", "password": session.secret("second", how)},
        token=token,
    )
    session.send(
        "POST",
        f"/users/{domain_id}",
        how,
        {"email": f"c@{domain}", "password": session.secret("third", how)},
        token=token,
    )
    prehashed = hash_password(session.secret("prehashed", how))
    session.secrets.append(prehashed)
    session.send(
        "POST",
        f"/user/{domain_id}",
        how,
        {"email": f"d@{domain}", "password_hash": prehashed},
        token=token,
    )
    session.send(
        "POST",
        f"/user/{domain_id}",
        how,
        {"email": f"e@{domain}", "password_hash": "{ARGON2ID}" + session.secret("badhash", how)},
        token=token,
        expect=400,
    )
    ids = {"id": str(user.json()["user"]["id"]), "domain_id": domain_id}
    for password, expect in ((session.secret("changed", how), 200), (session.short(), 400)):
        session.send(
            "POST",
            "/user-change-password",
            how,
            {**ids, "password": password},
            token=token,
            expect=expect,
        )
    dkim = {"domain": domain, "key_type": "ed25519" if n else "rsa2048"}
    session.send("POST", "/dkim/add-new-domain", how, dkim, token=token)


def _certificates(session: Session, how: str, n: int, token: str) -> None:
    """A good upload, a key of another certificate, a key that is no key; files by multipart."""
    chain, key, _ = ca_signed(f"mail{n}.example.com")
    _, other_key, _ = ca_signed(f"other{n}.example.com")
    junk = "-----BEGIN PRIVATE KEY-----\n" + session.secret("junkkey", how) + "\n"
    junk += "-----END PRIVATE KEY-----\n"
    for pem in (key, other_key):
        session.secrets += _key_lines(pem.decode())
    cases = ((key.decode(), 200), (other_key.decode(), 400), (junk, 400))
    for key_text, expect in cases:
        fields = {"ssl_certificate": chain.decode(), "ssl_certificate_key": key_text}
        session.send("POST", "/ssl/upload", how, fields, token=token, expect=expect)
    if how == "multipart":
        with httpx.Client(base_url=session.server.url, timeout=60) as client:
            reply = client.post(
                "/ssl/upload",
                headers={"Auth-token": token},
                files={
                    "ssl_certificate": ("fullchain.pem", chain),
                    "ssl_certificate_key": ("privkey.pem", key),
                },
            )
        session.requests += 1
        assert reply.status_code == 200, reply.text
        session.answers.append(reply.text)


def _account(session: Session, how: str, password: str, token: str) -> tuple[str, str]:
    """Password change: wrong current, too short, then right; logout. The new (password, token)."""
    session.send(
        "POST",
        "/auth/password",
        how,
        {
            "password": session.secret("wrongcurrent", how),
            "new_password": session.secret("unused", how),
        },
        token=token,
        expect=401,
    )
    session.send(
        "POST",
        "/auth/password",
        how,
        {"password": password, "new_password": session.short()},
        token=token,
        expect=400,
    )
    new_password = session.secret("adminnew", how)
    reply = session.send(
        "POST",
        "/auth/password",
        how,
        {"password": password, "new_password": new_password},
        token=token,
    )
    token = str(reply.json()["token"])
    session.tokens.append(token)
    session.send("POST", "/auth/logout", how, {}, token=token)
    return new_password, _login(session, how, new_password)


def _archive_round_trip(session: Session, token: str) -> None:
    """Export a domain (its archive holds hashes and the DKIM key) and import it back."""
    with httpx.Client(base_url=session.server.url, timeout=120) as client:
        archive = client.get(
            "/export/domain", params={"domain": "d0.example.com"}, headers={"Auth-token": token}
        )
        assert archive.status_code == 200
        reply = client.post(
            "/import/domain",
            headers={"Auth-token": token},
            data={"replace": "true"},
            files={"archive": ("d0.tar.gz", archive.content, "application/gzip")},
        )
    session.requests += 2
    assert reply.status_code == 200, reply.text
    session.answers.append(reply.text)


def _stored(database: Path) -> tuple[list[str], bytes]:
    """The secrets the server made (hashes, keys, signing key) and the audit log's text."""
    with sqlite3.connect(database) as db:
        made = [row[0] for row in db.execute("SELECT password FROM virtual_users")]
        made += [row[0] for row in db.execute("SELECT password FROM admins")]
        made += [row[0] for row in db.execute("SELECT value FROM app_secrets")]
        for (pem,) in db.execute("SELECT private_key FROM dkim_keys"):
            made += _key_lines(pem)
        for (pem,) in db.execute("SELECT key_pem FROM certificates"):
            made += _key_lines(pem)
        audit = "\n".join(
            " ".join(str(value) for value in row) for row in db.execute("SELECT * FROM audit_log")
        )
    return made, audit.encode()


@pytest.mark.slow
@pytest.mark.security(
    finding=4,
    claim="No password, private key, token or hash sent by any transport appears in the "
    "server's output, logs, audit log or answers.",
)
def test_no_secret_in_output_or_answers(tmp_path: Path, figure: Figure) -> None:
    """Every secret field by every transport: none in stdout, stderr, logs, audit or answers."""
    with serve(tmp_path, ADMIN_PASSWORD) as server:
        session = Session(server, secrets=[ADMIN_PASSWORD])
        password = ADMIN_PASSWORD
        for n, how in enumerate(TRANSPORTS):
            wrong = session.secret("wrong", how)
            session.send("POST", "/auth", how, {"username": ADMIN, "password": wrong}, expect=401)
            token = _login(session, how, password)
            _mailboxes(session, how, n, token)
            _certificates(session, how, n, token)
            password, token = _account(session, how, password, token)
        _archive_round_trip(session, token)
    made, audit = _stored(server.data_dir / "mailctl.db")
    written = server.output()
    logs = sorted(tmp_path.rglob("*.log"))
    for log in logs:
        written += log.read_bytes()
    assert b'"POST /auth?' in written  # the access log was on and saw the requests
    assert b'"POST /auth/password?' in written
    everything = written + b"\n" + audit
    checked = 0
    for secret in (*session.secrets, *made):
        for form in _forms(secret):
            assert form not in everything, f"{secret!r} was written by the server"
            checked += 1
        assert all(secret not in answer for answer in session.answers), f"{secret!r} answered"
    for token in session.tokens:
        for form in _forms(token):
            assert form not in everything, "a token was written by the server"
            checked += 1
    figure("requests sent", session.requests)
    figure("transports", len(TRANSPORTS))
    figure("secrets checked", len(session.secrets) + len(made) + len(session.tokens))
    figure("secret forms searched for", checked)
    figure("bytes of output and logs searched", len(written))
    figure("log files searched", len(logs))
    figure("audit log bytes searched", len(audit))
    figure("answer bytes searched", sum(len(answer) for answer in session.answers))
