"""Checks on uploaded certificates and keys: what is accepted, and why the rest is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from tests.pki import openssl_signed

from mailctl.domain import tls
from mailctl.errors import InvalidInputError, TooLargeError

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    cn: str,
    issuer: Issued | None = None,
    *,
    san: tuple[str, ...] = (),
    ca: bool = False,
    not_before: datetime = NOW - timedelta(days=10),
    not_after: datetime = NOW + timedelta(days=80),
) -> Issued:
    """Make a certificate for ``cn``, signed by ``issuer`` (or self-signed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
        )
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Test Root", ca=True, not_after=NOW + timedelta(days=3650))


@pytest.fixture(scope="module")
def inter(root: Issued) -> Issued:
    return issue("Test Intermediate", root, ca=True, not_after=NOW + timedelta(days=3650))


@pytest.fixture(scope="module")
def leaf(inter: Issued) -> Issued:
    return issue("mail.example.org", inter, san=("mail.example.org", "*.example.net"))


def test_good_chain_is_described(leaf: Issued, inter: Issued) -> None:
    """A valid leaf + intermediate with its key yields the facts a user is shown."""
    info = tls.check_upload(leaf.pem + inter.pem, leaf.key_pem, now=NOW)
    assert info.subject_cn == "mail.example.org"
    assert info.san == ("mail.example.org", "*.example.net")
    assert info.issuer == "CN=Test Intermediate"
    assert info.not_after == NOW + timedelta(days=80)
    assert info.fingerprint_sha256 == leaf.cert.fingerprint(hashes.SHA256()).hex()
    assert len(info.fingerprint_sha256) == 64
    assert info.chain_pem == leaf.pem + inter.pem
    assert info.key_pem is not None
    assert info.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_text_around_pem_blocks_is_dropped(leaf: Issued, inter: Issued) -> None:
    """Comments and blank lines around the blocks do not survive into the stored chain."""
    messy = b"subject=CN=mail\n\n" + leaf.pem + b"\n# intermediate\n" + inter.pem + b"\n\n"
    info = tls.check_upload(messy, b"\n" + leaf.key_pem, now=NOW)
    assert info.chain_pem == leaf.pem + inter.pem


def test_wrong_order_is_refused(leaf: Issued, inter: Issued) -> None:
    """An intermediate before the leaf is refused with a sentence saying what order to use."""
    with pytest.raises(InvalidInputError, match="wrong order"):
        tls.check_upload(inter.pem + leaf.pem, leaf.key_pem, now=NOW)


def test_issuer_signature_must_verify(leaf: Issued, inter: Issued) -> None:
    """A look-alike issuer with the right name but another key does not pass."""
    impostor = issue("Test Intermediate", ca=True, not_after=NOW + timedelta(days=3650))
    with pytest.raises(InvalidInputError, match="does not verify"):
        tls.check_upload(leaf.pem + impostor.pem, leaf.key_pem, now=NOW)


def test_mismatched_key_is_refused(leaf: Issued, inter: Issued) -> None:
    """The key of another certificate is refused."""
    with pytest.raises(InvalidInputError, match="does not match"):
        tls.check_upload(leaf.pem + inter.pem, inter.key_pem, now=NOW)


def test_expired_leaf_is_refused(inter: Issued) -> None:
    """A leaf past its notAfter is refused, with the date."""
    old = issue("old.example.org", inter, not_after=NOW - timedelta(days=1))
    with pytest.raises(InvalidInputError, match="expired on 2030-05-31"):
        tls.check_upload(old.pem, old.key_pem, now=NOW)


def test_future_leaf_is_refused(inter: Issued) -> None:
    """A leaf whose notBefore lies ahead is refused."""
    early = issue("new.example.org", inter, not_before=NOW + timedelta(days=2))
    with pytest.raises(InvalidInputError, match="not valid yet"):
        tls.check_upload(early.pem, early.key_pem, now=NOW)


