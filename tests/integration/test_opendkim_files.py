"""Rendered OpenDKIM files are accepted by the real OpenDKIM tools, and keys sign and verify."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization

from mailctl.domain import dkim
from mailctl.domain.dnsrecords import DnsRecord
from mailctl.host import render
from mailctl.host.daemons import apply
from mailctl.host.plan import plan, read_actual
from mailctl.host.render import DkimKeyState

RSA_KEY = dkim.generate_key("rsa2048")
ED_KEY = dkim.generate_key("ed25519")
KEYS = [
    DkimKeyState("rsa.example", "r2048", RSA_KEY),
    DkimKeyState("ed.example", "e25519", ED_KEY),
]
MESSAGE = (
    b"From: Alice <alice@rsa.example>\r\n"
    b"To: bob@elsewhere.example\r\n"
    b"Subject: reconcile test\r\n"
    b"Message-ID: <1@rsa.example>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


def need(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        pytest.fail(f"{binary} is not installed; scripts/install-test-packages installs it")
    return found


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """Render and apply the OpenDKIM files for both domains into tmp_path; return the base."""
    base = tmp_path / "opendkim"
    desired = render.render_opendkim(KEYS, base)
    managed = {render.key_dir(base): frozenset({"opendkim"})}
    actual = read_actual(desired, managed)
    result = apply(plan(desired, actual, managed), actual, {}, timeout=10)
    assert result.ok
    return base


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_opendkim_accepts_the_configuration(rendered: Path, tmp_path: Path) -> None:
    """`opendkim -n` parses a configuration pointing at the rendered tables without error."""
    binary = need("opendkim")
    conf = tmp_path / "opendkim.conf"
    conf.write_text(
        "Syslog no\n"
        "Mode sv\n"
        "Socket inet:18891@127.0.0.1\n"
        f"PidFile {tmp_path / 'opendkim.pid'}\n"
        f"KeyTable file:{rendered / 'KeyTable'}\n"
        f"SigningTable refile:{rendered / 'SigningTable'}\n"
        f"InternalHosts file:{rendered / 'TrustedHosts'}\n"
        f"ExternalIgnoreList file:{rendered / 'TrustedHosts'}\n"
    )
    done = run([binary, "-n", "-x", str(conf)])
    assert done.returncode == 0, done.stderr


def test_opendkim_refuses_a_broken_configuration(tmp_path: Path) -> None:
    """The config check above can fail: an unknown table type makes opendkim -n exit non-zero."""
    binary = need("opendkim")
    conf = tmp_path / "opendkim.conf"
    conf.write_text("Syslog no\nKeyTable nosuchtype:whatever\n")
    done = run([binary, "-n", "-x", str(conf)])
    assert done.returncode != 0
    assert "Unknown database type" in done.stderr


def unbound_with_records(tmp_path: Path, records: list[DnsRecord]) -> Path:
    """Write a resolver configuration that answers the DKIM records locally.

    opendkim-testkey has no test-key option (TestPublicKeys and TestDNSData belong to the
    filter only), but when built with libunbound it reads an unbound configuration from
    ResolverConfiguration, and unbound's local-data answers without any network.
    """
    lines = ["server:"]
    for record in records:
        # A DNS character-string holds 255 bytes at most, so long keys go in several.
        chunks = " ".join(
            f'"{record.value[i : i + 250]}"' for i in range(0, len(record.value), 250)
        )
        zone = record.name.split("._domainkey.", 1)[1]
        lines.append(f'  local-zone: "{zone}." static')
        lines.append(f"  local-data: '{record.name}. 300 IN TXT {chunks}'")
    unbound_conf = tmp_path / "unbound.conf"
    unbound_conf.write_text("\n".join(lines) + "\n")
    conf = tmp_path / "testkey.conf"
    conf.write_text(f"ResolverConfiguration {unbound_conf}\n")
    return conf


def test_rsa_key_file_matches_its_published_record(rendered: Path, tmp_path: Path) -> None:
    """opendkim-testkey loads the rendered RSA key file and finds it matches dns_record()."""
    binary = need("opendkim-testkey")
    conf = unbound_with_records(tmp_path, [dkim.dns_record("rsa.example", "r2048", RSA_KEY)])
    key_file = rendered / "keys/rsa.example/r2048.private"
    done = run(
        [binary, "-vvv", "-x", str(conf), "-d", "rsa.example", "-s", "r2048", "-k", f"{key_file}"]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "key OK" in done.stdout + done.stderr


def test_testkey_notices_a_key_that_does_not_match(tmp_path: Path, rendered: Path) -> None:
    """The same check fails when the published record belongs to another key."""
    binary = need("opendkim-testkey")
    other = dkim.generate_key("rsa1024")
    conf = unbound_with_records(tmp_path, [dkim.dns_record("rsa.example", "r2048", other)])
    key_file = rendered / "keys/rsa.example/r2048.private"
    done = run([binary, "-x", str(conf), "-d", "rsa.example", "-s", "r2048", "-k", str(key_file)])
    assert done.returncode != 0
    assert "keys do not match" in done.stdout + done.stderr


def test_ed25519_key_file_is_a_pem_openssl_loads(rendered: Path) -> None:
    """OpenSSL, which OpenDKIM loads keys with, reads the rendered ed25519 key as ED25519.

    opendkim-testkey 2.11 checks RSA keys only, so the ed25519 file is checked this way.
    """
    binary = need("openssl")
    key_file = rendered / "keys/ed.example/e25519.private"
    done = run([binary, "pkey", "-in", str(key_file), "-noout", "-text"])
    assert done.returncode == 0, done.stderr
    assert "ED25519 Private-Key" in done.stdout


def dns_answering(record: DnsRecord) -> Callable[..., bytes | None]:
    """A resolver for dkimpy that knows exactly one TXT record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record.value.encode() if name == f"{record.name}.".encode() else None

    return lookup


