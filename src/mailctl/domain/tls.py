"""Checks on uploaded TLS certificates and keys, and facts read from a stored chain."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from mailctl.errors import InvalidInputError, TooLargeError

MAX_UPLOAD_BYTES = 256 * 1024

_PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


@dataclass(frozen=True)
class CertInfo:
    """What mailctl knows about a certificate chain (and its key, when one was given)."""

    subject_cn: str | None
    san: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    chain_pem: bytes
    key_pem: bytes | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The host names the certificate is for: its SAN DNS names, else its subject CN.

        A TLS client checks the CN only when the certificate has no DNS name in its SAN
        (RFC 6125 6.4.4, and what OpenSSL's host check does).
        """
        if self.san:
            return self.san
        return (self.subject_cn,) if self.subject_cn else ()


def _check_size(data: bytes, what: str, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise TooLargeError(f"The {what} is larger than {max_bytes} bytes.")
    if not data.strip():
        raise InvalidInputError(f"The {what} is empty.")


def _load_chain(cert_pem: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN" not in cert_pem:
        raise InvalidInputError("The certificate is not in PEM format.")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise InvalidInputError("The certificate file contains no certificate.")
    try:
        return x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise InvalidInputError("The certificate PEM could not be parsed.") from exc


def _load_key(key_pem: bytes) -> _PrivateKey:
    if b"ENCRYPTED" in key_pem:
        raise InvalidInputError("The private key is encrypted; upload it without a passphrase.")
    if b"-----BEGIN" not in key_pem or b"PRIVATE KEY-----" not in key_pem:
        raise InvalidInputError("The private key is not a PEM private key.")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:
        raise InvalidInputError(
            "The private key is encrypted; upload it without a passphrase."
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInputError("The private key PEM could not be parsed.") from exc
    if not isinstance(key, _PrivateKey):
        raise InvalidInputError("The private key must be an RSA, ECDSA or EdDSA key.")
    return key


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Digests whose collisions can be forged: OpenSSL refuses certificates signed with them at
# its default security level, on the server's side when it loads one and on the client's.
_WEAK_DIGESTS = {
    "1.2.840.113549.1.1.2": "MD2",
    "1.2.840.113549.1.1.3": "MD4",
    SignatureAlgorithmOID.RSA_WITH_MD5.dotted_string: "MD5",
    SignatureAlgorithmOID.RSA_WITH_SHA1.dotted_string: "SHA-1",
    "1.3.14.3.2.29": "SHA-1",  # the old OIW name for sha1WithRSA
    SignatureAlgorithmOID.ECDSA_WITH_SHA1.dotted_string: "SHA-1",
    SignatureAlgorithmOID.DSA_WITH_SHA1.dotted_string: "SHA-1",
}
# The smallest keys clients still accept: 112-bit security, as OpenSSL's default level 2.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def _which(position: int, cert: x509.Certificate) -> str:
    if position == 1:
        return "The server certificate"
    return f"Certificate {position} of the chain ({cert.subject.rfc4514_string()})"


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _check_strength(chain: list[x509.Certificate]) -> None:
    """Refuse weak signatures and keys, each with its real reason.

    A self-signed certificate's own signature is not checked by anyone who trusts it (it
    is the trust anchor), so its digest does not matter; every key does.
    """
    for position, cert in enumerate(chain, start=1):
        which = _which(position, cert)
        weak = _WEAK_DIGESTS.get(cert.signature_algorithm_oid.dotted_string)
        if weak is not None and not _self_signed(cert):
            raise InvalidInputError(
                f"{which} is signed with {weak}, which clients refuse; ask its issuer for "
                "one signed with SHA-256."
            )
        try:
            key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InvalidInputError(
                f"{which} has a public key of a kind mailctl cannot read."
            ) from exc
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise InvalidInputError(
                f"{which} has a {key.key_size}-bit RSA key; clients refuse RSA keys under "
                f"{MIN_RSA_BITS} bits."
            )
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
            raise InvalidInputError(
                f"{which} has a {key.curve.key_size}-bit elliptic-curve key "
                f"({key.curve.name}); clients refuse curves under {MIN_EC_BITS} bits."
            )
        if isinstance(key, dsa.DSAPublicKey):
            raise InvalidInputError(f"{which} has a DSA key, which clients refuse.")


def _check_order(chain: list[x509.Certificate]) -> None:
    for position, (cert, issuer) in enumerate(itertools.pairwise(chain), start=1):
        if cert.issuer != issuer.subject:
            raise InvalidInputError(
                f"The certificate chain is in the wrong order: certificate {position} was not "
                f"issued by certificate {position + 1}; put the server certificate first, "
                "then each issuer."
            )
        try:
            cert.verify_directly_issued_by(issuer)
        except InvalidSignature as exc:
            raise InvalidInputError(
                f"The signature of certificate {position} does not verify with the key of "
                f"certificate {position + 1}."
            ) from exc
        except (TypeError, UnsupportedAlgorithm):
            # An issuer key type cryptography cannot verify with: the name check above has
            # to do.
            continue
        except ValueError as exc:
            # The names matched, so this is a signature algorithm cryptography lacks.
            raise InvalidInputError(
                f"{_which(position, cert)} is signed with an algorithm mailctl cannot check "
                f"({cert.signature_algorithm_oid.dotted_string})."
            ) from exc


def _info(chain: list[x509.Certificate], key_pem: bytes | None) -> CertInfo:
    leaf = chain[0]
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    try:
        ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        san = tuple(ext.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        san = ()
    return CertInfo(
        subject_cn=cn if isinstance(cn, str) else None,
        san=san,
        issuer=leaf.issuer.rfc4514_string(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        key_pem=key_pem,
    )


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def check_upload(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    now: datetime | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> CertInfo:
    """Check an uploaded chain and key before mailctl installs them, and describe them.

    Refuses (InvalidInputError, or TooLargeError for oversized input) anything a daemon
    would choke on or serve wrongly: no certificate, a bad or encrypted key, a key that is
    not the leaf's, a leaf outside its validity period, a chain out of order, a signature
    with a broken digest (SHA-1, MD5) or a key too small for clients. The returned
    chain and key PEMs are re-serialised, so stray text around the PEM blocks is gone.
    """
    _check_size(cert_pem, "certificate", max_bytes)
    _check_size(key_pem, "private key", max_bytes)
    chain = _load_chain(cert_pem)
    key = _load_key(key_pem)
    # Strength first: a SHA-1 signature fails the order check's verification too, for a
    # reason that is not the chain's order. Then order: a key that matches a later
    # certificate means the leaf is not first.
    _check_strength(chain)
    _check_order(chain)
    leaf = chain[0]
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise InvalidInputError("The private key does not match the server certificate.")
    moment = _utc(now)
    if moment < leaf.not_valid_before_utc:
        raise InvalidInputError(
            f"The certificate is not valid yet (valid from {leaf.not_valid_before_utc:%Y-%m-%d})."
        )
    if moment >= leaf.not_valid_after_utc:
        raise InvalidInputError(f"The certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}.")
    normal_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _info(chain, normal_key)


def read_chain(cert_pem: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> CertInfo:
    """Describe a stored certificate chain (no key); an expired one is described, not refused."""
    _check_size(cert_pem, "certificate", max_bytes)
    return _info(_load_chain(cert_pem), None)


def days_left(not_after: datetime, now: datetime | None = None) -> int:
    """Return the whole days until ``not_after`` (rounded down; negative once expired)."""
    return math.floor((_utc(not_after) - _utc(now)) / timedelta(days=1))


def matches_hostname(info: CertInfo, hostname: str) -> bool:
    """Return True if the certificate is valid for ``hostname``, as a TLS client decides.

    Only the SAN's DNS names count when there are any; a certificate without them is
    matched on its subject CN, as OpenSSL's host check does. A wildcard stands for exactly
    one whole left-most label (RFC 6125), never for a top-level domain's children.
    """
    host = hostname.strip().rstrip(".").lower()
    if not host:
        return False
    for name in info.names:
        pattern = name.rstrip(".").lower()
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in pattern[2:]:
            first, _, rest = host.partition(".")
            if first and rest and rest == pattern[2:]:
                return True
    return False