def test_encrypted_key_is_refused(leaf: Issued) -> None:
    """A passphrase-protected key is refused: daemons cannot ask for the passphrase."""
    encrypted = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(InvalidInputError, match="encrypted"):
        tls.check_upload(leaf.pem, encrypted, now=NOW)


@pytest.mark.parametrize(
    ("cert", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"hello", "not in PEM"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no certificate"),
        (b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", "parsed"),
    ],
)
def test_unusable_certificate_input_is_refused(leaf: Issued, cert: bytes, message: str) -> None:
    """Empty, non-PEM, certificate-less and corrupt uploads are each refused clearly."""
    with pytest.raises(InvalidInputError, match=message):
        tls.check_upload(cert, leaf.key_pem, now=NOW)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"", "empty"),
        (b"key", "not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "parsed"),
    ],
)
def test_unusable_key_input_is_refused(leaf: Issued, key: bytes, message: str) -> None:
    """Empty, non-PEM and corrupt keys are refused."""
    with pytest.raises(InvalidInputError, match=message):
        tls.check_upload(leaf.pem, key, now=NOW)


def test_oversized_upload_is_too_large(leaf: Issued) -> None:
    """Input over the size limit is TooLargeError, before any parsing."""
    with pytest.raises(TooLargeError):
        tls.check_upload(leaf.pem + b"\n" * 2048, leaf.key_pem, now=NOW, max_bytes=2048)


def test_read_chain_describes_an_expired_chain(inter: Issued) -> None:
    """A stored chain is read even when expired, so its days_left can be reported."""
    old = issue("old.example.org", inter, not_after=NOW - timedelta(days=3))
    info = tls.read_chain(old.pem)
    assert info.key_pem is None
    assert info.subject_cn == "old.example.org"
    assert tls.days_left(info.not_after, NOW) == -3


@pytest.mark.parametrize(
    ("delta", "days"),
    [
        (timedelta(days=30), 30),
        (timedelta(days=29, hours=23), 29),
        (timedelta(hours=1), 0),
        (timedelta(hours=-1), -1),
    ],
)
def test_days_left_rounds_down(delta: timedelta, days: int) -> None:
    """days_left counts whole days left; an hour past expiry is already -1."""
    assert tls.days_left(NOW + delta, NOW) == days


def test_days_left_accepts_naive_utc() -> None:
    """A naive datetime is taken as UTC rather than failing the comparison."""
    assert tls.days_left(datetime(2030, 6, 11, 12, 0), NOW) == 10


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("mail.example.org", True),
        ("MAIL.example.org.", True),
        ("smtp.example.net", True),
        ("example.net", False),
        ("a.b.example.net", False),
        ("other.example.org", False),
        ("", False),
    ],
)
def test_matches_hostname(leaf: Issued, inter: Issued, hostname: str, expected: bool) -> None:
    """SAN names match exactly or through a wildcard standing for one whole label."""
    info = tls.check_upload(leaf.pem + inter.pem, leaf.key_pem, now=NOW)
    assert tls.matches_hostname(info, hostname) is expected


def test_cn_alone_matches_as_clients_check_it(inter: Issued) -> None:
    """A certificate without SAN DNS names is valid for its CN, as OpenSSL's host check says."""
    bare = issue("mail.example.org", inter)
    info = tls.read_chain(bare.pem)
    assert info.san == ()
    assert info.names == ("mail.example.org",)
    assert tls.matches_hostname(info, "mail.example.org")
    assert tls.matches_hostname(info, "MAIL.example.org.")
    assert not tls.matches_hostname(info, "other.example.org")


def test_single_label_cn_matches(inter: Issued) -> None:
    """A CN-only certificate for localhost is valid for localhost."""
    info = tls.read_chain(issue("localhost", inter).pem)
    assert tls.matches_hostname(info, "localhost")


