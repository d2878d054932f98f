"""POST /ssl/get-left-days: from a stored certificate, from a live TLS server, and failures."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer
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


@pytest.fixture
def loopback_probes(server: LiveServer) -> None:
    """Allow live checks of this machine's loopback address, where the test servers listen."""
    server.ctx.settings.probe_private_targets = "127.0.0.0/8"


@pytest.mark.usefixtures("loopback_probes")
def test_live_handshake_when_nothing_is_stored(api: httpx.Client, tls_server: TlsServer) -> None:
    """Without a stored certificate, a live handshake reads the server's expiry."""
    response = api.post(
        "/ssl/get-left-days", data={"hostname": "127.0.0.1", "port": str(tls_server.port)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["result"], body["days_left"], body["source"]) == (True, 40, "live")
    assert datetime.fromisoformat(body["not_after"]) == tls_server.not_after


@pytest.mark.usefixtures("loopback_probes")
def test_refused_port_is_502_without_a_number(api: httpx.Client) -> None:
    """A refused connection is a 502 saying no certificate could be read, and no days_left."""
    port = _closed_port()
    response = api.post("/ssl/get-left-days", json={"hostname": "127.0.0.1", "port": port})
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["result"] is False
    assert f"Could not read a certificate from 127.0.0.1:{port}" in body["msg"]
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


@pytest.mark.security(
    finding=11,
    claim="POST /ssl/get-left-days refuses link-local, multicast and unspecified targets, and "
    "private or loopback ones other than the mail host unless configured, with a 400.",
)
def test_forbidden_targets_are_400_before_any_connection(
    api: httpx.Client, server: LiveServer, figure: Callable[[str, object], None]
) -> None:
    """169.254.169.254, fe80::1, multicast, 0.0.0.0 always; 127.0.0.1 and 10/8 by default."""
    never = ["169.254.169.254", "[fe80::1]", "fe80::1", "224.0.0.251", "ff02::1", "0.0.0.0"]  # noqa: S104
    private = ["127.0.0.1", "localhost", "::1", "10.0.0.1", "192.168.0.1"]
    for host in never:
        response = api.post("/ssl/get-left-days", data={"hostname": host, "port": "80"})
        assert response.status_code == 400, (host, response.text)
        assert "never probes" in response.json()["msg"]
    for host in private:
        response = api.post("/ssl/get-left-days", data={"hostname": host, "port": "80"})
        assert response.status_code == 400, (host, response.text)
        assert "MAILCTL_PROBE_PRIVATE_TARGETS" in response.json()["msg"]
    server.ctx.settings.probe_private_targets = "true"
    response = api.post("/ssl/get-left-days", data={"hostname": "169.254.169.254", "port": "80"})
    assert response.status_code == 400, response.text
    figure("targets refused", len(never) + len(private))


@pytest.mark.security(
    finding=11,
    claim="The mail host itself (MAILCTL_MAIL_HOSTNAME and its addresses) may be checked live "
    "without allowing private targets.",
)
def test_the_mail_host_itself_may_be_probed(
    api: httpx.Client, server: LiveServer, tls_server: TlsServer
) -> None:
    """With the mail host name localhost, 127.0.0.1 and localhost are allowed; 10/8 is not."""
    server.ctx.settings.mail_hostname = "localhost"
    for host in ("127.0.0.1", "localhost"):
        response = api.post(
            "/ssl/get-left-days",
            data={"hostname": host, "port": str(tls_server.port), "live": "true"},
        )
        assert response.status_code == 200, (host, response.text)
        assert response.json()["source"] == "live"
    refused = api.post("/ssl/get-left-days", data={"hostname": "10.0.0.1", "port": "443"})
    assert refused.status_code == 400, refused.text


@pytest.mark.usefixtures("loopback_probes")
@pytest.mark.security(
    finding=11,
    claim="get-left-days answers a closed, a silent and a non-TLS port with the same message.",
)
def test_closed_silent_and_plain_ports_answer_alike(
    api: httpx.Client, server: LiveServer, figure: Callable[[str, object], None]
) -> None:
    """Closed, accepting-but-silent, and plain-text ports: one 502 message, port aside."""
    server.ctx.settings.tls_probe_timeout_seconds = 1
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen(4)
    stop = threading.Event()

    def greet() -> None:
        plain.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = plain.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"+PONG redis_version:7.2.4\r\n")

    thread = threading.Thread(target=greet)
    thread.start()
    try:
        ports = [_closed_port(), silent.getsockname()[1], plain.getsockname()[1]]
        messages = set()
        for port in ports:
            response = api.post(
                "/ssl/get-left-days", data={"hostname": "127.0.0.1", "port": str(port)}
            )
            assert response.status_code == 502, response.text
            messages.add(response.json()["msg"].replace(f":{port};", ":PORT;"))
    finally:
        stop.set()
        thread.join(timeout=5)
        silent.close()
        plain.close()
    assert len(messages) == 1, messages
    assert "redis" not in messages.pop()
    figure("distinct messages for closed, silent, plain ports", 1)
