"""Live TLS expiry probes against small TLS, SMTP, IMAP and POP3 servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ipaddress
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

from mailctl.certs import Targets, probe_certificate
from mailctl.errors import InvalidInputError, UpstreamError

# Most tests here check what the probe reads and says: as mailctl's own checks of its own
# listeners do, they may connect anywhere and hear every detail of a failure.
OWN = Targets(trusted=True)

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
    result = probe_certificate("127.0.0.1", port, timeout=5, targets=OWN)
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
    result = probe_certificate("localhost", port, starttls="auto", timeout=5, targets=OWN)
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
    result = probe_certificate("127.0.0.1", port, starttls=protocol, timeout=5, targets=OWN)
    assert result.subject == f"CN={protocol}.example.test"
    assert result.days_left in (59, 60)


def test_expired_certificate_has_negative_days_left(tmp_path: Path, servers: Servers) -> None:
    """An expired certificate is still read, and its days left are below zero."""
    now = dt.datetime.now(dt.UTC)
    _, context = _self_signed(
        tmp_path, "old.example.test", now - dt.timedelta(days=90), now - dt.timedelta(days=3)
    )
    port = servers.start(context)
    result = probe_certificate("127.0.0.1", port, timeout=5, targets=OWN)
    assert result.days_left in (-4, -3)
    assert result.not_after < now


def test_refused_port_is_upstream_error() -> None:
    """Nothing listening gives a clear UpstreamError, not a fake zero."""
    port = _closed_port()
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, timeout=5, targets=OWN)
    assert caught.value.message == f"The server at 127.0.0.1:{port} refused the connection."


@pytest.mark.parametrize("starttls", [None, "smtp"])
def test_silent_server_times_out(servers: Servers, starttls: str | None) -> None:
    """A server that accepts but never answers fails within the timeout."""
    # The kernel completes the TCP handshake for a listening socket nobody accepts from.
    port = int(servers.listen().getsockname()[1])
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, starttls=starttls, timeout=1, targets=OWN)
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
        probe_certificate("127.0.0.1", port, timeout=5, targets=OWN)
    assert caught.value.message.startswith(f"The TLS handshake with 127.0.0.1:{port} failed")


def test_smtp_without_starttls_is_upstream_error(tmp_path: Path, servers: Servers) -> None:
    """An SMTP server that does not offer STARTTLS is reported as such."""
    _, context = _valid_for(tmp_path, "plain.example.test", days=5)
    port = servers.start(context, smtp_without_starttls)
    with pytest.raises(UpstreamError) as caught:
        probe_certificate("127.0.0.1", port, starttls="smtp", timeout=5, targets=OWN)
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
        ("ad\u200dmin", 443, None),  # IDNA 2003 would drop the joiner and probe "admin"
        ("example\u3002com", 443, None),  # an ideographic full stop is not a dot here
        ("xn--a.example", 443, None),  # invalid punycode
    ],
)
def test_malformed_target_is_invalid_input(host: str, port: int, starttls: str | None) -> None:
    """A malformed host, port or protocol is refused before any connection."""
    with pytest.raises(InvalidInputError):
        probe_certificate(host, port, starttls=starttls, timeout=1, targets=OWN)


# --- where a probe may go -----------------------------------------------------------------

NEVER = [
    "169.254.169.254",
    "169.254.0.1",
    "fe80::1",
    "febf::1",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "0.0.0.0",  # noqa: S104 (an address refused, not one bound)
    "::",
    "255.255.255.255",
    "240.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1",
]
PRIVATE = ["127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1"]
PRIVATE += ["100.64.0.1", "::ffff:127.0.0.1", "localhost"]


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every address the probe tries to connect to, recorded; connections still happen."""
    import mailctl.certs.probe as probe

    seen: list[object] = []
    real = probe._connect

    def recording(resolved: list[probe.Resolved], deadline: float) -> socket.socket:
        seen.extend(entry[4][0] for entry in resolved)
        return real(resolved, deadline)

    monkeypatch.setattr(probe, "_connect", recording)
    return seen


@pytest.mark.security(
    finding=11,
    claim="A live certificate check never connects to link-local (169.254.169.254, fe80::/10), "
    "multicast, unspecified or reserved addresses, even with private targets allowed.",
)
@pytest.mark.parametrize("address", NEVER)
def test_link_local_multicast_unspecified_are_never_probed(
    address: str, connects: list[object], figure: Callable[[str, object], None]
) -> None:
    """Refused as input before any connection, whatever private targets are allowed."""
    for targets in (Targets(), Targets(private=True), Targets(mail_host=address)):
        with pytest.raises(InvalidInputError, match="which mailctl never probes"):
            probe_certificate(address, 443, timeout=1, targets=targets)
    assert connects == []
    figure("connections attempted", len(connects))


