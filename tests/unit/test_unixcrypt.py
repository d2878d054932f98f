"""crypt(3) strings come from the system's libcrypt, in parallel, with libpass as fallback."""

from __future__ import annotations

import threading

import pytest
from tests.unit.test_passwords import MD5_VECTOR, SHA_VECTORS, crypt

from mailctl.domain import passwords, unixcrypt
from mailctl.errors import InvalidInputError, UnavailableError

# The vectors whose setting crypt(3) takes as written (libxcrypt refuses rounds below 1000).
_AS_WRITTEN = [v for v in [*SHA_VECTORS, MD5_VECTOR] if "roundstoolow" not in v[0]]


@pytest.fixture
def libpass_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module as it loads where libcrypt.so.1 is missing."""
    name, engine = unixcrypt.load("libcrypt.so.no-such-version")
    assert name == "libpass"
    monkeypatch.setattr(unixcrypt, "_engine", engine)
    monkeypatch.setattr(unixcrypt, "ENGINE_NAME", name)


def test_the_system_library_is_used() -> None:
    """On Debian (libcrypt1 is always installed) hashes are computed by libcrypt."""
    assert unixcrypt.ENGINE_NAME == "libcrypt"


@pytest.mark.parametrize(("setting", "plain", "expected"), _AS_WRITTEN)
def test_libcrypt_and_libpass_give_the_same_strings(
    setting: str, plain: str, expected: str
) -> None:
    """Both engines reproduce the published vectors from the setting as written."""
    assert unixcrypt.crypt(plain.encode(), setting) == expected
    _, fallback = unixcrypt.load("libcrypt.so.no-such-version")
    assert fallback(plain.encode(), setting.encode()) == expected.encode()


@pytest.mark.parametrize(
    "setting",
    ["*0", "*1", "", "$6$rounds=10$roundstoolow", "$9$unknown", "$6$bad salt$", "$6$é"],
)
def test_refused_settings_give_none(setting: str) -> None:
    """crypt(3)'s failure tokens and NULL come back as None, never as a hash."""
    assert unixcrypt.crypt(b"secret", setting) is None


def test_refused_phrases_give_none() -> None:
    """A NUL byte or more than 511 bytes is refused before the library sees it."""
    assert unixcrypt.crypt(b"a\x00b", "$6$salt") is None
    assert unixcrypt.crypt(b"p" * 512, "$6$salt") is None
    assert unixcrypt.crypt(b"p" * 511, "$6$salt") is not None


@pytest.mark.usefixtures("libpass_only")
def test_without_libcrypt_everything_still_works() -> None:
    """With libpass alone, new hashes, old rows and the vectors verify as before."""
    stored = passwords.hash_password("Pässwörd", "SHA512-CRYPT")
    assert stored.startswith(f"{{SHA512-CRYPT}}$6$rounds={passwords.SHA512_CRYPT_ROUNDS}$")
    assert passwords.verify_password("Pässwörd", stored)
    assert not passwords.verify_password("Passwörd", stored)
    for setting, plain, expected in [*SHA_VECTORS, MD5_VECTOR]:
        assert crypt(plain, setting) == expected
        scheme = {"1": "MD5-CRYPT", "5": "SHA256-CRYPT", "6": "SHA512-CRYPT"}[expected[1]]
        assert passwords.verify_password(plain, "{" + scheme + "}" + expected)
    with pytest.raises(InvalidInputError, match="at most 511 bytes"):
        passwords.hash_password("p" * 512, "SHA512-CRYPT")


def test_without_libcrypt_nor_libpass_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, libpass_only: None
) -> None:
    """With neither engine a SHA-crypt hash is a clear 503, not a crash."""
    import sys

    monkeypatch.setitem(sys.modules, "passlib.hash", None)
    with pytest.raises(UnavailableError, match="libcrypt1"):
        passwords.hash_password("secret-password", "SHA512-CRYPT")


def test_hashes_made_in_parallel_are_each_right() -> None:
    """Threads hashing at once (each with its own crypt_data) each get their own answer."""
    results: dict[int, str] = {}

    def work(n: int) -> None:
        results[n] = passwords.hash_password(f"password-{n}", "SHA512-CRYPT")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results.values())) == 8
    for n, stored in results.items():
        assert passwords.verify_password(f"password-{n}", stored)
        assert not passwords.verify_password(f"password-{n + 1}", stored)
