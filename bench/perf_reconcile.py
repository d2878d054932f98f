"""Benchmark reconcile at hosting scale: OpenDKIM and TLS files of 10,000 domains."""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figure

from mailctl.config import Settings
from mailctl.domain import dkim
from mailctl.services.reconcile import reconcile
from mailctl.storage.database import Database
from mailctl.storage.tables import Certificate, DkimKey, Domain
from mailctl.storage.uow import UnitOfWork

SECTION = "reconcile"
DOMAINS = 10_000
# One domain in ten serves its own TLS certificate (a hosting provider's custom hostnames).
CERT_EVERY = 10
# Generating 10,000 RSA keys takes minutes; the schema does not require distinct keys,
# so a few real keys are reused across rows. Rendering cost depends on their size only.
DISTINCT_KEYS = 4
REPEATS = 5


class _Wiring:
    """What reconcile needs: settings and a unit of work on one database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(settings.database_url)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.database)


def _self_signed(name: str) -> tuple[str, str]:
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def build_data(wiring: _Wiring, count: int) -> None:
    """Fill an emptied database with ``count`` domains, each with an active RSA-2048 key."""
    database = wiring.database
    database.upgrade()
    keys = [dkim.generate_key("rsa2048") for _ in range(DISTINCT_KEYS)]
    pairs = [_self_signed(f"mail{i}.example.net") for i in range(DISTINCT_KEYS)]
    not_after = datetime.now(UTC) + timedelta(days=90)
    names = [f"d{i:05d}.example.com" for i in range(count)]
    with database.engine.begin() as conn:
        for table in (DkimKey, Certificate, Domain):
            conn.execute(delete(table))
        conn.execute(insert(Domain), [{"name": name} for name in names])
        ids = dict(conn.execute(select(Domain.name, Domain.id)).all())
        conn.execute(
            insert(DkimKey),
            [
                {
                    "domain_id": ids[name],
                    "selector": "mail",
                    "key_type": "rsa2048",
                    "private_key": keys[i % DISTINCT_KEYS],
                    "active": True,
                }
                for i, name in enumerate(names)
            ],
        )
        conn.execute(
            insert(Certificate),
            [
                {
                    "name": f"mail.{name}",
                    "chain_pem": pairs[i % DISTINCT_KEYS][0],
                    "key_pem": pairs[i % DISTINCT_KEYS][1],
                    "not_after": not_after,
                    "source": "upload",
                }
                for i, name in enumerate(names)
                if i % CERT_EVERY == 0
            ],
        )


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _wipe(settings: Settings) -> None:
    for folder in (settings.opendkim_path, settings.tls_path):
        shutil.rmtree(folder, ignore_errors=True)


def _raw_writes(settings: Settings, scratch: Path) -> float:
    """The bare system calls of a first reconcile: the same files, folders and flushes.

    Each rendered file is written under ``scratch`` as a temporary sibling and renamed,
    each folder made with one mkdir, and one syncfs before the renames and one after:
    no Python above the system calls but the loop.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    roots = (os.fspath(settings.opendkim_path), os.fspath(settings.tls_path))
    files: list[tuple[str, bytes]] = []
    for root in roots:
        for top, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(top, name)
                with open(path, "rb") as handle:
                    files.append((os.path.relpath(path, settings.data_dir), handle.read()))
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    started = time.perf_counter()
    made: set[str] = set()
    temps = []
    for rel, data in files:
        path = os.path.join(scratch, rel)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        tmp = f"{folder}/.{os.path.basename(path)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
        temps.append((tmp, path))
    fd = os.open(scratch, os.O_RDONLY)
    libc.syncfs(fd)
    for tmp, path in temps:
        os.rename(tmp, path)
    libc.syncfs(fd)
    os.close(fd)
    elapsed = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def _raw_check(wiring: _Wiring) -> float:
    """The least a no-change check can do: the driver's own query, one lstat per entry."""
    settings = wiring.settings
    entries: list[str] = []
    for root in (os.fspath(settings.opendkim_path), os.fspath(settings.tls_path)):
        for top, _dirs, names in os.walk(root):
            entries.append(top)
            entries.extend(os.path.join(top, name) for name in names)
    raw = wiring.database.engine.raw_connection()
    try:
        started = time.perf_counter()
        cursor = raw.cursor()
        cursor.execute(
            "SELECT d.name, k.selector, k.private_key FROM dkim_keys k "
            "JOIN virtual_domains d ON d.id = k.domain_id WHERE k.active ORDER BY d.name"
        )
        cursor.fetchall()
        cursor.execute("SELECT name, chain_pem, key_pem FROM certificates ORDER BY name")
        cursor.fetchall()
        cursor.close()
        for entry in entries:
            os.lstat(entry)
        return time.perf_counter() - started
    finally:
        raw.close()


