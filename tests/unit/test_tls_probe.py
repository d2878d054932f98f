"""Live TLS expiry probes against small TLS, SMTP, IMAP and POP3 servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from io import BufferedIOBase
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailctl.certs import probe_certificate
from mailctl.errors import InvalidInputError, UpstreamError

# The plain-text half of a STARTTLS server: it talks over the connection's file, then the
# server upgrades the socket.
Preamble = Callable[[BufferedIOBase], None]


def _self_signed(
    directory: Path, common_name: str, not_before: dt.datetime, not_after: dt.datetime
) -> tuple[x509.Certificate, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{common_name}.crt"
    key_path = directory / f"{common_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return cert, context


def _valid_for(
    directory: Path, common_name: str, days: int
) -> tuple[x509.Certificate, ssl.SSLContext]:
    now = dt.datetime.now(dt.UTC)
    return _self_signed(
        directory, common_name, now - dt.timedelta(hours=1), now + dt.timedelta(days=days)
    )


class Servers:
    """Starts one-connection-at-a-time servers in threads and stops them all at the end."""

    def __init__(self) -> None:
        self.listeners: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()

    def listen(self) -> socket.socket:
        """Open a listening socket on a free port of 127.0.0.1."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        self.listeners.append(listener)
        return listener

    def start(self, context: ssl.SSLContext, preamble: Preamble | None = None) -> int:
        """Serve TLS with ``context`` (after ``preamble``, if any); return the port."""
        listener = self.listen()
        listener.settimeout(0.1)
        thread = threading.Thread(target=self._serve, args=(listener, context, preamble))
        thread.start()
        self.threads.append(thread)
        return int(listener.getsockname()[1])

    def _serve(
        self, listener: socket.socket, context: ssl.SSLContext, preamble: Preamble | None
    ) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed at teardown
            with conn:
                conn.settimeout(5)
                try:
                    if preamble is not None:
                        with conn.makefile("rwb") as stream:
                            preamble(stream)
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)  # wait for the client to hang up
                except OSError:
                    pass  # the prober hangs up as soon as it has the certificate

    def close(self) -> None:
        """Stop every server and wait for its thread."""
        self.stopping.set()
        for listener in self.listeners:
            listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def servers() -> Iterator[Servers]:
    """Servers started by a test, stopped when it ends."""
    started = Servers()
    try:
        yield started
    finally:
        started.close()


def _say(stream: BufferedIOBase, *lines: str) -> None:
    stream.write(b"".join(line.encode("ascii") + b"\r\n" for line in lines))
    stream.flush()


def _hear(stream: BufferedIOBase) -> str:
    return stream.readline().decode("ascii").rstrip("\r\n")


def smtp_preamble(stream: BufferedIOBase) -> None:
    """Greet, answer EHLO with STARTTLS among the extensions, then agree to STARTTLS."""
    _say(stream, "220 mx.example.test ESMTP")
    assert _hear(stream).startswith("EHLO ")
    _say(stream, "250-mx.example.test", "250-PIPELINING", "250-STARTTLS", "250 8BITMIME")
    assert _hear(stream) == "STARTTLS"
    _say(stream, "220 2.0.0 Ready to start TLS")