@pytest.mark.security(
    finding=11,
    claim="Private and loopback targets are refused unless MAILCTL_PROBE_PRIVATE_TARGETS "
    "allows them or they are the mail host's own.",
)
@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_loopback_need_to_be_allowed(address: str, connects: list[object]) -> None:
    """By default a private or loopback target is a 400 naming the setting; no connection."""
    with pytest.raises(InvalidInputError, match="MAILCTL_PROBE_PRIVATE_TARGETS"):
        probe_certificate(address, 443, timeout=1)
    other_network = Targets(networks=(ipaddress.ip_network("198.51.100.0/24"),))
    with pytest.raises(InvalidInputError, match="not the mail host's"):
        probe_certificate(address, 443, timeout=1, targets=other_network)
    assert connects == []


def test_allowed_networks_and_the_mail_host_reach_loopback(
    tmp_path: Path, servers: Servers
) -> None:
    """A listed network, every private address, or the mail host's name or address: allowed."""
    _, context = _valid_for(tmp_path, "local.example.test", days=20)
    port = servers.start(context)
    allowed = [
        Targets(private=True),
        Targets(networks=(ipaddress.ip_network("127.0.0.0/8"),)),
        Targets(mail_host="localhost"),  # resolves to 127.0.0.1: the host itself
        Targets(mail_host="127.0.0.1"),
    ]
    for targets in allowed:
        result = probe_certificate("127.0.0.1", port, timeout=5, targets=targets)
        assert result.subject == "CN=local.example.test"
    result = probe_certificate("localhost", port, timeout=5, targets=Targets(mail_host="localhost"))
    assert result.subject == "CN=local.example.test"


@pytest.mark.security(
    finding=11,
    claim="A probe resolves its host once and connects to the very address it checked, so a "
    "name cannot be rebound to a forbidden address between check and connect.",
)
def test_one_lookup_and_the_checked_address_is_the_one_connected(
    tmp_path: Path,
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    connects: list[object],
    figure: Callable[[str, object], None],
) -> None:
    """A name answering 127.0.0.1 first and 169.254.169.254 after: one look-up, 127.0.0.1 used."""
    _, context = _valid_for(tmp_path, "rebind.example.test", days=20)
    port = servers.start(context)
    lookups: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: str, *args: object, **kwargs: object) -> list[object]:
        if host != "rebind.example.test":
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        lookups.append(host)
        answer = "127.0.0.1" if len(lookups) == 1 else "169.254.169.254"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    allowed = Targets(private=True)
    result = probe_certificate("rebind.example.test", port, timeout=5, targets=allowed)
    assert result.subject == "CN=rebind.example.test"
    assert (lookups, connects) == (["rebind.example.test"], ["127.0.0.1"])
    # Any forbidden answer among several refuses the whole name.
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *_a, **_k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ],
    )
    with pytest.raises(InvalidInputError, match=r"169\.254\.169\.254.*never probes"):
        probe_certificate("mixed.example.test", port, timeout=5, targets=allowed)
    assert connects == ["127.0.0.1"]
    figure("look-ups per probe", len(lookups))


def banner_then_close(stream: BufferedIOBase) -> None:
    """A service that is not mail: says something and hangs up."""
    _say(stream, "-ERR unknown command 'secret-service-v1.2'")
    raise OSError("done")


@pytest.mark.security(
    finding=11,
    claim="A failed live check says only that no certificate could be read from host:port: "
    "its message does not tell an open port from a closed or filtered one.",
)
def test_failure_messages_do_not_map_ports(
    tmp_path: Path, servers: Servers, figure: Callable[[str, object], None]
) -> None:
    """Closed, silent, plain-text, banner and no-STARTTLS servers all get one message."""
    _, context = _valid_for(tmp_path, "x.example.test", days=5)
    ports = {
        "closed": (_closed_port(), None),
        "silent": (int(servers.listen().getsockname()[1]), None),
        "plain text": (servers.start(context, plain_text_only), None),
        "other service": (servers.start(context, banner_then_close), None),
        "no STARTTLS": (servers.start(context, smtp_without_starttls), "smtp"),
        "other service, smtp": (servers.start(context, banner_then_close), "smtp"),
    }
    allowed = Targets(private=True)
    messages = set()
    for port, starttls in ports.values():
        with pytest.raises(UpstreamError) as caught:
            probe_certificate("127.0.0.1", port, starttls=starttls, timeout=1, targets=allowed)
        messages.add(caught.value.message.replace(f":{port};", ":PORT;"))
    assert messages == {
        "Could not read a certificate from 127.0.0.1:PORT; check the host and port, and "
        "starttls= for a mail port that upgrades to TLS (smtp, imap, pop3)."
    }
    figure("kinds of failing port", len(ports))
    figure("distinct messages", len(messages))


def test_a_name_that_does_not_exist_is_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name DNS says does not exist is the caller's mistake (400), not a remote failure."""

    def no_such_name(*_args: object, **_kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(InvalidInputError, match="does not exist in DNS"):
        probe_certificate("nowhere.example.test", 443, timeout=1)
