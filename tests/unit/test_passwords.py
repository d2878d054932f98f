"""Passwords hash to Dovecot {SCHEME} strings, verify, migrate and ask for re-hashing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import bcrypt
import pytest
from argon2.low_level import Type, hash_secret

from mailctl.domain import unixcrypt
from mailctl.domain.passwords import (
    DEFAULT_SCHEME,
    SCHEMES,
    check_new_password,
    hash_password,
    needs_rehash,
    scheme_of,
    validate_prehashed,
    verify_password,
)
from mailctl.errors import InvalidInputError

PASSWORD = "correct horse battery staple"

# Published test vectors of "Unix crypt using SHA-256 and SHA-512" (setting, key, result):
# they cover an explicit rounds count, a salt cut at 16 characters and rounds raised to 1000.
SHA_VECTORS = [
    (
        "$5$saltstring",
        "Hello world!",
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
    ),
    (
        "$5$rounds=10000$saltstringsaltstring",
        "Hello world!",
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
    ),
    (
        "$5$rounds=5000$toolongsaltstring",
        "This is just a test",
        "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5",
    ),
    (
        "$5$rounds=10$roundstoolow",
        "the minimum number is still observed",
        "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
    ),
    (
        "$6$saltstring",
        "Hello world!",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiB"
        "FdcbYEdFCoEOfaS35inz1",
    ),
    (
        "$6$rounds=10000$saltstringsaltstring",
        "Hello world!",
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/Urj"
        "mM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    ),
    (
        "$6$rounds=5000$toolongsaltstring",
        "This is just a test",
        "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oG"
        "DZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
    ),
    (
        "$6$rounds=10$roundstoolow",
        "the minimum number is still observed",
        "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt5"
        "8jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
    ),
]
# The classic MD5-crypt example: the salt is cut at eight characters.
MD5_VECTOR = ("$1$saltstring", "Hello world!", "$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1")


def _numbered(value: object) -> str:
    """A case's id with its salted parts blanked: fresh salts would give each parallel
    worker other test names (pytest numbers ids that come out the same)."""
    return re.sub(r"[A-Za-z0-9./+]{16,}", "<salted>", str(value))


def crypt(plain: str, setting: str) -> str:
    """What crypt(3) returns for ``setting``, computed by the library mailctl verifies with.

    The specification raises rounds below 1000 to 1000; libxcrypt refuses such settings
    instead, so they are raised here.
    """
    match = re.match(r"^(\$[56]\$rounds=)([0-9]+)(\$.*)$", setting)
    if match is not None and int(match.group(2)) < 1000:
        setting = match.group(1) + "1000" + match.group(3)
    result = unixcrypt.crypt(plain.encode(), setting)
    assert result is not None, setting
    return result


def argon2(variant: Type, *, m: int = 64 * 1024, t: int = 3, p: int = 1) -> str:
    """An Argon2 PHC string of PASSWORD with the given parameters."""
    raw = hash_secret(
        PASSWORD.encode(),
        os.urandom(16),
        time_cost=t,
        memory_cost=m,
        parallelism=p,
        hash_len=32,
        type=variant,
    )
    return raw.decode()


def blowfish(cost: int, plain: str = PASSWORD, ident: bytes = b"2b") -> str:
    """A bcrypt string of ``plain`` at ``cost``."""
    return bcrypt.hashpw(plain.encode(), bcrypt.gensalt(cost, prefix=ident)).decode()


def openssl_passwd(flag: str, plain: str, salt: str) -> str:
    """The crypt string `openssl passwd` makes; fails the test when openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed; it provides reference crypt strings")
    result = subprocess.run(
        ["openssl", "passwd", flag, "-salt", salt, "-stdin"],
        input=plain,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_round_trips(scheme: str) -> None:
    """A new hash names its scheme, verifies its password, refuses another, needs no rehash."""
    stored = hash_password(PASSWORD, scheme)
    assert stored.startswith("{" + scheme + "}")
    assert scheme_of(stored) == scheme
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert not verify_password("Correct horse battery staple", stored)
    assert not needs_rehash(stored, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hashes_are_salted(scheme: str) -> None:
    """Hashing the same password twice gives two different strings that both verify."""
    first, second = hash_password(PASSWORD, scheme), hash_password(PASSWORD, scheme)
    assert first != second
    assert verify_password(PASSWORD, first)
    assert verify_password(PASSWORD, second)


@pytest.mark.production_hashing
def test_default_scheme_is_argon2id_with_parameters_dovecot_verifies() -> None:
    """The default hash is Argon2id, 64 MiB, three passes, one lane, 16-byte salt."""
    stored = hash_password(PASSWORD)
    assert DEFAULT_SCHEME == "ARGON2ID"
    assert re.fullmatch(
        r"\{ARGON2ID\}\$argon2id\$v=19\$m=65536,t=3,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}",
        stored,
    )
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert not needs_rehash(stored)


@pytest.mark.production_hashing
def test_sha512_crypt_uses_many_rounds_and_a_full_salt() -> None:
    """SHA512-CRYPT hashes carry 100000 rounds and a 16-character salt."""
    stored = hash_password(PASSWORD, "SHA512-CRYPT")
    assert re.fullmatch(r"\{SHA512-CRYPT\}\$6\$rounds=100000\$[./0-9A-Za-z]{16}\$.{86}", stored)


@pytest.mark.production_hashing
def test_blf_crypt_uses_cost_twelve() -> None:
    """BLF-CRYPT hashes are $2b$ bcrypt at cost 12."""
    assert hash_password(PASSWORD, "BLF-CRYPT").startswith("{BLF-CRYPT}$2b$12$")


def test_scheme_names_are_case_insensitive() -> None:
    """A scheme asked for in lower case gives the canonical upper-case prefix."""
    assert hash_password(PASSWORD, "sha512-crypt").startswith("{SHA512-CRYPT}$6$")


def test_unicode_passwords_round_trip() -> None:
    """Non-ASCII passwords hash as UTF-8 and verify; a differently accented one does not."""
    stored = hash_password("Pässwörd ünïcode ✓", "SHA512-CRYPT")
    assert verify_password("Pässwörd ünïcode ✓", stored)
    assert not verify_password("Passwörd ünïcode ✓", stored)


@pytest.mark.parametrize(
    ("plain", "message"),
    [
        ("", "empty"),
        ("abc\x00def", "NUL"),
        ("x" * 1025, "at most 1024"),
        ("bad \ud800 surrogate", "not valid Unicode"),
    ],
)
def test_bad_new_passwords_are_refused(plain: str, message: str) -> None:
    """Empty, NUL-containing, over-long and unencodable passwords are refused with a reason."""
    with pytest.raises(InvalidInputError, match=message):
        hash_password(plain)


@pytest.mark.parametrize(
    ("plain", "message", "hashed_too"),
    [
        (None, "The password is empty.", False),
        ("", "The password is empty.", True),
        ("abc\x00defghijkl", "contains a NUL character", True),
        ("x" * 1025, "too long: 1025 characters; at most 1024", True),
        ("short", "too short: 5 characters; at least 12", False),
        ("bad \ud800 surrogate!", "not valid Unicode", True),
    ],
)
def test_the_policy_for_new_passwords_is_one(plain: object, message: str, hashed_too: bool) -> None:
    """The services' check and hash_password refuse with the same words (one policy).

    hash_password knows no minimum length (that is a setting) and takes only text.
    """
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        check_new_password(plain, min_length=12)
    if hashed_too:
        assert isinstance(plain, str)
        with pytest.raises(InvalidInputError, match=re.escape(message)):
            hash_password(plain)


def test_a_password_of_the_maximum_length_is_accepted() -> None:
    """A password of exactly 1024 characters hashes and verifies."""
    plain = "y" * 1024
    assert verify_password(plain, hash_password(plain, "ARGON2ID"))


def test_sha512_crypt_refuses_passwords_crypt_cannot_take() -> None:
    """SHA512-CRYPT takes 511 bytes (crypt(3)'s limit, so Dovecot's) and refuses 512."""
    assert verify_password("s" * 511, hash_password("s" * 511, "SHA512-CRYPT"))
    with pytest.raises(InvalidInputError, match=r"at most 511 bytes.*512 bytes long"):
        hash_password("s" * 512, "SHA512-CRYPT")
    # 256 two-byte characters are 512 bytes.
    with pytest.raises(InvalidInputError, match="512 bytes long"):
        hash_password("é" * 256, "SHA512-CRYPT")


@pytest.mark.parametrize("scheme", ["MD5-CRYPT", "PLAIN", "SHA256-CRYPT", "ARGON2I", "crypt", ""])
def test_schemes_we_do_not_create_are_refused(scheme: str) -> None:
    """Asking for a scheme outside SCHEMES is an input error that lists the valid ones."""
    with pytest.raises(InvalidInputError, match="ARGON2ID, SHA512-CRYPT, BLF-CRYPT"):
        hash_password(PASSWORD, scheme)


def test_blf_crypt_refuses_passwords_over_72_bytes() -> None:
    """BLF-CRYPT takes 72 bytes but refuses 73 instead of cutting them silently."""
    assert verify_password("a" * 72, hash_password("a" * 72, "BLF-CRYPT"))
    with pytest.raises(InvalidInputError, match="72 bytes"):
        hash_password("a" * 73, "BLF-CRYPT")
    # 36 two-byte characters are 72 bytes; one more is over.
    with pytest.raises(InvalidInputError, match="74 bytes long"):
        hash_password("é" * 37, "BLF-CRYPT")


def test_long_passwords_still_work_with_the_other_schemes() -> None:
    """A 200-character password is fine for SHA512-CRYPT and ARGON2ID."""
    plain = "z" * 200
    for scheme in ("SHA512-CRYPT", "ARGON2ID"):
        stored = hash_password(plain, scheme)
        assert verify_password(plain, stored)
        assert not verify_password(plain[:72], stored)


@pytest.mark.parametrize(("setting", "plain", "expected"), SHA_VECTORS)
def test_sha_crypt_matches_the_published_vectors(setting: str, plain: str, expected: str) -> None:
    """The library reproduces the specification's SHA-crypt vectors, and they verify."""
    assert crypt(plain, setting) == expected
    scheme = "SHA256-CRYPT" if expected.startswith("$5$") else "SHA512-CRYPT"
    assert verify_password(plain, "{" + scheme + "}" + expected)
    assert not verify_password(plain + " ", "{" + scheme + "}" + expected)


def test_md5_crypt_matches_the_published_vector() -> None:
    """The library reproduces the classic MD5-crypt example, and it verifies."""
    setting, plain, expected = MD5_VECTOR
    assert crypt(plain, setting) == expected
    assert verify_password(plain, "{MD5-CRYPT}" + expected)
    assert not verify_password("hello world!", "{MD5-CRYPT}" + expected)


@pytest.mark.parametrize(
    ("flag", "ident", "scheme", "salt"),
    [
        ("-6", "6", "SHA512-CRYPT", "Zx9./abcdEFGH012"),
        ("-5", "5", "SHA256-CRYPT", "shortsalt"),
        ("-1", "1", "MD5-CRYPT", "oldrow12"),
    ],
)
@pytest.mark.parametrize("plain", ["secret", "Pässwörd mit Leerzeichen", "p" * 150])
def test_openssl_crypt_strings_match_and_verify(
    flag: str, ident: str, scheme: str, salt: str, plain: str
) -> None:
    """Strings from `openssl passwd` equal ours for the same salt and verify as stored rows."""
    reference = openssl_passwd(flag, plain, salt)
    assert reference.startswith(f"${ident}${salt}$")
    assert crypt(plain, f"${ident}${salt}") == reference
    assert verify_password(plain, "{" + scheme + "}" + reference)
    assert not verify_password(plain.upper(), "{" + scheme + "}" + reference)


def test_old_md5_crypt_rows_verify_in_every_spelling() -> None:
    """An MD5-crypt row verifies with {MD5-CRYPT}, {MD5}, {CRYPT} or no prefix at all."""
    row = crypt(PASSWORD, "$1$oldrow.8")
    for stored in ("{MD5-CRYPT}" + row, "{MD5}" + row, "{CRYPT}" + row, "{md5-crypt}" + row, row):
        assert verify_password(PASSWORD, stored), stored
        assert not verify_password("wrong", stored), stored
        assert scheme_of(stored) == "MD5-CRYPT"
        assert needs_rehash(stored)


def test_bare_crypt_strings_verify() -> None:
    """Unprefixed $6$, $5$ and $2y$ strings verify like Dovecot's CRYPT scheme."""
    sha512 = crypt(PASSWORD, "$6$abcdefgh")
    sha256 = crypt(PASSWORD, "$5$abcdefgh")
    blf = blowfish(4, ident=b"2b").replace("$2b$", "$2y$", 1)
    for stored, scheme in ((sha512, "SHA512-CRYPT"), (sha256, "SHA256-CRYPT"), (blf, "BLF-CRYPT")):
        assert verify_password(PASSWORD, stored)
        assert not verify_password("wrong", stored)
        assert scheme_of(stored) == scheme


def test_argon2i_rows_verify() -> None:
    """ARGON2I rows verify, and a body of the other Argon2 variant does not."""
    body = argon2(Type.I, m=1024, t=3)
    assert verify_password(PASSWORD, "{ARGON2I}" + body)
    assert not verify_password("wrong", "{ARGON2I}" + body)
    assert not verify_password(PASSWORD, "{ARGON2ID}" + body)


def test_migrated_bcrypt_rows_compare_the_first_72_bytes_like_dovecot() -> None:
    """A long password whose first 72 bytes made a migrated bcrypt row verifies, as in Dovecot."""
    long_password = "q" * 72 + "tail"
    stored = "{BLF-CRYPT}" + blowfish(4, long_password[:72])
    assert verify_password(long_password, stored)
    assert not verify_password("q" * 71, stored)


def _garbled() -> list[str]:
    """Stored values that are not verifiable hashes of PASSWORD, built from real ones."""
    sha = "{SHA512-CRYPT}" + crypt(PASSWORD, "$6$abcdefgh")
    arg = "{ARGON2ID}" + argon2(Type.ID, m=1024)
    blf = "{BLF-CRYPT}" + blowfish(4)
    return [
        "",
        PASSWORD,
        "{PLAIN}" + PASSWORD,
        "{CLEARTEXT}" + PASSWORD,
        "{SHA512-CRYPT}",
        "{SHA512-CRYPT}$6$abcdefgh",
        sha[:-1],
        sha + "x",
        sha[:-1] + "!",
        sha.replace("$6$", "$6$rounds=05000$"),
        sha.replace("$6$", "$6$rounds=999$"),
        sha.replace("{SHA512-CRYPT}", "{SHA256-CRYPT}"),
        sha.replace("{SHA512-CRYPT}", "{MD5-CRYPT}"),
        sha.replace("{SHA512-CRYPT}", "{SHA512-CRYPT.HEX}"),
        sha.replace("$6$", "$7$"),
        "{CRYPT}$9$junk",
        "$6$",
        "{ARGON2ID}$argon2id$v=19$m=abc,t=3,p=1$c2FsdHNhbHQ$aGFzaA",
        arg[:-2],
        arg.replace("v=19", "v=16"),
        arg.replace("$argon2id$", "$argon2d$"),
        arg.replace("{ARGON2ID}", "{ARGON2D}"),
        arg[: arg.rindex("$")] + "$***",
        arg.replace("m=1024", "m=99999999999999999999"),
        blf[:-1],
        blf.replace("$2b$", "$2x$"),
        blf.replace("$04$", "$4$"),
        blf.replace("{BLF-CRYPT}", "{SHA512-CRYPT}"),
        "{BLF-CRYPT}$2b$04$" + "!" * 53,
        "{SHA512-CRYPT}$6$abc\x00def$" + "a" * 86,
        "{ARGON2ID}" + "\ud800",
        "x" * 100_000,
    ]


@pytest.mark.parametrize("stored", _garbled(), ids=_numbered)
def test_garbled_hashes_verify_as_false_without_raising(stored: str) -> None:
    """A malformed, truncated, mislabelled or plaintext row never verifies and never raises."""
    assert verify_password(PASSWORD, stored) is False


def test_rows_with_absurd_costs_are_refused_without_computing() -> None:
    """Rows whose cost would take minutes or gigabytes verify as False at once."""
    sha = crypt(PASSWORD, "$6$abcdefgh")
    assert not verify_password(
        PASSWORD, "{SHA512-CRYPT}" + sha.replace("$6$", "$6$rounds=999999999$")
    )
    assert not verify_password(PASSWORD, "{BLF-CRYPT}" + blowfish(4).replace("$04$", "$31$"))
    arg = argon2(Type.ID, m=1024)
    assert not verify_password(PASSWORD, "{ARGON2ID}" + arg.replace("m=1024", "m=4194304000"))
    assert not verify_password(PASSWORD, "{ARGON2ID}" + arg.replace("t=3", "t=100000"))


@pytest.mark.parametrize("plain", ["", "\ud800", "x" * 5000, "a\x00b"])
def test_odd_passwords_verify_as_false_without_raising(plain: str) -> None:
    """Empty, unencodable, NUL-containing or huge candidates are just wrong, not errors."""
    # Dovecot (C strings) would compare "a" for "a\x00b"; mailctl refuses the candidate.
    stored = "{SHA512-CRYPT}" + crypt("a", "$6$abcdefgh")
    assert verify_password(plain, stored) is False


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("{SHA512-CRYPT}$6$abc$def", "SHA512-CRYPT"),
        ("{argon2id}$argon2id$v=19$...", "ARGON2ID"),
        ("{CRYPT}$2y$05$xyz", "BLF-CRYPT"),
        ("{CRYPT}garbage", "CRYPT"),
        ("{MD5}$1$abc$def", "MD5-CRYPT"),
        ("{MD5}plainmd5", "MD5"),
        ("{PLAIN}secret", "PLAIN"),
        ("$5$abc$def", "SHA256-CRYPT"),
        ("secret", None),
        ("", None),
        ("{}$6$abc$def", None),
    ],
)
def test_scheme_of_names_the_verifying_scheme(stored: str, expected: str | None) -> None:
    """scheme_of reads the prefix, resolving {CRYPT}, {MD5} and bare crypt strings."""
    assert scheme_of(stored) == expected