def run(ctx: Any) -> list[Figure]:
    """Build the data set, then time a first reconcile, a no-op one, and one after a change."""
    count = DOMAINS  # the quick size too: the whole section fits in well under 30 s
    data_dir = Path(ctx.workdir) / "reconcile-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, database_url=ctx.database_url or "")
    wiring = _Wiring(settings)
    try:
        build_data(wiring, count)
        repeats = 3 if ctx.quick else REPEATS

        firsts: list[float] = []
        files = 0
        for _ in range(repeats):
            _wipe(settings)
            elapsed, report = _timed(lambda: reconcile(wiring))
            firsts.append(elapsed)
            files = len(report.written)

        raw_first = statistics.median(
            _raw_writes(settings, data_dir / "raw") for _ in range(repeats)
        )
        noops: list[float] = []
        for _ in range(repeats * 2):
            elapsed, report = _timed(lambda: reconcile(wiring))
            assert not report.changed, "a second reconcile must change nothing"
            noops.append(elapsed)
        raw_noop = statistics.median(_raw_check(wiring) for _ in range(repeats * 2))

        changed: list[float] = []
        pems = [dkim.generate_key("ed25519") for _ in range(repeats)]
        for pem in pems:
            with wiring.database.engine.begin() as conn:
                target = conn.execute(
                    select(Domain.id).where(Domain.name == "d00042.example.com")
                ).scalar_one()
                conn.execute(
                    update(DkimKey)
                    .where(DkimKey.domain_id == target)
                    .values(private_key=pem, key_type="ed25519")
                )
            elapsed, report = _timed(lambda: reconcile(wiring))
            assert len(report.written) == 1, report.written
            changed.append(elapsed)
    finally:
        wiring.database.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)

    size = f"{count:,} domains, {count // CERT_EVERY:,} certificates, {files:,} files"
    note = (
        f"{ctx.backend}; {size}; median of {repeats}; "
        f"{DISTINCT_KEYS} RSA-2048 keys and certificates reused across rows"
    )
    first = statistics.median(firsts)
    noop = statistics.median(noops)
    after = statistics.median(changed)
    return [
        Figure(
            SECTION,
            f"first reconcile, {count:,} domains ({ctx.backend})",
            round(first * 1000, 1),
            "ms",
            limit_name="the same mkdirs, writes, renames and two syncfs in a bare loop",
            limit_value=round(raw_first * 1000, 1),
            ratio=round(first / raw_first, 2),
            target="< 1000 ms",
            met=first < 1.0,
            note=note,
        ),
        Figure(
            SECTION,
            f"reconcile with nothing to change ({ctx.backend})",
            round(noop * 1000, 1),
            "ms",
            limit_name="the driver's own queries and one lstat per file and folder",
            limit_value=round(raw_noop * 1000, 1),
            ratio=round(noop / raw_noop, 2),
            target="< 100 ms",
            met=noop < 0.1,
            note=note,
        ),
        Figure(
            SECTION,
            f"reconcile after one key changed ({ctx.backend})",
            round(after * 1000, 1),
            "ms",
            note=note,
        ),
    ]


def main() -> None:
    """Run this section alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql", "mariadb"])
    parser.add_argument("--database-url", default="", help="an empty database of its own")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    workdir = Path(tempfile.mkdtemp(prefix="perf-reconcile-", dir=repo))
    try:
        ctx = types.SimpleNamespace(
            quick=args.quick,
            backend=args.backend,
            database_url=args.database_url,
            workdir=workdir,
            repo=repo,
        )
        for figure in run(ctx):
            shown = f"{figure.value:>10} {figure.unit:4} {figure.target:12}"
            limit = "" if figure.limit_value is None else f"raw {figure.limit_value} ms"
            ratio = "" if figure.ratio is None else f"x{figure.ratio}"
            print(f"{figure.name:48} {shown} {limit:16} {ratio:6} {figure.note}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
