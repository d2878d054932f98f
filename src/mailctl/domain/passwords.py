"""Mailbox and admin passwords as Dovecot ``{SCHEME}hash`` strings: create, verify, migrate."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type, verify_secret

from mailctl.domain import unixcrypt
from mailctl.errors import InvalidInputError, UnavailableError

SCHEMES: tuple[str, ...] = ("ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT")
DEFAULT_SCHEME = "ARGON2ID"
# Schemes whose rows verify (old rows, migrated rows) though we never create them.
VERIFY_ONLY_SCHEMES: tuple[str, ...] = ("ARGON2I", "SHA256-CRYPT", "MD5-CRYPT")
_VERIFIABLE = SCHEMES + VERIFY_ONLY_SCHEMES

# The password policy's fixed bounds; the minimum length is a setting (see check_new_password).
MAX_PASSWORD_LENGTH = 1024
BCRYPT_MAX_BYTES = 72  # bcrypt ignores everything after the 72nd byte
# crypt(3) (libxcrypt, which Dovecot verifies SHA512-CRYPT rows with) refuses longer ones.
SHA_CRYPT_MAX_BYTES = unixcrypt.MAX_PHRASE_BYTES

# The cost of new hashes. They are read when a hash is made or judged by needs_rehash, so a
# test suite may lower them (and rebuild ``_hasher`` with argon2_hasher()) to run fast.
# Dovecot verifies Argon2 through libsodium, whose hashing API knows one lane only.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_PARALLELISM = 1
ARGON2_SALT_BYTES = 16
ARGON2_HASH_BYTES = 32
BCRYPT_COST = 12
# Dovecot's own default is crypt(3)'s 5000; more rounds cost an attacker more per guess and
# still verify in well under a tenth of a second in Dovecot's C code.
SHA512_CRYPT_ROUNDS = 100_000
SHA_CRYPT_SALT_CHARS = 16
_CRYPT_SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Bounds on any row we import or verify: beyond them one login would pin a CPU for minutes
# or allocate gigabytes, so such rows are refused rather than computed.
_MAX_SHA_ROUNDS = 1_000_000
# crypt(3)'s rounds when a SHA-crypt string names none, and the least it accepts.
_SHA_ROUNDS_DEFAULT = 5000
_SHA_ROUNDS_MIN = 1000
_MAX_BCRYPT_COST = 16
_MAX_ARGON2_MEMORY_KIB = 1024 * 1024
_MAX_ARGON2_TIME_COST = 64
_MAX_ARGON2_PARALLELISM = 16
_MAX_STORED_LENGTH = 512

_PREFIX = re.compile(r"^\{([A-Za-z0-9._-]+)\}")
_ARGON2 = re.compile(
    r"^\$(argon2id|argon2i)\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$"
)
_BCRYPT = re.compile(r"^\$(2[aby])\$(\d\d)\$[./A-Za-z0-9]{53}$")
_CRYPT_IDS = {"$1$": "MD5-CRYPT", "$5$": "SHA256-CRYPT", "$6$": "SHA512-CRYPT"}
# A $1$, $5$ or $6$ string exactly as crypt(3) writes it: rounds without sign or leading
# zero, a salt of at most 8 (MD5) or 16 (SHA) characters and a checksum of the right length,
# both in crypt's base-64 alphabet. Anything else is refused before the library sees it.
_CRYPT_STRING = re.compile(
    r"^\$(?:(?P<md5>1)\$(?P<md5_salt>[./0-9A-Za-z]{0,8})\$(?P<md5_sum>[./0-9A-Za-z]{22})"
    r"|(?P<sha>[56])\$(?:rounds=(?P<rounds>[1-9][0-9]{0,8})\$)?(?P<sha_salt>[./0-9A-Za-z]{0,16})"
    r"\$(?P<sha_sum>[./0-9A-Za-z]{43}|[./0-9A-Za-z]{86}))$"
)
_SHA_CHECKSUM_LENGTH = {"5": 43, "6": 86}
_ARGON2_TYPES = {"ARGON2ID": ("argon2id", Type.ID), "ARGON2I": ("argon2i", Type.I)}


def argon2_hasher() -> PasswordHasher:
    """An Argon2id hasher with the module's current ARGON2_* parameters."""
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM,
        hash_len=ARGON2_HASH_BYTES,
        salt_len=ARGON2_SALT_BYTES,
        type=Type.ID,
    )


# The one hasher new ARGON2ID hashes come from.
_hasher = argon2_hasher()


@dataclass(frozen=True)
class _Stored:
    """A stored value resolved to the scheme that verifies it."""

    scheme: str  # uppercase: "ARGON2ID", "SHA512-CRYPT", or an unknown prefix as written
    body: str  # the hash after the prefix
    explicit: bool  # whether the row names that exact scheme in its own prefix