@pytest.mark.production_hashing
def test_needs_rehash_flags_weaker_or_foreign_rows() -> None:
    """Rows in another scheme, unprefixed, malformed or with weaker parameters need rehashing."""
    ours_sha = crypt(PASSWORD, "$6$rounds=100000$" + "s" * 16)
    assert not needs_rehash("{SHA512-CRYPT}" + ours_sha, "SHA512-CRYPT")
    assert needs_rehash("{SHA512-CRYPT}" + ours_sha)  # the default is ARGON2ID
    assert needs_rehash(ours_sha, "SHA512-CRYPT")  # does not name its scheme
    assert needs_rehash("{CRYPT}" + ours_sha, "SHA512-CRYPT")
    default_rounds = crypt(PASSWORD, "$6$" + "s" * 16)
    assert needs_rehash("{SHA512-CRYPT}" + default_rounds, "SHA512-CRYPT")
    short_salt = crypt(PASSWORD, "$6$rounds=100000$short")
    assert needs_rehash("{SHA512-CRYPT}" + short_salt, "SHA512-CRYPT")

    assert not needs_rehash("{ARGON2ID}" + argon2(Type.ID))
    assert needs_rehash("{ARGON2ID}" + argon2(Type.ID, m=32 * 1024))
    assert needs_rehash("{ARGON2ID}" + argon2(Type.ID, t=2))
    assert needs_rehash("{ARGON2ID}" + argon2(Type.ID, p=4))
    assert needs_rehash("{ARGON2I}" + argon2(Type.I, m=1024))
    assert needs_rehash("{ARGON2ID}$argon2id$garbage")

    assert not needs_rehash("{BLF-CRYPT}" + blowfish(12), "BLF-CRYPT")
    assert needs_rehash("{BLF-CRYPT}" + blowfish(10), "BLF-CRYPT")
    assert needs_rehash("{BLF-CRYPT}" + blowfish(12, ident=b"2a"), "BLF-CRYPT")
    assert needs_rehash("{PLAIN}" + PASSWORD)
    assert needs_rehash("")


