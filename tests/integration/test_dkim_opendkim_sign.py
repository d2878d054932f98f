"""Keys made through the API sign mail that verifies against the record the API returned."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim as dkimpy
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.conftest import LiveServer

# One backend is enough here: what is checked is the key material, not the database.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@elsewhere.example\r\n"
    b"Subject: signed by a key from the API\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


def add_key(api: httpx.Client, domain: str, **fields: str) -> dict[str, Any]:
    assert api.post("/domains", data={"domain": domain}).status_code == 200
    response = api.post("/dkim/add-new-domain", data={"domain": domain, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def answering(name: str, value: str) -> Callable[..., bytes | None]:
    """A resolver for dkimpy that knows exactly one TXT record."""

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if qname == f"{name}.".encode() else None

    return lookup


def dkimpy_key(key_file: Path, key_type: str) -> bytes:
    pem = key_file.read_bytes()
    if key_type != "ed25519":
        return pem
    # dkimpy takes an ed25519 private key as the base64 of its 32-byte seed.
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)


@pytest.mark.parametrize(
    ("key_type", "algorithm"), [("rsa2048", b"rsa-sha256"), ("ed25519", b"ed25519-sha256")]
)
def test_signature_verifies_against_returned_record(
    api: httpx.Client, server: LiveServer, key_type: str, algorithm: bytes
) -> None:
    """Mail signed with the rendered key file verifies with the API's dns.value, and only it."""
    body = add_key(api, "example.com", key_type=key_type, selector="s1")
    key_file = server.ctx.settings.opendkim_path / "keys/example.com/s1.private"
    signature = dkimpy.sign(
        MESSAGE,
        b"s1",
        b"example.com",
        dkimpy_key(key_file, key_type),
        signature_algorithm=algorithm,
    )
    assert b"d=example.com" in signature and b"s=s1" in signature
    dns = answering(body["dns"]["name"], body["dns"]["value"])
    assert dkimpy.verify(signature + MESSAGE, dnsfunc=dns)
    assert not dkimpy.verify(signature + MESSAGE.replace(b"Hello.", b"Hullo."), dnsfunc=dns)
    # After a rotation the new key signs, and mail the old key signed still verifies: its
    # record, listed as retired, is the same.
    rotated = api.post(
        "/dkim/add-new-domain", data={"domain": "example.com", "rotate": "true"}
    ).json()
    assert rotated["retired_selector"] == "s1"
    new = server.ctx.settings.opendkim_path / f"keys/example.com/{rotated['selector']}.private"
    selector = rotated["selector"].encode()
    fresh = dkimpy.sign(
        MESSAGE, selector, b"example.com", dkimpy_key(new, key_type), signature_algorithm=algorithm
    )
    assert dkimpy.verify(
        fresh + MESSAGE, dnsfunc=answering(rotated["dns"]["name"], rotated["dns"]["value"])
    )
    keys = api.get("/dkim/example.com/keys").json()["keys"]
    [retired] = [k for k in keys if not k["active"]]
    assert (retired["selector"], retired["dns"]) == ("s1", body["dns"])
    assert dkimpy.verify(signature + MESSAGE, dnsfunc=dns)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    assert found is not None, f"{name} is not installed (Debian package opendkim-tools)"
    return found


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def resolver_config(tmp_path: Path, name: str, value: str) -> Path:
    """An opendkim-testkey configuration whose resolver answers one TXT record locally.

    opendkim-testkey, built with libunbound, reads an unbound configuration from
    ResolverConfiguration; unbound's local-data answers without any network.
    """
    # One DNS character-string holds at most 255 bytes, so the value goes in several.
    strings = " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))
    zone = name.split("._domainkey.", 1)[1]
    unbound = tmp_path / "unbound.conf"
    unbound.write_text(
        f"server:\n  local-zone: \"{zone}.\" static\n  local-data: '{name}. 300 IN TXT {strings}'\n"
    )
    conf = tmp_path / "testkey.conf"
    conf.write_text(f"ResolverConfiguration {unbound}\n")
    return conf


def test_opendkim_accepts_files_rendered_through_the_api(
    api: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    """opendkim -n loads the tables the API rendered, and testkey matches file and record."""
    body = add_key(api, "example.com")
    add_key(api, "example.org", key_type="ed25519")
    base = server.ctx.settings.opendkim_path
    conf = tmp_path / "opendkim.conf"
    conf.write_text(
        "Syslog no\n"
        "Mode sv\n"
        "Socket inet:18891@127.0.0.1\n"
        f"PidFile {tmp_path / 'opendkim.pid'}\n"
        f"KeyTable file:{base / 'KeyTable'}\n"
        f"SigningTable refile:{base / 'SigningTable'}\n"
        f"InternalHosts file:{base / 'TrustedHosts'}\n"
        f"ExternalIgnoreList file:{base / 'TrustedHosts'}\n"
    )
    checked = run([tool("opendkim"), "-n", "-x", str(conf)])
    assert checked.returncode == 0, checked.stderr

    key_table = (base / "KeyTable").read_text().splitlines()
    line = next(entry for entry in key_table if entry.startswith("mail._domainkey.example.com "))
    key_file = line.split(":", 2)[2]
    testkey_conf = resolver_config(tmp_path, body["dns"]["name"], body["dns"]["value"])
    argv = [tool("opendkim-testkey"), "-vvv", "-x", str(testkey_conf)]
    done = run([*argv, "-d", "example.com", "-s", "mail", "-k", key_file])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "key OK" in done.stdout + done.stderr

    # The same check refuses the file once the key is replaced in place (the current
    # selector named) and the record is stale.
    api.post(
        "/dkim/add-new-domain",
        data={"domain": "example.com", "rotate": "true", "selector": "mail"},
    )
    stale = run([*argv, "-d", "example.com", "-s", "mail", "-k", key_file])
    assert stale.returncode != 0
    assert "keys do not match" in stale.stdout + stale.stderr
