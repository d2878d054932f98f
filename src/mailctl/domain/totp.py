"""Time-based one-time codes (TOTP, RFC 6238): HMAC-SHA1 over 30-second steps.

Written here rather than taken from a package: the algorithm is a few lines of the
standard library's ``hmac``, and what matters around it (which steps count, refusing a
step used before) is ours to decide anyway. Authenticator apps (FreeOTP, Aegis, Google
Authenticator, ...) read the ``otpauth://`` URI these codes are set up with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
# Codes of the step before and after the current one are accepted too: a phone's clock a
# little off, or a code typed as its step ended.
SKEW_STEPS = 1
# 160 bits: the length of an HMAC-SHA1 output, which RFC 4226 recommends for the secret.
SECRET_BYTES = 20


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def encode_secret(secret: bytes) -> str:
    """The secret as authenticator apps take it typed in: base32, without padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def decode_secret(text: str) -> bytes:
    """A base32 secret as ``encode_secret`` writes it (spaces and case do not matter)."""
    cleaned = "".join(text.split()).upper()
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a base32 TOTP secret") from exc


def time_step(at: float) -> int:
    """The number of the 30-second step that ``at`` (seconds since the epoch) falls in."""
    return int(at // STEP_SECONDS)


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """The HOTP value (RFC 4226) of a counter: HMAC-SHA1, dynamic truncation, decimal."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: bytes, at: float, digits: int = DIGITS) -> str:
    """The code an authenticator shows at time ``at``."""
    return hotp(secret, time_step(at), digits)


def is_code(text: str) -> bool:
    """Whether ``text`` has the shape of a code: exactly six ASCII digits."""
    return len(text) == DIGITS and text.isascii() and text.isdigit()


def matching_step(secret: bytes, code: str, at: float, skew: int = SKEW_STEPS) -> int | None:
    """The latest step within ``skew`` steps of ``at`` whose code is ``code``; None if none.

    Every candidate step is compared, in constant time, whichever matches: how long the
    check takes says nothing about which step, if any, matched. Whether that step was
    used already is the caller's to check (a step must be later than the last one used).
    """
    now = time_step(at)
    found: int | None = None
    given = code.encode("ascii", "replace")
    for step in range(now - skew, now + skew + 1):
        if hmac.compare_digest(hotp(secret, step).encode("ascii"), given):
            found = step
    return found


def provisioning_uri(secret: bytes, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from the QR code."""
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {
            "secret": encode_secret(secret),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