def test_needs_rehash_refuses_a_scheme_we_cannot_create() -> None:
    """Asking whether a row should become MD5-CRYPT is an input error."""
    with pytest.raises(InvalidInputError, match="Unknown password scheme"):
        needs_rehash("{MD5-CRYPT}$1$abc$def", "MD5-CRYPT")


def _prehashed_ok() -> list[tuple[str, str]]:
    """Pre-hashed inputs a migration may bring, with the normalised value expected back."""
    sha512 = crypt(PASSWORD, "$6$abcdefgh")
    sha256 = crypt(PASSWORD, "$5$rounds=656000$abcdefgh")
    md5 = crypt(PASSWORD, "$1$abcdefgh")
    arg_id, arg_i = argon2(Type.ID, m=1024), argon2(Type.I, m=1024, p=4)
    blf_y = blowfish(4).replace("$2b$", "$2y$", 1)
    return [
        ("{SHA512-CRYPT}" + sha512, "{SHA512-CRYPT}" + sha512),
        ("{sha512-crypt}" + sha512, "{SHA512-CRYPT}" + sha512),
        (sha512, "{SHA512-CRYPT}" + sha512),
        ("{CRYPT}" + sha256, "{SHA256-CRYPT}" + sha256),
        ("  {MD5-CRYPT}" + md5 + "\n", "{MD5-CRYPT}" + md5),
        ("{MD5}" + md5, "{MD5-CRYPT}" + md5),
        ("{ARGON2ID}" + arg_id, "{ARGON2ID}" + arg_id),
        ("{Argon2I}" + arg_i, "{ARGON2I}" + arg_i),
        ("{BLF-CRYPT}" + blf_y, "{BLF-CRYPT}" + blf_y),
        (blf_y, "{BLF-CRYPT}" + blf_y),
    ]


