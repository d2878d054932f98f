"""Test certificates: self-signed pairs with a chosen validity, as PEM bytes."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
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
    san: bool = True,
) -> tuple[bytes, bytes]:
    """A certificate for ``name`` (CN and SAN, plus ``ip`` if given) and its key, both PEM.

    Valid from ``not_before`` (a day ago by default) to ``not_after`` (``days`` from now).
    Without ``san`` the name is only the subject CN, as in many hand-made certificates.
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
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
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


def ca_signed(
    *names: str,
    days: float = 60,
    ca_first: bool = False,
    ca_key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[bytes, bytes, datetime]:
    """A leaf for ``names`` (SAN; the first is the CN) issued by a test CA.

    Returns the chain (leaf, then the CA; the other way round with ``ca_first``), the leaf's
    key, and the leaf's expiry, ``days`` from now (negative for an expired certificate).
    """
    now = datetime.now(UTC).replace(microsecond=0)
    ca = ca_key or ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + timedelta(days=days)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=365))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca, hashes.SHA256())
    )
    order = (ca_cert, leaf) if ca_first else (leaf, ca_cert)
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in order)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain, key_pem, not_after


def openssl_signed(folder: Path, name: str, digest: str) -> tuple[bytes, bytes]:
    """A chain (leaf for ``name``, then its CA) whose leaf is signed with ``digest``, and
    the leaf's key, made by the ``openssl`` command: cryptography refuses to sign with
    SHA-1, which is what this is for. Fails the test when openssl is missing.
    """
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl is not installed; it makes the weakly signed test certificates")
    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

    def openssl(command: str) -> None:
        subprocess.run([binary, *command.split()], cwd=folder, check=True, capture_output=True)

    openssl(f"req -x509 {new_key} -keyout ca.key -out ca.pem -subj /CN=Test-CA -days 30")
    openssl(f"req {new_key} -keyout leaf.key -out leaf.csr -subj /CN={name}")
    openssl(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem "
        f"-days 20 -{digest}"
    )
    chain = (folder / "leaf.pem").read_bytes() + (folder / "ca.pem").read_bytes()
    return chain, (folder / "leaf.key").read_bytes()