@dataclass(frozen=True)
class _CryptString:
    """A $1$, $5$ or $6$ crypt(3) string taken apart."""

    ident: str  # "1", "5" or "6"
    rounds: int | None  # as written; None when the string names none
    salt: str


@dataclass(frozen=True)
class _Argon2:
    """The parts of an Argon2 PHC string that decide its strength."""

    variant: str
    memory_kib: int
    time_cost: int
    parallelism: int
    salt_bytes: int
    hash_bytes: int


def _crypt_scheme(body: str) -> str | None:
    """The Dovecot scheme of a bare crypt(3) string, from its ``$id$``."""
    if body[:3] in _CRYPT_IDS:
        return _CRYPT_IDS[body[:3]]
    if body[:4] in ("$2a$", "$2b$", "$2y$"):
        return "BLF-CRYPT"
    return None


def _resolve(stored: str) -> _Stored | None:
    """Find the scheme of a stored value: its prefix, or its crypt ``$id$`` when it has none."""
    match = _PREFIX.match(stored)
    if match is None:
        # Dovecot reads an unprefixed value with its default scheme; rows of the previous
        # service relied on that being CRYPT, which takes any crypt(3) string.
        scheme = _crypt_scheme(stored)
        return None if scheme is None else _Stored(scheme, stored, explicit=False)
    name = match.group(1).upper()
    body = stored[match.end() :]
    if name == "CRYPT" or (name == "MD5" and body.startswith("$1$")):
        # {CRYPT} is crypt(3) itself, and {MD5} is Dovecot's old alias for MD5-CRYPT.
        scheme = _crypt_scheme(body)
        return _Stored(scheme or name, body, explicit=False)
    return _Stored(name, body, explicit=True)


def _b64_length(text: str) -> int | None:
    """Length of unpadded standard base64, as Argon2 strings carry it; None if invalid."""
    if len(text) % 4 == 1:
        return None
    try:
        return len(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except binascii.Error:
        return None


def _parse_argon2(body: str) -> _Argon2 | None:
    """Take an Argon2 PHC string apart; None unless it is version 19 and well formed."""
    match = _ARGON2.match(body)
    if match is None:
        return None
    variant, version, memory, time_cost, lanes, salt, digest = match.groups()
    salt_bytes, hash_bytes = _b64_length(salt), _b64_length(digest)
    if version != "19" or salt_bytes is None or hash_bytes is None:
        return None
    if any(len(number) > 10 for number in (memory, time_cost, lanes)):
        return None
    return _Argon2(variant, int(memory), int(time_cost), int(lanes), salt_bytes, hash_bytes)


def _parse_crypt(body: str) -> _CryptString | None:
    """Take a $1$, $5$ or $6$ string apart; None unless it is exactly as crypt(3) writes it."""
    match = _CRYPT_STRING.match(body)
    if match is None:
        return None
    if match["md5"]:
        return _CryptString("1", None, match["md5_salt"])
    ident = match["sha"]
    if len(match["sha_sum"]) != _SHA_CHECKSUM_LENGTH[ident]:
        return None
    rounds = None if match["rounds"] is None else int(match["rounds"])
    if rounds is not None and rounds < _SHA_ROUNDS_MIN:
        return None
    return _CryptString(ident, rounds, match["sha_salt"])


def _bcrypt_cost(body: str) -> int | None:
    """The cost of a ``$2a$``/``$2b$``/``$2y$`` string; None if it is not one."""
    match = _BCRYPT.match(body)
    return None if match is None else int(match.group(2))


def check_new_password(plain: object, min_length: int = 1) -> str:
    """Apply the password policy to a new password; return it unchanged.

    The one place the policy lives: the services check mailbox and admin passwords with
    it (``min_length`` from the settings) and hash_password checks every password it
    hashes. Raises InvalidInputError, without repeating the password, when it is not
    text, is empty, holds a NUL character (Dovecot sees passwords as C strings), is
    shorter than ``min_length`` or longer than MAX_PASSWORD_LENGTH characters, or cannot
    be encoded as UTF-8 (an unpaired surrogate).
    """
    if not isinstance(plain, str) or plain == "":
        raise InvalidInputError("The password is empty.")
    if "\x00" in plain:
        raise InvalidInputError("The password contains a NUL character, which is not allowed.")
    if len(plain) > MAX_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"The password is too long: {len(plain)} characters; at most "
            f"{MAX_PASSWORD_LENGTH} are allowed."
        )
    if len(plain) < min_length:
        raise InvalidInputError(
            f"The password is too short: {len(plain)} characters; at least "
            f"{min_length} are required."
        )
    try:
        plain.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError("The password is not valid Unicode text.") from exc
    return plain


def _check_scheme(scheme: str) -> str:
    """The canonical name of a scheme we can create, or InvalidInputError."""
    name = scheme.upper()
    if name not in SCHEMES:
        raise InvalidInputError(
            f"Unknown password scheme {scheme!r}; choose one of {', '.join(SCHEMES)}."
        )
    return name


