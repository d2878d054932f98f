"""Test certificates: self-signed pairs with a chosen validity, as PEM bytes."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(
    name: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    days: float = 90,
    ip: str | None = None,
    ca: bool = False,
) -> tuple[bytes, bytes]:
    """A certificate for ``name`` (CN and SAN, plus ``ip`` if given) and its key, both PEM.

    Valid from ``not_before`` (a day ago by default) to ``not_after`` (``days`` from now).
    """
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(name)]
    if ip is not None:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
