"""POST /ssl/get-left-days: from a stored certificate, from a live TLS server, and failures."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.pki import self_signed


@dataclass
class TlsServer:
    """A TLS server on 127.0.0.1 presenting a certificate with a known expiry."""

    port: int
    not_after: datetime


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """Serve TLS handshakes on a free port until the test ends."""
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40, hours=6)
    cert, key = self_signed("live.example.test", not_after=not_after)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except OSError:
                    pass  # the client hangs up once it has the certificate

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield TlsServer(int(listener.getsockname()[1]), not_after)
    finally:
        stopping.set()
        listener.close()
        thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_stored_certificate_answers_first(api: httpx.Client) -> None:
    """A host name mailctl holds a certificate for is answered from it, source stored."""
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=12, hours=1)
    cert, key = self_signed("mail.example.test", not_after=not_after)
    upload = api.post(
        "/ssl/upload",
        files={"ssl_certificate": ("c.pem", cert), "ssl_certificate_key": ("k.pem", key)},
    )
    assert upload.status_code == 200, upload.text
    response = api.post("/ssl/get-left-days", files={"hostname": (None, b"Mail.Example.Test")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert (body["days_left"], body["source"], body["name"]) == (12, "stored", "mail.example.test")
    assert datetime.fromisoformat(body["not_after"]) == not_after


def test_live_handshake_when_nothing_is_stored(api: httpx.Client, tls_server: TlsServer) -> None:
    """Without a stored certificate, a live handshake reads the server's expiry."""
    response = api.post(
        "/ssl/get-left-days", data={"hostname": "127.0.0.1", "port": str(tls_server.port)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["result"], body["days_left"], body["source"]) == (True, 40, "live")
    assert datetime.fromisoformat(body["not_after"]) == tls_server.not_after


def test_refused_port_is_502_without_a_number(api: httpx.Client) -> None:
    """A refused connection is a 502 with the reason, and no days_left at all."""
    response = api.post(
        "/ssl/get-left-days", json={"hostname": "127.0.0.1", "port": _closed_port()}
    )
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["result"] is False
    assert "refused" in body["msg"]
    assert "days_left" not in body


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "'hostname' is required"),
        ({"hostname": "127.0.0.1", "port": "http"}, "'port' must be a number"),
        ({"hostname": "127.0.0.1", "port": "70000"}, "'port' must be a number"),
        ({"hostname": "bad host!"}, "not a valid host name"),
        ({"hostname": "127.0.0.1", "port": "1", "starttls": "ftp"}, "Unknown STARTTLS"),
    ],
)
def test_bad_input_is_400(api: httpx.Client, fields: dict[str, str], message: str) -> None:
    """Missing host names, bad ports and unknown STARTTLS protocols are 400 with a reason."""
    response = api.post("/ssl/get-left-days", data=fields)
    assert response.status_code == 400, response.text
    assert message in response.json()["msg"]
