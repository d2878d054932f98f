"""Certificate issuance over ACME v2 with the HTTP-01 challenge."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.errors import Error as JoseError
from josepy.jwa import ES256, ES384, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from mailctl.domain.names import normalize_domain
from mailctl.errors import InvalidInputError, UpstreamError

USER_AGENT = "mailctl"

# Key types a certificate key may have; the account key is always RSA 2048 unless the caller
# hands us an existing EC account key.
CERTIFICATE_KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ec256", "ec384")


class ChallengePublisher(Protocol):
    """Makes ``/.well-known/acme-challenge/<token>`` answer with a key authorization."""

    def publish(self, token: str, key_authorization: str) -> None:
        """Serve ``key_authorization`` at the challenge path of ``token``."""

    def unpublish(self, token: str) -> None:
        """Stop serving the challenge of ``token``."""


@dataclass
class IssuedCertificate:
    """A certificate the ACME server issued, with the keys that belong to it."""

    chain_pem: bytes  # leaf first, then the intermediates, as the server sent them
    key_pem: bytes  # PKCS#8 private key of the leaf; store it 0600
    account_key_pem: bytes  # keep it to reuse the same ACME account next time
    not_after: dt.datetime  # expiry of the leaf, timezone-aware UTC


def _report(progress: Callable[[str], None] | None, step: str) -> None:
    if progress is not None:
        progress(step)


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_certificate_key(key_type: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if key_type.startswith("rsa") and key_type in CERTIFICATE_KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    raise InvalidInputError(
        f"Unknown certificate key type {key_type!r}; use one of {', '.join(CERTIFICATE_KEY_TYPES)}."
    )


def _account_jwk(account_key_pem: bytes | None) -> tuple[JWK, JWASignature, bytes]:
    """Load (or make) the account key and return it as JWK, signing algorithm and PEM."""
    if account_key_pem is None:
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return JWKRSA(key=new_key), RS256, _private_pem(new_key)
    try:
        key = serialization.load_pem_private_key(account_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            "The ACME account key is not an unencrypted PEM private key."
        ) from exc
    if isinstance(key, rsa.RSAPrivateKey):
        return JWKRSA(key=key), RS256, account_key_pem
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithms = {"secp256r1": ES256, "secp384r1": ES384}
        if key.curve.name in algorithms:
            return JWKEC(key=key), algorithms[key.curve.name], account_key_pem
    raise InvalidInputError("The ACME account key must be RSA, or EC on P-256 or P-384.")


def _register(ca: client.ClientV2, email: str | None) -> None:
    """Create the account, or find the one that already belongs to this key."""
    registration = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    try:
        ca.new_account(registration)
    except acme_errors.ConflictError as exists:
        # RFC 8555 answers a known key with the account's URL; look the account up so that
        # later requests are signed with its key id.
        existing = messages.RegistrationResource(body=messages.Registration(), uri=exists.location)
        ca.query_registration(existing)


def _http01(authorization: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    name = authorization.body.identifier.value
    raise UpstreamError(f"The ACME server offers no http-01 challenge for {name}.")


def _validation_failure(error: acme_errors.ValidationError) -> str:
    details = []
    for authorization in error.failed_authzrs:
        for challenge in authorization.body.challenges:
            if challenge.error is not None:
                details.append(challenge.error.detail or str(challenge.error))
    return "; ".join(details) or "no reason given"


def _network_failure(error: OSError) -> str:
    """Say in a few words why a request failed, without the HTTP layer's nested repr."""
    kind = type(error).__name__
    text = str(error)
    if "SSL" in kind or "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate could not be verified"
    if "Timeout" in kind or "timed out" in text:
        return "it did not answer in time"
    if "refused" in text.lower():
        return "the connection was refused"
    if "resolve" in text.lower() or "Name or service not known" in text:
        return "its host name does not resolve"
    return f"the connection failed ({kind})"