def imap_preamble(stream: BufferedIOBase) -> None:
    """Greet, then agree to the tagged STARTTLS command."""
    _say(stream, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready")
    tag, command = _hear(stream).split(" ", 1)
    assert command.upper() == "STARTTLS"
    _say(stream, f"{tag} OK Begin TLS negotiation now")


def pop3_preamble(stream: BufferedIOBase) -> None:
    """Greet, then agree to STLS."""
    _say(stream, "+OK POP3 ready")
    assert _hear(stream) == "STLS"
    _say(stream, "+OK Begin TLS negotiation")


def smtp_without_starttls(stream: BufferedIOBase) -> None:
    """An SMTP server that does not offer STARTTLS."""
    _say(stream, "220 mx.example.test ESMTP")
    _hear(stream)
    _say(stream, "250-mx.example.test", "250 8BITMIME")
    _hear(stream)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_direct_tls_reports_days_left_and_identity(tmp_path: Path, servers: Servers) -> None:
    """A certificate valid for 30 days is reported with 29 or 30 days left, its names and hash."""
    cert, context = _valid_for(tmp_path, "www.example.test", days=30)
    port = servers.start(context)
    result = probe_certificate("127.0.0.1", port, timeout=5)
    assert result.days_left in (29, 30)
    assert result.not_after == cert.not_valid_after_utc
    assert result.subject == "CN=www.example.test"
    assert result.issuer == "CN=www.example.test"
    expected = cert.fingerprint(hashes.SHA256()).hex().upper()
    assert result.fingerprint_sha256.replace(":", "") == expected
    assert len(result.fingerprint_sha256.split(":")) == 32


def test_auto_on_other_port_speaks_tls_at_once(tmp_path: Path, servers: Servers) -> None:
    """starttls="auto" on a port that is not a mail port does a direct TLS handshake."""
    _, context = _valid_for(tmp_path, "auto.example.test", days=10)
    port = servers.start(context)
    result = probe_certificate("localhost", port, starttls="auto", timeout=5)
    assert result.subject == "CN=auto.example.test"
    assert result.days_left in (9, 10)


@pytest.mark.parametrize(
    ("protocol", "preamble"),
    [("smtp", smtp_preamble), ("imap", imap_preamble), ("pop3", pop3_preamble)],
)
def test_starttls_upgrades_before_reading_the_certificate(
    tmp_path: Path, servers: Servers, protocol: str, preamble: Preamble
) -> None:
    """After the protocol's STARTTLS exchange the certificate behind it is reported."""
    _, context = _valid_for(tmp_path, f"{protocol}.example.test", days=60)
    port = servers.start(context, preamble)
    result = probe_certificate("127.0.0.1", port, starttls=protocol, timeout=5)
    assert result.subject == f"CN={protocol}.example.test"
    assert result.days_left in (59, 60)


def test_expired_certificate_has_negative_days_left(tmp_path: Path, servers: Servers) -> None:
    """An expired certificate is still read, and its days left are below zero."""
    now = dt.datetime.now(dt.UTC)
    _, context = _self_signed(
        tmp_path, "old.example.test", now - dt.timedelta(days=90), now - dt.timedelta(days=3)
    )
    port = servers.start(context)
    result = probe_certificate("127.0.0.1", port, timeout=5)
    assert result.days_left in (-4, -3)
    assert result.not_after < now


def test_refused_port_is_upstream_error() -> None:
    """Nothing listening gives a clear UpstreamError, not a fake zero."""
    port = _closed_port()
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, timeout=5)
    assert caught.value.message == f"The server at 127.0.0.1:{port} refused the connection."


@pytest.mark.parametrize("starttls", [None, "smtp"])
def test_silent_server_times_out(servers: Servers, starttls: str | None) -> None:
    """A server that accepts but never answers fails within the timeout."""
    # The kernel completes the TCP handshake for a listening socket nobody accepts from.
    port = int(servers.listen().getsockname()[1])
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, starttls=starttls, timeout=1)
    assert time.monotonic() - started < 3
    assert "within 1 seconds" in caught.value.message


def plain_text_only(stream: BufferedIOBase) -> None:
    """Greet in plain text whatever the client sends, and never start TLS."""
    _say(stream, "220 mx.example.test ESMTP")
    stream.read(1)  # the client's TLS hello, which this server does not understand
    raise OSError("this server does not speak TLS")


def test_plain_text_server_is_a_tls_failure(tmp_path: Path, servers: Servers) -> None:
    """A server answering in plain text where TLS was expected fails the handshake clearly."""
    _, context = _valid_for(tmp_path, "plain.example.test", days=5)
    port = servers.start(context, plain_text_only)
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, timeout=5)
    assert caught.value.message.startswith(f"The TLS handshake with 127.0.0.1:{port} failed")


def test_smtp_without_starttls_is_upstream_error(tmp_path: Path, servers: Servers) -> None:
    """An SMTP server that does not offer STARTTLS is reported as such."""
    _, context = _valid_for(tmp_path, "plain.example.test", days=5)
    port = servers.start(context, smtp_without_starttls)
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, starttls="smtp", timeout=5)
    assert "does not offer STARTTLS" in caught.value.message


@pytest.mark.parametrize(
    ("host", "port", "starttls"),
    [
        ("", 443, None),
        ("bad host", 443, None),
        ("a/b.example", 443, None),
        ("mx.example.test", 0, None),
        ("mx.example.test", 70000, None),
        ("mx.example.test", 25, "telnet"),
    ],
)
def test_malformed_target_is_invalid_input(host: str, port: int, starttls: str | None) -> None:
    """A malformed host, port or protocol is refused before any connection."""
    with pytest.raises(InvalidInputError):
        probe_certificate(host, port, starttls=starttls, timeout=1)