def test_rsa_signature_verifies_against_the_record() -> None:
    """A message signed with the generated RSA key verifies against dns_record().value."""
    signature = dkimpy.sign(MESSAGE, b"r2048", b"rsa.example", RSA_KEY.encode())
    record = dkim.dns_record("rsa.example", "r2048", RSA_KEY)
    assert dkimpy.verify(signature + MESSAGE, dnsfunc=dns_answering(record))
    tampered = signature + MESSAGE.replace(b"Hello.", b"Hullo.")
    assert not dkimpy.verify(tampered, dnsfunc=dns_answering(record))


def test_ed25519_signature_verifies_against_the_record() -> None:
    """A message signed with the generated ed25519 key verifies against dns_record().value."""
    key = serialization.load_pem_private_key(ED_KEY.encode(), None)
    # dkimpy takes an ed25519 private key as the base64 of its 32-byte seed.
    seed = key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    signature = dkimpy.sign(
        MESSAGE,
        b"e25519",
        b"ed.example",
        base64.b64encode(seed),
        signature_algorithm=b"ed25519-sha256",
    )
    record = dkim.dns_record("ed.example", "e25519", ED_KEY)
    assert dkimpy.verify(signature + MESSAGE, dnsfunc=dns_answering(record))


def test_zone_stub_matches_opendkim_genkey_byte_for_byte(tmp_path: Path) -> None:
    """opendkim_txt() of a key made by opendkim-genkey equals the <selector>.txt it wrote."""
    binary = need("opendkim-genkey")
    done = run([binary, "--directory", str(tmp_path), "-d", "genkey.example", "-s", "gk"])
    assert done.returncode == 0, done.stderr
    private_pem = (tmp_path / "gk.private").read_text()
    expected = (tmp_path / "gk.txt").read_text()
    assert dkim.opendkim_txt("genkey.example", "gk", private_pem) == expected
