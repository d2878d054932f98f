"""crypt(3) strings ($1$, $5$, $6$) computed by the system's libcrypt, outside the GIL."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from typing import Any

from mailctl.errors import UnavailableError

# The library Dovecot itself verifies SHA-crypt rows with (Debian's libcrypt1, libxcrypt).
LIBRARY = "libcrypt.so.1"
# libxcrypt refuses passphrases of 512 bytes or more (CRYPT_MAX_PASSPHRASE_SIZE counts the
# NUL); Dovecot's logins go through the same library, so no longer one could ever log in.
MAX_PHRASE_BYTES = 511
# Larger than ``struct crypt_data`` in libxcrypt (32 KiB) and in glibc's old libcrypt
# (128 KiB); one zeroed buffer per call is what makes concurrent calls safe.
_DATA_BYTES = 256 * 1024
_SETTING = re.compile(
    r"^\$(?P<ident>[156])\$(?:rounds=(?P<rounds>[0-9]{1,9})\$)?(?P<salt>[./0-9A-Za-z]*)"
)
_SALT_CHARS = {"1": 8, "5": 16, "6": 16}
# crypt(3)'s rounds when a setting names none, and the least libxcrypt accepts.
_DEFAULT_ROUNDS = 5000
_MIN_ROUNDS = 1000

Engine = Callable[[bytes, bytes], "bytes | None"]


def _libcrypt_engine(name: str) -> Engine | None:
    """crypt_rn (or crypt_r) of the library ``name``; None when it cannot be loaded."""
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    # crypt_rn (libxcrypt) takes the buffer's size and answers NULL on failure; crypt_r
    # is all glibc's older libcrypt has. A CDLL call releases the GIL while it runs.
    function: Any = getattr(library, "crypt_rn", None)
    sized = function is not None
    if function is None:
        function = getattr(library, "crypt_r", None)
        if function is None:
            return None
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    else:
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    function.restype = ctypes.c_char_p

    def engine(phrase: bytes, setting: bytes) -> bytes | None:
        data = ctypes.create_string_buffer(_DATA_BYTES)
        if sized:
            result = function(phrase, setting, data, _DATA_BYTES)
        else:
            result = function(phrase, setting, data)
        # Failure is NULL, or a "*0"/"*1" token (never a valid crypt string).
        if not isinstance(result, bytes) or not result.startswith(b"$"):
            return None
        return result

    return engine


def _libpass_engine(phrase: bytes, setting: bytes) -> bytes | None:
    """The same strings from libpass (pure Python, under the GIL): the fallback."""
    try:
        from passlib.hash import md5_crypt, sha256_crypt, sha512_crypt
    except ImportError as exc:
        raise UnavailableError(
            f"SHA-crypt and MD5-crypt passwords need {LIBRARY} (Debian's libcrypt1) or the "
            "Python package libpass; neither is installed."
        ) from exc

    match = _SETTING.match(setting.decode("ascii", "replace"))
    if match is None or len(phrase) > MAX_PHRASE_BYTES:
        return None
    ident = match["ident"]
    salt = match["salt"][: _SALT_CHARS[ident]]
    if ident == "1":
        return str(md5_crypt.using(salt=salt).hash(phrase)).encode("ascii")
    rounds = _DEFAULT_ROUNDS if match["rounds"] is None else int(match["rounds"])
    if rounds < _MIN_ROUNDS:
        return None  # as libxcrypt: refused, not raised
    handler = sha256_crypt if ident == "5" else sha512_crypt
    result = str(handler.using(rounds=rounds, salt=salt).hash(phrase))
    if match["rounds"] is not None and "$rounds=" not in result:
        # crypt(3) repeats a rounds=5000 the setting names; libpass leaves the default out.
        result = result.replace(f"${ident}$", f"${ident}$rounds={rounds}$", 1)
    return result.encode("ascii")


def load(name: str = LIBRARY) -> tuple[str, Engine]:
    """The engine to use and its name: libcrypt when it loads, else libpass."""
    engine = _libcrypt_engine(name)
    if engine is not None:
        return "libcrypt", engine
    return "libpass", _libpass_engine


ENGINE_NAME, _engine = load()


def crypt(phrase: bytes, setting: str) -> str | None:
    """What crypt(3) returns for ``phrase`` and ``setting`` (a $1$, $5$ or $6$ salt or
    a whole crypt string); None when the library refuses them.

    ``phrase`` must hold no NUL byte; one of more than MAX_PHRASE_BYTES is refused.
    """
    if b"\x00" in phrase or len(phrase) > MAX_PHRASE_BYTES:
        return None
    try:
        encoded = setting.encode("ascii")
    except UnicodeEncodeError:
        return None
    if b"\x00" in encoded:
        return None
    result = _engine(phrase, encoded)
    return None if result is None else result.decode("ascii")
