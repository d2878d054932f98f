"""TOTP codes (RFC 6238): the RFC's test vectors, the skew window, secrets and the URI."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from mailctl.domain import qr, totp

# RFC 6238, appendix B: the SHA-1 rows (the ASCII secret "12345678901234567890", 8 digits).
RFC_SECRET = b"12345678901234567890"
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
]
# RFC 4226, appendix D: HOTP values of counters 0 to 9 for the same secret (6 digits).
HOTP_VECTORS = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


@pytest.mark.parametrize(("at", "expected"), RFC_VECTORS)
def test_rfc_6238_vectors(at: int, expected: str) -> None:
    """The 8-digit codes of RFC 6238's SHA-1 test vectors."""
    assert totp.totp(RFC_SECRET, at, digits=8) == expected


def test_six_digits_are_the_last_six_of_eight() -> None:
    """The codes in use have 6 digits: the same value taken modulo 10**6."""
    for at, expected in RFC_VECTORS:
        assert totp.totp(RFC_SECRET, at) == expected[-6:]


def test_rfc_4226_hotp_vectors() -> None:
    """HOTP, which TOTP is built on, gives RFC 4226's values for counters 0 to 9."""
    assert [totp.hotp(RFC_SECRET, counter) for counter in range(10)] == HOTP_VECTORS


def test_steps_are_30_seconds() -> None:
    """A step is 30 seconds from the epoch: 59 is in step 1, 60 starts step 2."""
    assert totp.time_step(0) == 0
    assert totp.time_step(29.999) == 0
    assert totp.time_step(59) == 1
    assert totp.time_step(60) == 2


def test_skew_accepts_one_step_either_side() -> None:
    """A code of the step before or after the current one matches; two steps off does not."""
    at = 1111111111.0
    now = totp.time_step(at)
    for offset in (-1, 0, 1):
        code = totp.hotp(RFC_SECRET, now + offset)
        assert totp.matching_step(RFC_SECRET, code, at) == now + offset
    for offset in (-2, 2, 10):
        code = totp.hotp(RFC_SECRET, now + offset)
        assert totp.matching_step(RFC_SECRET, code, at) is None


def test_no_skew_accepts_only_the_current_step() -> None:
    """With no skew, only the current step's code matches."""
    at = 1234567890.0
    now = totp.time_step(at)
    assert totp.matching_step(RFC_SECRET, totp.hotp(RFC_SECRET, now), at, skew=0) == now
    assert totp.matching_step(RFC_SECRET, totp.hotp(RFC_SECRET, now + 1), at, skew=0) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "٤٤٤٤٤٤", "12 456"])
def test_malformed_codes_match_nothing(code: str) -> None:
    """Text that is not six ASCII digits is no code, and matches no step."""
    assert not totp.is_code(code)
    assert totp.matching_step(RFC_SECRET, code, 59) is None


def test_secret_round_trips_through_base32() -> None:
    """A new secret is 160 bits and reads back from its base32 text, case and spaces aside."""
    secret = totp.new_secret()
    assert len(secret) == 20
    text = totp.encode_secret(secret)
    assert "=" not in text
    assert totp.decode_secret(text) == secret
    spaced = " ".join(text[i : i + 4] for i in range(0, len(text), 4)).lower()
    assert totp.decode_secret(spaced) == secret
    with pytest.raises(ValueError):
        totp.decode_secret("not base32!")


def test_provisioning_uri_names_everything_an_app_needs() -> None:
    """The otpauth URI carries the label, secret, issuer and the parameters in use."""
    uri = totp.provisioning_uri(RFC_SECRET, "admin@mail.example.com", "mailctl")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/mailctl:admin@mail.example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [totp.encode_secret(RFC_SECRET)]
    assert query["issuer"] == ["mailctl"]
    assert query["algorithm"] == ["SHA1"]
    assert query["digits"] == ["6"]
    assert query["period"] == ["30"]


def test_provisioning_uri_escapes_the_label() -> None:
    """Spaces and other characters of a name are escaped, so the URI stays one token."""
    uri = totp.provisioning_uri(RFC_SECRET, "ops team/1", "mailctl")
    assert " " not in uri
    assert unquote(urlsplit(uri).path) == "/mailctl:ops team/1"


def test_qr_code_forms() -> None:
    """The QR code comes as an SVG document, a base64 PNG and half-block terminal text."""
    import base64

    uri = totp.provisioning_uri(RFC_SECRET, "admin", "mailctl")
    assert qr.svg(uri).startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert base64.b64decode(qr.png_base64(uri)).startswith(b"\x89PNG\r\n\x1a\n")
    drawn = qr.terminal(uri)
    assert set(drawn) <= set("█▀▄ \n")
    assert len(drawn.splitlines()) > 10
