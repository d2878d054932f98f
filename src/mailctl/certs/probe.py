"""Live TLS probe: fetch a server's certificate (after STARTTLS if asked) and read its expiry."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailctl.domain.numbers import ascii_digits
from mailctl.errors import InvalidInputError, UpstreamError

STARTTLS_PROTOCOLS = ("smtp", "imap", "pop3")
# Ports whose protocol starts in plain text and upgrades; everything else speaks TLS at once.
STARTTLS_BY_PORT = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3"}

_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_MAX_LINE = 4096  # RFC 5321 and RFC 3501 lines are far shorter; more is not a mail server
_MAX_LINES = 100  # a greeting or capability list longer than this is not a mail server


@dataclass(frozen=True)
class ProbeResult:
    """What the peer's certificate says; trust is not checked, only read."""

    not_after: dt.datetime  # timezone-aware UTC
    days_left: int  # whole days until expiry, negative once expired
    subject: str  # RFC 4514 form
    issuer: str  # RFC 4514 form
    fingerprint_sha256: str  # uppercase hex pairs joined by colons, as openssl prints it


class _Conversation:
    """Line-oriented plain-text exchange on a socket, bounded by one deadline."""

    def __init__(self, sock: socket.socket, deadline: float, where: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.where = where
        self.buffer = b""

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)

    def send(self, line: str) -> None:
        self._arm()
        self.sock.sendall(line.encode("ascii") + b"\r\n")

    def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > _MAX_LINE:
                raise UpstreamError(f"The server at {self.where} sent an overlong line.")
            self._arm()
            chunk = self.sock.recv(_MAX_LINE)
            if not chunk:
                raise UpstreamError(
                    f"The server at {self.where} closed the connection before STARTTLS."
                )
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\n", 1)
        return raw.rstrip(b"\r").decode("utf-8", "replace")

    def smtp_reply(self) -> tuple[int, list[str]]:
        """Read a (possibly multi-line) SMTP reply: its code and its text lines."""
        texts: list[str] = []
        for _ in range(_MAX_LINES):
            text = self.line()
            if len(text) < 3 or not ascii_digits(text[:3]):
                raise UpstreamError(
                    f"The server at {self.where} does not speak SMTP (it said {text[:80]!r})."
                )
            texts.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), texts
        raise UpstreamError(f"The server at {self.where} sent an endless SMTP reply.")

    def expect_clean(self) -> None:
        # Bytes already buffered would be eaten by the plain-text reader, not the TLS layer.
        if self.buffer:
            raise UpstreamError(f"The server at {self.where} sent data after agreeing to STARTTLS.")


def _starttls_smtp(talk: _Conversation) -> None:
    code, _ = talk.smtp_reply()
    if code != 220:
        raise UpstreamError(f"The SMTP server at {talk.where} greeted with code {code}.")
    local = talk.sock.getsockname()[0]
    literal = f"[IPv6:{local}]" if ":" in local else f"[{local}]"
    talk.send(f"EHLO {literal}")
    code, lines = talk.smtp_reply()
    if code != 250:
        raise UpstreamError(f"The SMTP server at {talk.where} refused EHLO (code {code}).")
    if not any(line.upper().split(" ")[0] == "STARTTLS" for line in lines):
        raise UpstreamError(f"The SMTP server at {talk.where} does not offer STARTTLS.")
    talk.send("STARTTLS")
    code, lines = talk.smtp_reply()
    if code != 220:
        reason = " ".join(lines)
        raise UpstreamError(f"The SMTP server at {talk.where} refused STARTTLS: {code} {reason}")


def _starttls_imap(talk: _Conversation) -> None:
    greeting = talk.line()
    if not greeting.upper().startswith("* OK"):
        raise UpstreamError(
            f"The server at {talk.where} does not greet like IMAP (it said {greeting[:80]!r})."
        )
    talk.send("a1 STARTTLS")
    for _ in range(_MAX_LINES):
        reply = talk.line()
        if reply.startswith("a1 "):
            if reply[3:].upper().startswith("OK"):
                return
            raise UpstreamError(f"The IMAP server at {talk.where} refused STARTTLS: {reply[3:]}")
    raise UpstreamError(f"The IMAP server at {talk.where} never answered STARTTLS.")