@pytest.mark.parametrize(("given", "expected"), _prehashed_ok(), ids=_numbered)
def test_validate_prehashed_accepts_and_normalises(given: str, expected: str) -> None:
    """Known schemes come back with an upper-case explicit prefix and still verify."""
    assert validate_prehashed(given) == expected
    assert verify_password(PASSWORD, expected)


def _prehashed_bad() -> list[tuple[str, str]]:
    """Pre-hashed inputs to refuse, with a word the error message must contain."""
    sha = crypt(PASSWORD, "$6$abcdefgh")
    arg = argon2(Type.ID, m=1024)
    return [
        ("", "printable"),
        ("{PLAIN}secret", "must start with"),
        ("{SHA512}" + "a" * 88, "must start with"),
        ("{PBKDF2}$1$abc$1000$def", "must start with"),
        ("just a password", "printable"),
        ("justapassword", "must start with"),
        ("{SHA512-CRYPT}" + sha[:-3], "not a well-formed SHA512-CRYPT"),
        ("{SHA512-CRYPT}" + sha.replace("$6$", "$5$"), "not a well-formed SHA512-CRYPT"),
        ("{SHA512-CRYPT}" + sha.replace("$6$", "$6$rounds=5000000$"), "rounds"),
        ("{SHA512-CRYPT}" + sha[:10] + "\n" + sha[10:], "printable"),
        ("{ARGON2ID}" + arg.replace("v=19", "v=16"), "well-formed ARGON2ID"),
        ("{ARGON2I}" + arg, "well-formed ARGON2I"),
        ("{ARGON2ID}" + arg.replace("m=1024", "m=4194304"), "out of range"),
        ("{ARGON2ID}" + arg.replace("p=1", "p=64"), "out of range"),
        ("{BLF-CRYPT}" + blowfish(4).replace("$04$", "$31$"), "cost 31"),
        ("{BLF-CRYPT}" + blowfish(4).replace("$2b$", "$2x$"), "well-formed"),
        ("{CRYPT}garbage", "must start with"),
        ("{SHA512-CRYPT}" + sha + "x" * 600, "at most 512"),
    ]


