"""Live TLS probe: fetch a server's certificate (after STARTTLS if asked) and read its expiry."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailctl.certs.targets import Resolved, Targets
from mailctl.domain.names import normalize_host_name
from mailctl.domain.numbers import ascii_digits
from mailctl.errors import InvalidInputError, UpstreamError

log = logging.getLogger("mailctl.probe")
# The default: public addresses only. Callers that may reach more say so.
PUBLIC_ONLY = Targets()

STARTTLS_PROTOCOLS = ("smtp", "imap", "pop3")
# Ports whose protocol starts in plain text and upgrades; everything else speaks TLS at once.
STARTTLS_BY_PORT = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3"}

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
    # The same IDNA rules as every other name mailctl takes (UTS 46, IDNA 2008): Python's
    # own "idna" codec (IDNA 2003) would drop a zero-width joiner and probe "admin" for
    # "ad\u200dmin", or read "example\u3002com" as example.com.
    try:
        return normalize_host_name(text), False
    except InvalidInputError as exc:
        raise InvalidInputError(f"The host {text!r} is not a valid host name.") from exc


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


def _resolve(address: str, port: int) -> list[Resolved]:
    try:
        found = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            # The name does not exist: the caller's mistake, not a failing remote party.
            raise InvalidInputError(f"The host {address} does not exist in DNS.") from exc
        raise UpstreamError(f"The host {address} does not resolve: {exc.strerror}.") from exc
    except (OSError, UnicodeError) as exc:
        raise UpstreamError(f"The host {address} does not resolve.") from exc
    resolved: list[Resolved] = [
        entry for entry in found if entry[0] in (socket.AF_INET, socket.AF_INET6)
    ]
    if not resolved:
        raise UpstreamError(f"The host {address} has no IPv4 or IPv6 address.")
    return resolved


def _check_targets(targets: Targets, address: str, is_ip: bool, resolved: list[Resolved]) -> None:
    # Every address is checked, not just the first: the connection may fall through to any.
    name = None if is_ip else address
    for entry in resolved:
        ip = ipaddress.ip_address(str(entry[4][0]).split("%", 1)[0])
        reason = targets.refusal(name, ip)
        if reason is not None:
            shown = address if is_ip else f"{address} ({ip})"
            raise InvalidInputError(f"mailctl does not probe {shown}: {reason}.")


def _connect(resolved: list[Resolved], deadline: float) -> socket.socket:
    """Connect to the first resolved address that answers: the ones checked, no new look-up."""
    failure: OSError = TimeoutError()
    for family, kind, proto, _, sockaddr in resolved:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        return sock
    raise failure


def _detail(exc: Exception, where: str, timeout: float) -> str:
    if isinstance(exc, UpstreamError):
        return exc.message
    if isinstance(exc, ConnectionRefusedError):
        return f"The server at {where} refused the connection."
    if isinstance(exc, TimeoutError):
        return f"The server at {where} did not answer within {timeout:g} seconds."
    if isinstance(exc, ssl.SSLError):
        return f"The TLS handshake with {where} failed: {exc.reason or exc}."
    if isinstance(exc, OSError):
        return f"The connection to {where} failed: {exc.strerror or exc.__class__.__name__}."
    return f"The probe of {where} failed: {exc.__class__.__name__}."


def _peer_certificate(
    resolved: list[Resolved],
    protocol: str | None,
    sni: str | None,
    where: str,
    deadline: float,
) -> bytes:
    with _connect(resolved, deadline) as sock:
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
    if not der:
        raise UpstreamError(f"The server at {where} presented no certificate.")
    return der


def probe_certificate(
    host: str,
    port: int = 443,
    *,
    starttls: str | None = None,
    timeout: float = 10.0,
    server_name: str | None = None,
    targets: Targets = PUBLIC_ONLY,
) -> ProbeResult:
    """Connect to ``host:port``, complete a TLS handshake and describe the peer certificate.

    ``starttls`` is ``"smtp"``, ``"imap"`` or ``"pop3"`` to upgrade a plain-text session
    first, ``"auto"`` to choose by port (25 and 587 SMTP, 143 IMAP, 110 POP3, others direct
    TLS), or None for TLS from the first byte. ``server_name`` is sent as SNI (default: the
    host, unless it is an IP address). ``timeout`` bounds the whole exchange after name
    resolution. The certificate is read, not trusted: expired and self-signed ones are
    reported too.

    The host is resolved once; every address it resolves to must be one ``targets``
    allows, and the connection goes to those very addresses (a second look-up could
    answer differently). Unless ``targets`` is trusted, a failure after resolution says
    only that no certificate could be read from host:port, so the answers do not tell
    an open port from a closed or filtered one; the reason goes to the log.

    Raises InvalidInputError for a malformed host, port or protocol, a target that
    ``targets`` refuses or a name that does not exist, and UpstreamError when the resolver
    fails, or the server refuses, does not answer in time, or fails the handshake.
    """
    address, is_ip = _check_host(host)
    port = _check_port(port)
    protocol = _choose_starttls(starttls, port)
    if timeout <= 0:
        raise InvalidInputError("The probe timeout must be a positive number of seconds.")
    sni = server_name if server_name is not None else (None if is_ip else address)
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    resolved = _resolve(address, port)
    _check_targets(targets, address, is_ip, resolved)
    deadline = time.monotonic() + timeout
    try:
        der = _peer_certificate(resolved, protocol, sni, where, deadline)
    except (UpstreamError, OSError) as exc:
        detail = _detail(exc, where, timeout)
        if targets.trusted:
            raise UpstreamError(detail) from exc
        log.info("live certificate probe of %s failed: %s", where, detail)
        raise UpstreamError(
            f"Could not read a certificate from {where}; check the host and port, and "
            "starttls= for a mail port that upgrades to TLS (smtp, imap, pop3)."
        ) from exc
    return _read_certificate(der)