def hash_password(plain: str, scheme: str = DEFAULT_SCHEME) -> str:
    """Hash a new password as ``{SCHEME}hash``, e.g. ``{ARGON2ID}$argon2id$v=19$...``.

    Raises InvalidInputError for an empty password, a NUL byte, more than
    MAX_PASSWORD_LENGTH characters, an unknown scheme, a password longer than 72 bytes
    for BLF-CRYPT (which would silently ignore the rest), or longer than 511 bytes for
    SHA512-CRYPT (which crypt(3), and so Dovecot, refuses).
    """
    secret = check_new_password(plain).encode("utf-8")
    name = _check_scheme(scheme)
    if name == "ARGON2ID":
        return "{ARGON2ID}" + _hasher.hash(secret)
    if name == "BLF-CRYPT":
        if len(secret) > BCRYPT_MAX_BYTES:
            raise InvalidInputError(
                f"BLF-CRYPT uses only the first {BCRYPT_MAX_BYTES} bytes of a password and this "
                f"one is {len(secret)} bytes long; choose a shorter password or another scheme."
            )
        return "{BLF-CRYPT}" + bcrypt.hashpw(secret, bcrypt.gensalt(BCRYPT_COST)).decode("ascii")
    if len(secret) > SHA_CRYPT_MAX_BYTES:
        raise InvalidInputError(
            f"SHA512-CRYPT takes at most {SHA_CRYPT_MAX_BYTES} bytes of password (Dovecot "
            f"could not check a longer one) and this one is {len(secret)} bytes long; choose "
            "a shorter password or another scheme."
        )
    salt = "".join(secrets.choice(_CRYPT_SALT_ALPHABET) for _ in range(SHA_CRYPT_SALT_CHARS))
    hashed = unixcrypt.crypt(secret, f"$6$rounds={SHA512_CRYPT_ROUNDS}${salt}")
    if hashed is None:
        raise UnavailableError("The system's crypt(3) library could not hash the password.")
    return "{SHA512-CRYPT}" + hashed


def _verify_argon2(secret: bytes, scheme: str, body: str) -> bool:
    """Check a well-formed ARGON2ID or ARGON2I body."""
    try:
        return verify_secret(body.encode("ascii"), secret, _ARGON2_TYPES[scheme][1])
    except (VerificationError, InvalidHashError, ValueError):
        return False


def _verify_crypt(secret: bytes, body: str) -> bool:
    """Check a well-formed $1$, $5$ or $6$ body whose rounds are within our bounds."""
    computed = unixcrypt.crypt(secret, body)
    # Compared in constant time: how much of the checksum matched must not show.
    return computed is not None and hmac.compare_digest(computed.encode(), body.encode())


def _verify_bcrypt(secret: bytes, body: str) -> bool:
    """Check a well-formed bcrypt body; passwords are cut at 72 bytes as in Dovecot."""
    # We refuse to create such hashes, but a migrated row may come from a system that cut
    # the password silently; Dovecot accepts the login then, and so do we.
    try:
        return bcrypt.checkpw(secret[:BCRYPT_MAX_BYTES], body.encode("ascii"))
    except ValueError:
        return False


def verify_password(plain: str, stored: str) -> bool:
    """Whether ``plain`` matches the stored ``{SCHEME}hash`` (or bare crypt string).

    Never raises for a wrong, garbled or unsupported hash: the answer is then False.
    """
    if not plain or len(plain) > MAX_PASSWORD_LENGTH or len(stored) > _MAX_STORED_LENGTH:
        return False
    if "\x00" in plain:
        # Dovecot sees passwords as C strings, so no login could ever send this one.
        return False
    try:
        secret = plain.encode("utf-8")
    except UnicodeEncodeError:
        return False
    resolved = _resolve(stored)
    if resolved is None or resolved.scheme not in _VERIFIABLE:
        return False
    if _problem(resolved.scheme, resolved.body) is not None:
        return False
    if resolved.scheme in _ARGON2_TYPES:
        return _verify_argon2(secret, resolved.scheme, resolved.body)
    if resolved.scheme == "BLF-CRYPT":
        return _verify_bcrypt(secret, resolved.body)
    return _verify_crypt(secret, resolved.body)


def scheme_of(stored: str) -> str | None:
    """The scheme a stored value is verified with: ``"{SHA512-CRYPT}$6$..."`` → ``"SHA512-CRYPT"``.

    A bare crypt string (or one under ``{CRYPT}``) reports the scheme of its ``$id$``;
    an unknown prefix is reported as written, upper-cased; anything else is None.
    """
    resolved = _resolve(stored)
    return None if resolved is None else resolved.scheme