def _read_chain(
    chain_pem: bytes, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> dt.datetime:
    """Check the leaf belongs to our key and return its expiry."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise UpstreamError(
            "The ACME server returned a certificate chain that does not parse."
        ) from exc
    leaf = chain[0]
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise UpstreamError("The ACME server returned a certificate for a different key.")
    return leaf.not_valid_after_utc


def issue_certificate(
    hostname: str,
    *,
    directory_url: str,
    publisher: ChallengePublisher,
    account_key_pem: bytes | None = None,
    email: str | None = None,
    ca_bundle: str | None = None,
    timeout: float = 60.0,
    key_type: str = "rsa2048",
    progress: Callable[[str], None] | None = None,
) -> IssuedCertificate:
    """Obtain a certificate for ``hostname`` from the ACME server at ``directory_url``.

    The account of ``account_key_pem`` is registered or reused (a new key is made when none
    is given, and returned); the terms of service are agreed to. A fresh certificate key of
    ``key_type`` signs the request. ``publisher`` serves the HTTP-01 answers while the server
    validates, and is told to stop serving them afterwards, whatever happens. ``ca_bundle``
    is the CA file that verifies the ACME server's own HTTPS certificate. ``timeout`` bounds
    each request and the wait for validation and issuance.

    Raises InvalidInputError for a malformed hostname, key type or account key, and
    UpstreamError with the server's message when the ACME server refuses, fails validation,
    cannot be reached or takes longer than ``timeout``.
    """
    name = normalize_domain(hostname)
    if timeout <= 0:
        raise InvalidInputError("The ACME timeout must be a positive number of seconds.")
    certificate_key = _new_certificate_key(key_type)
    jwk, algorithm, account_pem = _account_jwk(account_key_pem)
    net = client.ClientNetwork(
        jwk,
        alg=algorithm,
        # The HTTP layer underneath takes a CA file path where it takes True; the annotation
        # only names the boolean.
        verify_ssl=cast(bool, ca_bundle) if ca_bundle else True,
        user_agent=USER_AGENT,
        timeout=max(1, math.ceil(timeout)),
    )
    try:
        _report(progress, "fetching ACME directory")
        ca = client.ClientV2(client.ClientV2.get_directory(directory_url, net), net)
        _report(progress, "registering account")
        _register(ca, email)
        _report(progress, "creating order")
        key_pem = _private_pem(certificate_key)
        order = ca.new_order(crypto_util.make_csr(key_pem, [name]))
        # Polling uses naive local time in the client library.
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
        published: list[str] = []
        try:
            for authorization in order.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue  # the server remembers an earlier validation of this name
                challenge = _http01(authorization)
                response, key_authorization = challenge.response_and_validation(jwk)
                token = challenge.chall.encode("token")
                _report(progress, "answering http-01 challenge")
                publisher.publish(token, key_authorization)
                published.append(token)
                ca.answer_challenge(challenge, response)
            _report(progress, "waiting for validation")
            order = ca.poll_authorizations(order, deadline)
        finally:
            for token in published:
                publisher.unpublish(token)
        _report(progress, "finalizing order")
        order = ca.finalize_order(order, deadline)
    except acme_errors.ValidationError as exc:
        raise UpstreamError(
            f"The ACME server could not validate {name}: {_validation_failure(exc)}"
        ) from exc
    except acme_errors.IssuanceError as exc:
        detail = exc.error.detail or str(exc.error)
        raise UpstreamError(f"The ACME server refused to issue for {name}: {detail}") from exc
    except acme_errors.TimeoutError as exc:
        raise UpstreamError(
            f"The ACME server did not finish the order for {name} within {timeout:g} seconds."
        ) from exc
    except messages.Error as exc:
        detail = exc.detail or exc.title or exc.typ
        raise UpstreamError(f"The ACME server refused the request: {detail}") from exc
    except acme_errors.Error as exc:
        raise UpstreamError(f"The ACME server answered unexpectedly: {exc}") from exc
    except JoseError as exc:
        raise UpstreamError(f"The ACME server sent a message that does not parse: {exc}") from exc
    except OSError as exc:
        # The HTTP layer's connection, TLS and timeout errors all derive from OSError.
        raise UpstreamError(
            f"Could not reach the ACME server at {directory_url}: {_network_failure(exc)}."
        ) from exc
    _report(progress, "certificate issued")
    chain_pem = order.fullchain_pem.encode("ascii")
    return IssuedCertificate(
        chain_pem=chain_pem,
        key_pem=key_pem,
        account_key_pem=account_pem,
        not_after=_read_chain(chain_pem, certificate_key),
    )
