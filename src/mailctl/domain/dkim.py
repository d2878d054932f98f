"""DKIM keys: generation, the public TXT record, and OpenDKIM's zone-file stub."""

from __future__ import annotations

import base64
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailctl.domain.dnsrecords import DnsRecord
from mailctl.errors import InvalidInputError

KEY_TYPES = ("rsa1024", "rsa2048", "rsa4096", "ed25519")
DEFAULT_KEY_TYPE = "rsa2048"

_RSA_BITS = {"rsa1024": 1024, "rsa2048": 2048, "rsa4096": 4096}
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# opendkim-genkey cuts the p= value into quoted strings of this many characters, because
# one DNS character-string holds at most 255 bytes.
_GENKEY_CHUNK = 250


def generate_key(key_type: str = DEFAULT_KEY_TYPE) -> str:
    """Return a new unencrypted PKCS#8 private key PEM of the given type.

    ``key_type`` is one of ``rsa1024``, ``rsa2048``, ``rsa4096`` or ``ed25519`` (RFC 8463).
    """
    if key_type == "ed25519":
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = ed25519.Ed25519PrivateKey.generate()
    elif key_type in _RSA_BITS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    else:
        raise InvalidInputError(
            f"Unknown DKIM key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}."
        )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii")


def _load(private_pem: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    # The key text itself never goes into a message: it is a secret.
    try:
        key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise InvalidInputError(
            "The DKIM private key is not an unencrypted PEM private key."
        ) from exc
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise InvalidInputError("The DKIM private key must be an RSA or Ed25519 key.")


def key_type_of(private_pem: str) -> str:
    """Return the key type name (``rsa2048``, ``ed25519``, ...) of a private key PEM."""
    key = _load(private_pem)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return f"rsa{key.key_size}"


def _public_parts(private_pem: str) -> tuple[str, str]:
    """Return (k= tag, p= value) for the key."""
    key = _load(private_pem)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        # RFC 8463: p= is the bare 32-byte public key, not a SubjectPublicKeyInfo.
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return "ed25519", base64.b64encode(raw).decode("ascii")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "rsa", base64.b64encode(der).decode("ascii")


def public_record(private_pem: str) -> str:
    """Return the DKIM TXT record value for the key: ``v=DKIM1; k=...; p=...``."""
    k, p = _public_parts(private_pem)
    return f"v=DKIM1; k={k}; p={p}"


def validate_selector(selector: object) -> str:
    """Return the selector lowercased if it is one valid DNS label, else raise."""
    if not isinstance(selector, str):
        raise InvalidInputError("The DKIM selector must be text.")
    text = selector.strip().lower()
    if not text:
        raise InvalidInputError("The DKIM selector is empty.")
    if not _SELECTOR.fullmatch(text):
        raise InvalidInputError(
            "The DKIM selector must be one DNS label: 1 to 63 letters, digits or hyphens, "
            "not starting or ending with a hyphen."
        )
    return text


def record_name(domain: str, selector: str) -> str:
    """Return the DNS name the DKIM key is published under."""
    return f"{validate_selector(selector)}._domainkey.{domain}"


def dns_record(domain: str, selector: str, private_pem: str) -> DnsRecord:
    """Return the TXT record to publish for the key; ``domain`` must be normalised already."""
    return DnsRecord(
        name=record_name(domain, selector), type="TXT", value=public_record(private_pem)
    )


def opendkim_txt(domain: str, selector: str, private_pem: str) -> str:
    """Return the zone-file stub exactly as ``opendkim-genkey`` writes ``<selector>.txt``.

    Scripts written for the old service read that file, so the layout is kept to the byte:
    the tags in one quoted string, ``p=`` cut into quoted strings of 250 characters, and the
    ``; ----- DKIM key <selector> for <domain>`` comment. Debian's genkey adds ``h=sha256``.
    """
    selector = validate_selector(selector)
    k, p = _public_parts(private_pem)
    chunks = [p[i : i + _GENKEY_CHUNK] for i in range(0, len(p), _GENKEY_CHUNK)]
    if len(p) % _GENKEY_CHUNK == 0:
        # genkey's loop closes a full chunk with a separator and then prints nothing more.
        chunks.append("")
    body = '"\n\t  "'.join(chunks)
    return (
        f'{selector}._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k={k}; "\n'
        f'\t  "p={body}" )  ; ----- DKIM key {selector} for {domain}\n'
    )