def needs_rehash(stored: str, scheme: str = DEFAULT_SCHEME) -> bool:
    """Whether the stored value should be replaced by a fresh ``scheme`` hash at next login.

    True for another scheme (MD5-CRYPT rows always), rows that do not name their own
    scheme, malformed rows, and parameters weaker than the ones hash_password uses.
    Raises InvalidInputError for a ``scheme`` we cannot create.
    """
    name = _check_scheme(scheme)
    resolved = _resolve(stored)
    if resolved is None or not resolved.explicit or resolved.scheme != name:
        return True
    if name == "ARGON2ID":
        argon2 = _parse_argon2(resolved.body)
        return (
            argon2 is None
            or argon2.variant != "argon2id"
            or argon2.memory_kib < ARGON2_MEMORY_KIB
            or argon2.time_cost < ARGON2_TIME_COST
            or argon2.parallelism != ARGON2_PARALLELISM
            or argon2.salt_bytes < ARGON2_SALT_BYTES
            or argon2.hash_bytes < ARGON2_HASH_BYTES
        )
    if name == "BLF-CRYPT":
        cost = _bcrypt_cost(resolved.body)
        # $2a$ strings may come from implementations with the old sign-extension bug.
        return cost is None or cost < BCRYPT_COST or resolved.body.startswith("$2a$")
    parsed = _parse_crypt(resolved.body)
    return (
        parsed is None
        or parsed.ident != "6"
        or (parsed.rounds or _SHA_ROUNDS_DEFAULT) < SHA512_CRYPT_ROUNDS
        or len(parsed.salt) < SHA_CRYPT_SALT_CHARS
    )


def _problem(scheme: str, body: str) -> str | None:
    """Why ``body`` cannot be stored or verified under ``scheme``; None when it can."""
    if scheme in _ARGON2_TYPES:
        argon2 = _parse_argon2(body)
        if argon2 is None or argon2.variant != _ARGON2_TYPES[scheme][0]:
            return f"it is not a well-formed {scheme} hash (version 19, base64 salt and hash)"
        if not (
            1 <= argon2.parallelism <= _MAX_ARGON2_PARALLELISM
            and 1 <= argon2.time_cost <= _MAX_ARGON2_TIME_COST
            and 8 * argon2.parallelism <= argon2.memory_kib <= _MAX_ARGON2_MEMORY_KIB
        ):
            return "its Argon2 memory, time or parallelism parameters are out of range"
        if argon2.salt_bytes < 8 or argon2.hash_bytes < 16:
            return "its Argon2 salt or hash is too short"
        return None
    if scheme == "BLF-CRYPT":
        cost = _bcrypt_cost(body)
        if cost is None:
            return "it is not a well-formed $2a$, $2b$ or $2y$ bcrypt hash"
        if not 4 <= cost <= _MAX_BCRYPT_COST:
            return f"its bcrypt cost {cost} is outside 4 to {_MAX_BCRYPT_COST}"
        return None
    # Checked here, before the library computes anything: a hostile row cannot make one
    # login spend minutes (rounds) or reach a parser we have not bounded.
    parsed = _parse_crypt(body)
    if parsed is None or _CRYPT_IDS.get(body[:3]) != scheme:
        return f"it is not a well-formed {scheme} hash"
    if (parsed.rounds or 0) > _MAX_SHA_ROUNDS:
        return f"its rounds are above {_MAX_SHA_ROUNDS}"
    return None


def validate_prehashed(value: str) -> str:
    """Check a pre-hashed password brought in for migration and return it normalised.

    Accepted: ``{ARGON2ID}``, ``{ARGON2I}``, ``{SHA512-CRYPT}``, ``{SHA256-CRYPT}``,
    ``{MD5-CRYPT}`` and ``{BLF-CRYPT}`` values, and bare or ``{CRYPT}`` crypt strings.
    The result names its scheme in upper case (a bare ``$6$...`` becomes
    ``{SHA512-CRYPT}$6$...``). Raises InvalidInputError for anything else.
    """
    text = value.strip()
    if not text or len(text) > _MAX_STORED_LENGTH or not text.isprintable() or " " in text:
        raise InvalidInputError(
            "The pre-hashed password must be one line of printable text with no spaces, "
            f"at most {_MAX_STORED_LENGTH} characters."
        )
    resolved = _resolve(text)
    if resolved is None or resolved.scheme not in _VERIFIABLE:
        raise InvalidInputError(
            "The pre-hashed password must start with {SCHEME} for one of "
            f"{', '.join(_VERIFIABLE)}, or be a $1$, $2b$, $5$ or $6$ crypt string."
        )
    problem = _problem(resolved.scheme, resolved.body)
    if problem is not None:
        raise InvalidInputError(f"The pre-hashed {resolved.scheme} password is refused: {problem}.")
    return "{" + resolved.scheme + "}" + resolved.body
