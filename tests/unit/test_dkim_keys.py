"""DKIM key generation, TXT records and selector rules."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailctl.domain import dkim
from mailctl.errors import InvalidInputError


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return dkim.generate_key("rsa2048")


@pytest.fixture(scope="module")
def ed_pem() -> str:
    return dkim.generate_key("ed25519")


@pytest.mark.parametrize("key_type", ["rsa1024", "rsa2048", "ed25519"])
def test_generated_key_reports_its_type(key_type: str) -> None:
    """A generated key is an unencrypted PKCS#8 PEM of the type asked for."""
    pem = dkim.generate_key(key_type)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert dkim.key_type_of(pem) == key_type


def test_default_key_is_rsa2048() -> None:
    """Without a type, the key is RSA 2048, the size every verifier accepts."""
    assert dkim.key_type_of(dkim.generate_key()) == "rsa2048"


def test_unknown_key_type_is_refused() -> None:
    """An unknown key type is bad input naming the types that exist."""
    with pytest.raises(InvalidInputError, match="rsa2048") as info:
        dkim.generate_key("dsa")
    assert "dsa" in info.value.message


def test_rsa_record_carries_the_public_key(rsa_pem: str) -> None:
    """The RSA TXT value is v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo base64>."""
    value = dkim.public_record(rsa_pem)
    match = re.fullmatch(r"v=DKIM1; k=rsa; p=([A-Za-z0-9+/=]+)", value)
    assert match
    public = serialization.load_der_public_key(base64.b64decode(match.group(1)))
    private = serialization.load_pem_private_key(rsa_pem.encode(), None)
    assert public.public_numbers() == private.public_key().public_numbers()  # type: ignore[union-attr]


def test_ed25519_record_is_the_raw_32_byte_key(ed_pem: str) -> None:
    """RFC 8463: the ed25519 p= value is the bare 32-byte key, not an SPKI structure."""
    value = dkim.public_record(ed_pem)
    assert value.startswith("v=DKIM1; k=ed25519; p=")
    raw = base64.b64decode(value.split("p=", 1)[1])
    assert len(raw) == 32
    private = serialization.load_pem_private_key(ed_pem.encode(), None)
    assert raw == private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_dns_record_names_selector_under_domainkey(ed_pem: str) -> None:
    """The record to publish is a TXT at <selector>._domainkey.<domain>."""
    record = dkim.dns_record("example.org", "Mail2024", ed_pem)
    assert record.name == "mail2024._domainkey.example.org"
    assert record.type == "TXT"
    assert record.value == dkim.public_record(ed_pem)


def test_opendkim_txt_layout_for_rsa(rsa_pem: str) -> None:
    """The zone stub splits p= into 250-character quoted strings and ends with the comment."""
    text = dkim.opendkim_txt("example.org", "sel", rsa_pem)
    p = dkim.public_record(rsa_pem).split("p=", 1)[1]
    assert text == (
        'sel._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "\n'
        f'\t  "p={p[:250]}"\n'
        f'\t  "{p[250:]}" )  ; ----- DKIM key sel for example.org\n'
    )


def test_opendkim_txt_for_ed25519_is_one_chunk(ed_pem: str) -> None:
    """A short ed25519 key fits in one quoted string after the tags."""
    text = dkim.opendkim_txt("example.org", "ed", ed_pem)
    lines = text.splitlines()
    assert lines[0] == 'ed._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=ed25519; "'
    assert lines[1].endswith('" )  ; ----- DKIM key ed for example.org')
    assert len(lines) == 2


@pytest.mark.parametrize("selector", ["default", "s1", "MAIL-2024", "a" * 63])
def test_valid_selectors_are_lowercased(selector: str) -> None:
    """A selector that is one DNS label comes back lowercase."""
    assert dkim.validate_selector(selector) == selector.lower()


@pytest.mark.parametrize(
    "selector", ["", "-a", "a-", "a.b", "a_b", "a b", "../etc", "a" * 64, "sél", None, 5]
)
def test_invalid_selectors_are_refused(selector: object) -> None:
    """Anything that is not one DNS label (dots, slashes, hyphen ends, too long) is refused."""
    with pytest.raises(InvalidInputError):
        dkim.validate_selector(selector)


def test_garbage_private_key_is_refused_without_echoing_it() -> None:
    """A broken key is bad input, and the message does not repeat the key text."""
    secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(InvalidInputError) as info:
        dkim.public_record(secret)
    assert "TOPSECRET" not in info.value.message
    assert "TOPSECRET" not in str(info.value.__cause__ or "")


def test_ec_key_is_not_a_dkim_key() -> None:
    """ECDSA keys have no DKIM algorithm, so they are refused."""
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(InvalidInputError, match="RSA or Ed25519"):
        dkim.key_type_of(pem)
