"""SHA-crypt ($5$, $6$) and MD5-crypt ($1$) written from their published specifications."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

# crypt(3) uses its own base-64 alphabet, least significant six bits first.
_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

SHA_ROUNDS_DEFAULT = 5000
SHA_ROUNDS_MIN = 1000
SHA_ROUNDS_MAX = 999_999_999
SHA_SALT_MAX = 16
MD5_SALT_MAX = 8
MD5_ROUNDS = 1000

_HashFactory = Callable[[bytes], "hashlib._Hash"]

_SHA_ID_TO_HASH: dict[str, _HashFactory] = {"5": hashlib.sha256, "6": hashlib.sha512}
# Length of the encoded checksum: 32 and 64 digest bytes in groups of three, six bits a character.
_SHA_CHECKSUM_LENGTH = {"5": 43, "6": 86}
_SALT_CHARS = re.compile(r"^[^$:\n\x00]*$")
_CHECKSUM_CHARS = re.compile(r"^[./0-9A-Za-z]*$")


@dataclass(frozen=True)
class CryptString:
    """A crypt(3) string taken apart: ``$<ident>$[rounds=<n>$]<salt>$<checksum>``."""

    ident: str
    rounds: int | None
    salt: str
    checksum: str


def _encode(groups: list[tuple[int, int, int, int]], digest: bytes) -> str:
    """Encode digest bytes by (b2, b1, b0, chars) groups, as crypt(3) orders them."""
    out = []
    for b2, b1, b0, n in groups:
        value = (
            (digest[b2] << 16 if b2 >= 0 else 0)
            | (digest[b1] << 8 if b1 >= 0 else 0)
            | (digest[b0] if b0 >= 0 else 0)
        )
        for _ in range(n):
            out.append(_ALPHABET[value & 0x3F])
            value >>= 6
    return "".join(out)


def _sha_groups(digest_size: int) -> list[tuple[int, int, int, int]]:
    """The byte order of the SHA-crypt encoding: triples a third of the digest apart, rotated."""
    third = digest_size // 3
    groups: list[tuple[int, int, int, int]] = []
    for i in range(third):
        triple = (i, i + third, i + 2 * third)
        # SHA-512 rotates each triple left by i mod 3, SHA-256 right by i mod 3.
        shift = i % 3 if digest_size == 64 else (-i) % 3
        b2, b1, b0 = triple[shift:] + triple[:shift]
        groups.append((b2, b1, b0, 4))
    if digest_size == 64:
        groups.append((-1, -1, 63, 2))
    else:
        groups.append((-1, 31, 30, 3))
    return groups


_SHA_GROUPS = {"5": _sha_groups(32), "6": _sha_groups(64)}
_MD5_GROUPS = [(0, 6, 12, 4), (1, 7, 13, 4), (2, 8, 14, 4), (3, 9, 15, 4), (4, 10, 5, 4)]
_MD5_GROUPS.append((-1, -1, 11, 2))


def _repeat_to(block: bytes, length: int) -> bytes:
    """``block`` repeated and cut to exactly ``length`` bytes."""
    if length == 0:
        return b""
    return (block * (length // len(block) + 1))[:length]


def sha_crypt_checksum(ident: str, password: bytes, salt: bytes, rounds: int) -> str:
    """The encoded checksum of SHA-crypt ($5$ or $6$) for a salt already cut to 16 bytes."""
    new = _SHA_ID_TO_HASH[ident]
    b = new(password + salt + password).digest()

    ctx = new(password + salt)
    ctx.update(_repeat_to(b, len(password)))
    n = len(password)
    while n:
        ctx.update(b if n & 1 else password)
        n >>= 1
    a = ctx.digest()

    # The password repeated len(password) times, hashed piecewise so a long password costs
    # linear memory rather than quadratic.
    dp = new(b"")
    for _ in range(len(password)):
        dp.update(password)
    p_seq = _repeat_to(dp.digest(), len(password))
    s_seq = _repeat_to(new(salt * (16 + a[0])).digest(), len(salt))

    c = a
    for i in range(rounds):
        ctx = new(p_seq if i & 1 else c)
        if i % 3:
            ctx.update(s_seq)
        if i % 7:
            ctx.update(p_seq)
        ctx.update(c if i & 1 else p_seq)
        c = ctx.digest()
    return _encode(_SHA_GROUPS[ident], c)


def md5_crypt_checksum(password: bytes, salt: bytes) -> str:
    """The encoded checksum of MD5-crypt ($1$) for a salt already cut to 8 bytes."""
    magic = b"$1$"
    b = hashlib.md5(password + salt + password, usedforsecurity=False).digest()
    ctx = hashlib.md5(password + magic + salt, usedforsecurity=False)
    ctx.update(_repeat_to(b, len(password)))
    n = len(password)
    while n:
        # The original reads a zeroed buffer here rather than the digest: one NUL byte.
        ctx.update(b"\x00" if n & 1 else password[:1])
        n >>= 1
    final = ctx.digest()
    for i in range(MD5_ROUNDS):
        ctx = hashlib.md5(password if i & 1 else final, usedforsecurity=False)
        if i % 3:
            ctx.update(salt)
        if i % 7:
            ctx.update(password)
        ctx.update(final if i & 1 else password)
        final = ctx.digest()
    return _encode(_MD5_GROUPS, final)


def parse(value: str) -> CryptString | None:
    """Take a $1$, $5$ or $6$ crypt string apart; None when it is not well formed."""
    if value.startswith("$1$"):
        salt, sep, checksum = value[3:].partition("$")
        if not sep or len(salt) > MD5_SALT_MAX or len(checksum) != 22:
            return None
        if not _SALT_CHARS.match(salt) or not _CHECKSUM_CHARS.match(checksum):
            return None
        return CryptString("1", None, salt, checksum)
    if value[:3] not in ("$5$", "$6$"):
        return None
    ident = value[1]
    rest = value[3:]
    rounds: int | None = None
    if rest.startswith("rounds="):
        digits, sep, rest = rest[len("rounds=") :].partition("$")
        # No sign, no leading zero: the string must be the one crypt(3) itself writes.
        if not sep or not digits.isdigit() or not digits.isascii() or digits.startswith("0"):
            return None
        rounds = int(digits)
        if not SHA_ROUNDS_MIN <= rounds <= SHA_ROUNDS_MAX:
            return None
    salt, sep, checksum = rest.partition("$")
    if not sep or len(salt) > SHA_SALT_MAX or len(checksum) != _SHA_CHECKSUM_LENGTH[ident]:
        return None
    if not _SALT_CHARS.match(salt) or not _CHECKSUM_CHARS.match(checksum):
        return None
    return CryptString(ident, rounds, salt, checksum)


def crypt(password: bytes, setting: str) -> str:
    """crypt(3) for $1$, $5$ and $6$ settings, clamping rounds and salt as the spec says.

    ``setting`` is ``$<ident>$[rounds=<n>$]<salt>`` with or without a trailing checksum.
    Raises ValueError for any other setting.
    """
    if setting.startswith("$1$"):
        salt = setting[3:].split("$", 1)[0][:MD5_SALT_MAX]
        checksum = md5_crypt_checksum(password, salt.encode())
        return f"$1${salt}${checksum}"
    if setting[:3] not in ("$5$", "$6$"):
        raise ValueError("unsupported crypt setting")
    ident = setting[1]
    rest = setting[3:]
    rounds: int | None = None
    if rest.startswith("rounds="):
        digits, sep, rest = rest[len("rounds=") :].partition("$")
        if not sep or not digits.isdigit() or not digits.isascii():
            raise ValueError("malformed rounds in crypt setting")
        rounds = min(max(int(digits), SHA_ROUNDS_MIN), SHA_ROUNDS_MAX)
    salt = rest.split("$", 1)[0][:SHA_SALT_MAX]
    checksum = sha_crypt_checksum(ident, password, salt.encode(), rounds or SHA_ROUNDS_DEFAULT)
    prefix = f"${ident}$" if rounds is None else f"${ident}$rounds={rounds}$"
    return f"{prefix}{salt}${checksum}"


def make_salt(length: int) -> str:
    """A random salt of ``length`` characters from the crypt alphabet."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def verify(password: bytes, value: str) -> bool:
    """Whether ``password`` matches the $1$/$5$/$6$ string ``value``; False if it is malformed."""
    parsed = parse(value)
    if parsed is None:
        return False
    if parsed.ident == "1":
        checksum = md5_crypt_checksum(password, parsed.salt.encode())
    else:
        rounds = parsed.rounds or SHA_ROUNDS_DEFAULT
        checksum = sha_crypt_checksum(parsed.ident, password, parsed.salt.encode(), rounds)
    return hmac.compare_digest(checksum.encode(), parsed.checksum.encode())