def _starttls_pop3(talk: _Conversation) -> None:
    greeting = talk.line()
    if not greeting.startswith("+OK"):
        raise UpstreamError(
            f"The server at {talk.where} does not greet like POP3 (it said {greeting[:80]!r})."
        )
    talk.send("STLS")
    reply = talk.line()
    if not reply.startswith("+OK"):
        raise UpstreamError(f"The POP3 server at {talk.where} refused STLS: {reply}")


_UPGRADES = {"smtp": _starttls_smtp, "imap": _starttls_imap, "pop3": _starttls_pop3}


def _check_host(host: object) -> tuple[str, bool]:
    """Return the host as we connect to it, and whether it is an IP address literal."""
    if not isinstance(host, str) or not host.strip():
        raise InvalidInputError("The host to probe must be a non-empty name or address.")
    text = host.strip()
    try:
        return str(ipaddress.ip_address(text.strip("[]"))), True
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidInputError(f"The host {text!r} is not a valid host name.") from exc
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidInputError(f"The host {text!r} is not a valid host name.")
    return ascii_name, False


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInputError(f"The port {port!r} is not a number from 1 to 65535.")
    return port


def _choose_starttls(starttls: str | None, port: int) -> str | None:
    if starttls is None or starttls == "none":
        return None
    if starttls == "auto":
        return STARTTLS_BY_PORT.get(port)
    if starttls in STARTTLS_PROTOCOLS:
        return starttls
    raise InvalidInputError(
        f"Unknown STARTTLS protocol {starttls!r}; use smtp, imap, pop3, auto or none."
    )


def _read_certificate(der: bytes) -> ProbeResult:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise UpstreamError("The server sent a certificate that does not parse.") from exc
    not_after = cert.not_valid_after_utc
    remaining = not_after - dt.datetime.now(dt.UTC)
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ProbeResult(
        not_after=not_after,
        days_left=remaining.days,  # floors, so an expired certificate is always negative
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        fingerprint_sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    )


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # We report the expiry of whatever the server presents, trusted or not: an expired or
    # self-signed certificate is exactly what an operator needs to see.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def probe_certificate(
    host: str,
    port: int = 443,
    *,
    starttls: str | None = None,
    timeout: float = 10.0,
    server_name: str | None = None,
) -> ProbeResult:
    """Connect to ``host:port``, complete a TLS handshake and describe the peer certificate.

    ``starttls`` is ``"smtp"``, ``"imap"`` or ``"pop3"`` to upgrade a plain-text session
    first, ``"auto"`` to choose by port (25 and 587 SMTP, 143 IMAP, 110 POP3, others direct
    TLS), or None for TLS from the first byte. ``server_name`` is sent as SNI (default: the
    host, unless it is an IP address). ``timeout`` bounds the whole exchange after name
    resolution. The certificate is read, not trusted: expired and self-signed ones are
    reported too.

    Raises InvalidInputError for a malformed host, port or protocol, and UpstreamError when
    the host does not resolve, refuses, does not answer in time, or the handshake fails.
    """
    address, is_ip = _check_host(host)
    port = _check_port(port)
    protocol = _choose_starttls(starttls, port)
    if timeout <= 0:
        raise InvalidInputError("The probe timeout must be a positive number of seconds.")
    sni = server_name if server_name is not None else (None if is_ip else address)
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            if protocol is not None:
                talk = _Conversation(sock, deadline, where)
                _UPGRADES[protocol](talk)
                talk.expect_clean()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            with _client_context().wrap_socket(sock, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
    except socket.gaierror as exc:
        raise UpstreamError(f"The host {address} does not resolve: {exc.strerror}.") from exc
    except ConnectionRefusedError as exc:
        raise UpstreamError(f"The server at {where} refused the connection.") from exc
    except TimeoutError as exc:
        raise UpstreamError(
            f"The server at {where} did not answer within {timeout:g} seconds."
        ) from exc
    except ssl.SSLError as exc:
        raise UpstreamError(f"The TLS handshake with {where} failed: {exc.reason or exc}.") from exc
    except OSError as exc:
        raise UpstreamError(
            f"The connection to {where} failed: {exc.strerror or exc.__class__.__name__}."
        ) from exc
    if not der:
        raise UpstreamError(f"The server at {where} presented no certificate.")
    return _read_certificate(der)
