"""A real ACME server for tests: pebble on 127.0.0.1, its fake DNS, and a challenge server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
STARTUP_SECONDS = 15.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """Return a port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PebbleServer:
    """Where the test ACME server listens and how to trust it."""

    directory_url: str
    ca_bundle: str  # CA of pebble's own HTTPS listener, not of the certificates it issues
    http_port: int  # pebble validates http-01 by fetching from this port on 127.0.0.1
    management_url: str


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """Make a CA and a 127.0.0.1/localhost server certificate for pebble's HTTPS listener."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailctl test ACME CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(
            f"{binary} is not installed; the ACME tests need Debian's pebble package "
            "(apt-get install pebble), which the test script installs.",
            pytrace=False,
        )
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _fail_start(what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    _stop(process)
    tail = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"{what} did not start within {STARTUP_SECONDS:g} s. Its log:\n{tail}")


def _dns_answers(port: int) -> bool:
    query = dns.message.make_query("probe.example.test", dns.rdatatype.A)
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (OSError, dns.exception.DNSException):
        return False
    return any(rrset.rdtype == dns.rdatatype.A for rrset in reply.answer)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pebble_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Start pebble-challtestsrv as a DNS server answering A 127.0.0.1 for every name."""
    binary = _require("pebble-challtestsrv")
    port = free_port(socket.SOCK_DGRAM)
    log = tmp_path_factory.mktemp("challtestsrv") / "challtestsrv.log"
    argv = [
        binary,
        "-dns01",
        f"127.0.0.1:{port}",
        "-defaultIPv4",
        "127.0.0.1",
        # No AAAA answers: the challenge server listens on IPv4 only.
        "-defaultIPv6",
        "",
        "-management",
        f"127.0.0.1:{free_port()}",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _dns_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                _fail_start("pebble-challtestsrv", process, log)
            time.sleep(0.1)
        yield port
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory, pebble_dns: int) -> Iterator[PebbleServer]:
    """Start pebble for the whole run; certificates it issues are validated for real."""
    binary = _require("pebble")
    workdir = tmp_path_factory.mktemp("pebble")
    ca_path, cert_path, key_path = _write_tls_files(workdir)
    listen_port = free_port()
    management_port = free_port()
    http_port = free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{listen_port}",
            "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(cert_path),
            "privateKey": str(key_path),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    config_path = workdir / "pebble-config.json"
    config_path.write_text(json.dumps(config))
    env = {
        **os.environ,
        # Validate at once instead of after a random pause, and never reject a nonce at
        # random: both exist to shake out client bugs, but make a suite slow and flaky.
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
    }
    env.pop("PEBBLE_VA_ALWAYS_VALID", None)
    log = workdir / "pebble.log"
    argv = [binary, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{pebble_dns}"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _accepts(listen_port):
            if process.poll() is not None or time.monotonic() > deadline:
                _fail_start("pebble", process, log)
            time.sleep(0.1)
        yield PebbleServer(
            directory_url=f"https://127.0.0.1:{listen_port}/dir",
            ca_bundle=str(ca_path),
            http_port=http_port,
            management_url=f"https://127.0.0.1:{management_port}",
        )
    finally:
        _stop(process)


@dataclass
class ChallengeServer:
    """Serves http-01 answers on 127.0.0.1 and records which paths were fetched."""

    port: int
    answers: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, token: str, key_authorization: str) -> None:
        """Serve ``key_authorization`` for ``token``."""
        with self.lock:
            self.answers[token] = key_authorization

    def unpublish(self, token: str) -> None:
        """Stop serving ``token``."""
        with self.lock:
            self.answers.pop(token, None)


def _handler_for(server: ChallengeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with server.lock:
                server.fetched.append(self.path)
                answer = None
                if self.path.startswith(CHALLENGE_PREFIX):
                    answer = server.answers.get(self.path[len(CHALLENGE_PREFIX) :])
            body = (answer or "not found").encode("ascii")
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output for failures

    return Handler


@pytest.fixture
def challenge_server(pebble: PebbleServer) -> Iterator[ChallengeServer]:
    """Listen on pebble's http-01 port for one test, so other tests may bind it themselves."""
    state = ChallengeServer(port=pebble.http_port)
    httpd = ThreadingHTTPServer(("127.0.0.1", pebble.http_port), _handler_for(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
