"""Certificate issuance over ACME, against a real pebble server with real http-01 checks."""

from __future__ import annotations

import datetime as dt
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailctl.certs.issuer import IssuedCertificate, issue_certificate
from mailctl.errors import InvalidInputError, UpstreamError

if TYPE_CHECKING:
    # Only for annotations: at run time the fixtures hand these objects over, so this module
    # never imports a conftest by name (several test folders have one).
    from conftest import ChallengeServer, PebbleServer

HOSTNAME = "mail.example.test"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


class NoPublisher:
    """A publisher for tests that fail before any challenge is offered."""

    def publish(self, token: str, key_authorization: str) -> None:
        """Refuse: no challenge should reach this point."""
        raise AssertionError("no challenge was expected")

    def unpublish(self, token: str) -> None:
        """Refuse: no challenge should reach this point."""
        raise AssertionError("no challenge was expected")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spki(key: object) -> bytes:
    assert hasattr(key, "public_bytes")
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _assert_certificate_for(issued: IssuedCertificate, hostname: str) -> x509.Certificate:
    chain = x509.load_pem_x509_certificates(issued.chain_pem)
    assert len(chain) >= 2, "the full chain includes at least one intermediate"
    leaf = chain[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [hostname]
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert _spki(leaf.public_key()) == _spki(key.public_key())
    assert leaf.issuer == chain[1].subject
    assert issued.not_after == leaf.not_valid_after_utc
    assert issued.not_after > dt.datetime.now(dt.UTC)
    return leaf


@dataclass
class WrongAnswer:
    """Publishes, on a real challenge server, a key authorization of no account."""

    server: ChallengeServer

    def publish(self, token: str, key_authorization: str) -> None:
        """Serve a key authorization with the right token but a foreign thumbprint."""
        self.server.publish(token, f"{token}.not-the-account-thumbprint")

    def unpublish(self, token: str) -> None:
        """Stop serving ``token``."""
        self.server.unpublish(token)


@pytest.mark.acme
def test_issues_certificate_after_real_http01_validation(
    pebble: PebbleServer, challenge_server: ChallengeServer
) -> None:
    """A certificate for the hostname is issued once pebble fetched our http-01 answer."""
    steps: list[str] = []
    issued = issue_certificate(
        HOSTNAME,
        directory_url=pebble.directory_url,
        publisher=challenge_server,
        ca_bundle=pebble.ca_bundle,
        email="postmaster@example.test",
        timeout=30,
        progress=steps.append,
    )
    _assert_certificate_for(issued, HOSTNAME)
    assert any(path.startswith(CHALLENGE_PREFIX) for path in challenge_server.fetched)
    assert challenge_server.answers == {}, "answers are withdrawn after issuance"
    assert serialization.load_pem_private_key(issued.account_key_pem, password=None)
    for step in ("registering account", "answering http-01 challenge", "finalizing order"):
        assert step in steps


@pytest.mark.acme
def test_second_issuance_reuses_the_account_key(
    pebble: PebbleServer, challenge_server: ChallengeServer
) -> None:
    """Issuing again with the returned account key works and keeps that key."""
    first = issue_certificate(
        HOSTNAME,
        directory_url=pebble.directory_url,
        publisher=challenge_server,
        ca_bundle=pebble.ca_bundle,
        timeout=30,
    )
    second = issue_certificate(
        HOSTNAME,
        directory_url=pebble.directory_url,
        publisher=challenge_server,
        account_key_pem=first.account_key_pem,
        ca_bundle=pebble.ca_bundle,
        timeout=30,
        key_type="ec256",
    )
    assert second.account_key_pem == first.account_key_pem
    leaf = _assert_certificate_for(second, HOSTNAME)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert second.key_pem != first.key_pem, "every certificate gets a fresh key"


@pytest.mark.acme
def test_wrong_key_authorization_reports_pebbles_reason(
    pebble: PebbleServer, challenge_server: ChallengeServer
) -> None:
    """A wrong http-01 answer fails with the ACME server's own explanation."""
    with pytest.raises(UpstreamError) as caught:
        issue_certificate(
            "wrong.example.test",
            directory_url=pebble.directory_url,
            publisher=WrongAnswer(challenge_server),
            ca_bundle=pebble.ca_bundle,
            timeout=30,
        )
    message = caught.value.message
    assert "wrong.example.test" in message
    assert "key authorization" in message.lower()
    assert "not-the-account-thumbprint" in message
    assert any(path.startswith(CHALLENGE_PREFIX) for path in challenge_server.fetched)
    assert challenge_server.answers == {}, "answers are withdrawn after a failure too"


@pytest.mark.acme
def test_directory_behind_untrusted_certificate_is_refused(pebble: PebbleServer) -> None:
    """Without pebble's CA the ACME server's HTTPS certificate is not trusted."""
    with pytest.raises(UpstreamError) as caught:
        issue_certificate(
            HOSTNAME,
            directory_url=pebble.directory_url,
            publisher=NoPublisher(),
            timeout=10,
        )
    assert "TLS certificate could not be verified" in caught.value.message


def test_unreachable_directory_fails_quickly() -> None:
    """A directory URL nobody listens on gives UpstreamError at once, not after the timeout."""
    url = f"https://127.0.0.1:{_closed_port()}/dir"
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        issue_certificate(HOSTNAME, directory_url=url, publisher=NoPublisher(), timeout=30)
    assert time.monotonic() - started < 5
    assert url in caught.value.message
    assert "refused" in caught.value.message


@pytest.mark.parametrize("hostname", ["", "mail..example.test", "../etc", "*.example.test"])
def test_malformed_hostname_is_invalid_input(hostname: str) -> None:
    """A name that cannot be a host is refused before any request is made."""
    with pytest.raises(InvalidInputError):
        issue_certificate(
            hostname,
            directory_url="https://127.0.0.1:9/dir",
            publisher=NoPublisher(),
        )


def test_unknown_key_type_is_invalid_input() -> None:
    """Only the documented certificate key types are accepted."""
    with pytest.raises(InvalidInputError) as caught:
        issue_certificate(
            HOSTNAME,
            directory_url="https://127.0.0.1:9/dir",
            publisher=NoPublisher(),
            key_type="dsa1024",
        )
    assert "rsa2048" in caught.value.message
