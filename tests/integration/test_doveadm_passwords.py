"""Hashes we make verify in Dovecot's `doveadm pw`, and hashes doveadm makes verify in ours."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mailctl.domain.passwords import (
    SCHEMES,
    hash_password,
    needs_rehash,
    scheme_of,
    validate_prehashed,
    verify_password,
)

PASSWORDS = ["correct horse battery staple", "Pässwörd ✓ mit Leerzeichen", "-starts-with-a-dash"]

Doveadm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def doveadm(tmp_path: Path) -> Doveadm:
    """Run `doveadm -c <minimal config>`; fail (not skip) when dovecot-core is missing."""
    binary = shutil.which("doveadm")
    if binary is None:
        pytest.fail(
            "doveadm is not installed: install the dovecot-core package "
            "(scripts/install-test-packages does) to check hashes against Dovecot"
        )
    # doveadm reads a configuration before any command; the host's may name TLS files or
    # SQL drivers that are absent here, and `doveadm pw` needs no setting at all.
    config = tmp_path / "dovecot.conf"
    config.write_text("# doveadm pw needs no settings\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "-c", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def doveadm_hash(doveadm: Doveadm, scheme: str, plain: str) -> str:
    """The hash `doveadm pw -s <scheme>` makes for ``plain``."""
    result = doveadm("pw", "-s", scheme, "-p", plain)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.production_hashing
@pytest.mark.parametrize("plain", PASSWORDS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_doveadm_verifies_our_hashes(doveadm: Doveadm, scheme: str, plain: str) -> None:
    """`doveadm pw -t` accepts every scheme we create and refuses a wrong password."""
    stored = hash_password(plain, scheme)

    right = doveadm("pw", "-t", stored, "-p", plain)
    assert right.returncode == 0, right.stderr
    assert "(verified)" in right.stdout

    wrong = doveadm("pw", "-t", stored, "-p", plain + "x")
    assert wrong.returncode != 0
    assert "mismatch" in wrong.stderr.lower()


@pytest.mark.parametrize("plain", PASSWORDS)
@pytest.mark.parametrize(
    "scheme", ["SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I", "MD5-CRYPT", "SHA256-CRYPT"]
)
def test_we_verify_doveadm_hashes(doveadm: Doveadm, scheme: str, plain: str) -> None:
    """Hashes from `doveadm pw -s` verify with ours, are kept by migration, refuse wrong ones."""
    stored = doveadm_hash(doveadm, scheme, plain)
    assert stored.startswith("{" + scheme + "}")

    assert scheme_of(stored) == scheme
    assert verify_password(plain, stored)
    assert not verify_password(plain + "x", stored)
    assert validate_prehashed(stored) == stored


def test_doveadm_md5_crypt_rows_need_rehash(doveadm: Doveadm) -> None:
    """An MD5-CRYPT row from Dovecot verifies but asks to become ARGON2ID."""
    stored = doveadm_hash(doveadm, "MD5-CRYPT", "old password")
    assert verify_password("old password", stored)
    assert needs_rehash(stored)
    fresh = hash_password("old password")
    assert not needs_rehash(fresh)
    assert doveadm("pw", "-t", fresh, "-p", "old password").returncode == 0


def test_doveadm_bare_crypt_strings_verify(doveadm: Doveadm) -> None:
    """A {CRYPT} row without its prefix (as old services stored it) verifies with ours."""
    stored = doveadm_hash(doveadm, "SHA512-CRYPT", "bare row")
    bare = stored.removeprefix("{SHA512-CRYPT}")
    assert bare.startswith("$6$")
    assert verify_password("bare row", bare)
    assert validate_prehashed(bare) == stored