def test_cn_is_ignored_when_san_names_exist(inter: Issued) -> None:
    """With DNS names in the SAN, only they count: a CN outside them matches nothing."""
    cert = issue("cn-only.example.org", inter, san=("mail.example.org",))
    info = tls.read_chain(cert.pem)
    assert info.names == ("mail.example.org",)
    assert not tls.matches_hostname(info, "cn-only.example.org")
    assert tls.matches_hostname(info, "mail.example.org")


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [("mail.example.org", True), ("example.org", False), ("a.mail.example.org", False)],
)
def test_wildcard_cn_covers_one_label(inter: Issued, hostname: str, expected: bool) -> None:
    """A wildcard in a CN-only certificate stands for one whole label, as in a SAN."""
    info = tls.read_chain(issue("*.example.org", inter).pem)
    assert tls.matches_hostname(info, hostname) is expected


def test_wildcard_of_a_top_level_domain_matches_nothing(inter: Issued) -> None:
    """``*.org`` is no wildcard a client honours: it matches no host under org."""
    info = tls.read_chain(issue("x", inter, san=("*.org",)).pem)
    assert not tls.matches_hostname(info, "example.org")


# --- weak signatures and keys -----------------------------------------------------------


def test_sha1_signed_leaf_names_sha1(tmp_path: Path) -> None:
    """A leaf signed with SHA-1 is refused for that reason, not as one 'not issued by' its CA."""
    chain, key = openssl_signed(tmp_path, "mail.example.org", "sha1")
    with pytest.raises(InvalidInputError) as refused:
        tls.check_upload(chain, key)
    assert refused.value.message == (
        "The server certificate is signed with SHA-1, which clients refuse; ask its issuer "
        "for one signed with SHA-256."
    )


def test_sha256_signed_leaf_from_openssl_is_accepted(tmp_path: Path) -> None:
    """The same chain signed with SHA-256 passes: the refusal above is about the digest."""
    chain, key = openssl_signed(tmp_path, "mail.example.org", "sha256")
    assert tls.check_upload(chain, key).names == ("mail.example.org",)


def _rsa_issue(cn: str, bits: int, issuer: Issued | None = None, *, ca: bool = False) -> Issued:
    """Like ``issue``, with an RSA key of ``bits`` (signed by ``issuer`` with SHA-256)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=80))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer.key if issuer else key, hashes.SHA256())
    )
    return Issued(cert, key)  # type: ignore[arg-type]


def test_small_rsa_leaf_key_is_refused_with_its_size(inter: Issued) -> None:
    """A 1024-bit RSA leaf is refused, saying its size and the smallest accepted."""
    small = _rsa_issue("mail.example.org", 1024, inter)
    with pytest.raises(InvalidInputError) as refused:
        tls.check_upload(small.pem + inter.pem, small.key_pem, now=NOW)
    assert refused.value.message == (
        "The server certificate has a 1024-bit RSA key; clients refuse RSA keys under 2048 bits."
    )


def test_small_rsa_intermediate_key_is_refused_by_position(root: Issued) -> None:
    """A 1024-bit RSA intermediate is named by its place in the chain and its subject."""
    small_ca = _rsa_issue("Weak Intermediate", 1024, root, ca=True)
    leaf = issue("mail.example.org", small_ca, san=("mail.example.org",))
    with pytest.raises(InvalidInputError) as refused:
        tls.check_upload(leaf.pem + small_ca.pem, leaf.key_pem, now=NOW)
    assert refused.value.message.startswith(
        "Certificate 2 of the chain (CN=Weak Intermediate) has a 1024-bit RSA key"
    )


def test_small_curve_is_refused_with_its_name(inter: Issued) -> None:
    """An ECDSA key on a curve under 256 bits is refused, naming the curve."""
    key = ec.generate_private_key(ec.SECP192R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("mail.example.org"))
        .issuer_name(inter.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=80))
        .sign(inter.key, hashes.SHA256())
    )
    small = Issued(cert, key)
    with pytest.raises(InvalidInputError, match=r"192-bit elliptic-curve key \(secp192r1\)"):
        tls.check_upload(small.pem + inter.pem, small.key_pem, now=NOW)