@pytest.mark.parametrize(("given", "message"), _prehashed_bad(), ids=_numbered)
def test_validate_prehashed_refuses(given: str, message: str) -> None:
    """Unknown schemes, plaintext, malformed hashes and absurd costs are refused with a reason."""
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        validate_prehashed(given)


@pytest.mark.production_hashing
def test_the_hash_cost_can_be_lowered_for_a_test_suite() -> None:
    """Lowered module constants (and a rebuilt hasher) give cheap hashes that still verify."""
    from mailctl.domain import passwords

    production = hash_password(PASSWORD)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in [
            ("ARGON2_TIME_COST", 1),
            ("ARGON2_MEMORY_KIB", 8),
            ("BCRYPT_COST", 4),
            ("SHA512_CRYPT_ROUNDS", 1000),
        ]:
            patch.setattr(passwords, name, value)
        patch.setattr(passwords, "_hasher", passwords.argon2_hasher())

        cheap = {scheme: hash_password(PASSWORD, scheme) for scheme in SCHEMES}
        assert "$m=8,t=1,p=1$" in cheap["ARGON2ID"]
        assert cheap["BLF-CRYPT"].startswith("{BLF-CRYPT}$2b$04$")
        assert cheap["SHA512-CRYPT"].startswith("{SHA512-CRYPT}$6$rounds=1000$")
        for scheme, stored in cheap.items():
            assert verify_password(PASSWORD, stored)
            assert not needs_rehash(stored, scheme)
        assert not needs_rehash(production)  # stronger than asked for is fine

    assert all(needs_rehash(stored, scheme) for scheme, stored in cheap.items())
