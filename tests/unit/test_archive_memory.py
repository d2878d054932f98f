"""Archives keep memory flat: an export holds no whole file, an import no whole JSON tree."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from mailctl.archive import MailboxEntry, Manifest
from mailctl.archive.format import FileEntry

MIB = 1024 * 1024

_CHILD = """
import json, sys
from pathlib import Path
from mailctl.archive import MailboxEntry, Manifest, export_stream

def high_water_kib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))

manifest = Manifest(
    domain="example.org",
    mailboxes=[MailboxEntry("big@example.org", "{ARGON2ID}x", "maildirs/big")],
)
stream = export_stream(manifest, {"big": Path(sys.argv[1])}, compresslevel=1)
baseline = high_water_kib()
archived = sum(len(chunk) for chunk in stream)
peak = high_water_kib()
print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "archive": archived,
                  "files": len(manifest.files), "bytes": sum(f.size for f in manifest.files)}))
"""


def test_export_of_100_mb_stays_under_150_mb_peak_rss(tmp_path: Path) -> None:
    """A ~100 MB maildir with 24 MB attachments exports in a process that peaks under 150 MB."""
    rng = random.Random(5)
    maildir = tmp_path / "big"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i in range(2):
        (maildir / "cur" / f"17000000{i}.M{i}P1.host:2,S").write_bytes(rng.randbytes(24 * MIB))
    pool = rng.randbytes(4 * MIB)
    for i in range(520):
        start = rng.randrange(0, 3 * MIB)
        (maildir / "new" / f"17000001{i:03d}.M{i}P1.host").write_bytes(
            pool[start : start + 100 * 1024]
        )

    # The child reports its own peak RSS (VmHWM), not ru_maxrss: Linux carries ru_maxrss
    # across exec, so a child of this test process starts out at pytest's own peak, and
    # RUSAGE_CHILDREN here would be the largest of every child the test run waited for.
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(maildir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    figures = json.loads(run.stdout)

    assert figures["files"] == 522
    assert figures["bytes"] == 48 * MIB + 520 * 100 * 1024
    assert figures["archive"] > 95 * MIB
    assert figures["peak_kib"] < 150 * 1024
    # Holding one 24 MB attachment, or the archive, would show up as growth on its own.
    assert figures["peak_kib"] - figures["baseline_kib"] < 16 * 1024


_IMPORT_CHILD = """
import json, sys, time
from pathlib import Path
from mailctl.errors import InvalidInputError
from mailctl.archive import verify_and_extract

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(field + ":"))

baseline = kib("VmRSS")
started = time.monotonic()
try:
    verify_and_extract(Path(sys.argv[1]), Path(sys.argv[2]), max_total_bytes=1 << 40,
                       max_files=10**7, max_manifest_bytes=1 << 30)
    outcome = "imported"
except InvalidInputError as exc:
    outcome = exc.message
print(json.dumps({"baseline_kib": baseline, "peak_kib": kib("VmHWM"), "outcome": outcome,
                  "seconds": time.monotonic() - started}))
"""


@pytest.mark.slow
@pytest.mark.security(
    finding=10,
    claim="Importing an archive whose manifest is 60 MB (260,000 files) peaks at under "
    "four times the manifest's size in memory, not ten.",
)
def test_import_of_a_60_mb_manifest_stays_under_four_times_its_size(
    tmp_path: Path, figure: Callable[[str, object], None]
) -> None:
    """A 60 MB manifest is read value by value: the process grows by less than 4x its size."""
    count = 260_000
    manifest = Manifest(
        domain="example.org",
        mailboxes=[MailboxEntry("a@example.org", "{ARGON2ID}x", "maildirs/a")],
        directories=["maildirs/a", "maildirs/a/cur"],
        files=[
            FileEntry(
                f"maildirs/a/cur/{1_700_000_000 + i}.M{i}P4242.mail.example.org,S={i}:2,S",
                i,
                f"{i:064x}",
                1_700_000_000_123_456_789 + i,
            )
            for i in range(count)
        ],
    )
    data = manifest.to_json()
    del manifest
    archive = tmp_path / "big-manifest.tar.gz"
    header = tarfile.TarInfo("manifest.json")
    header.size = len(data)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    with archive.open("wb") as out:
        out.write(compressor.compress(header.tobuf(tarfile.PAX_FORMAT)))
        out.write(compressor.compress(data))
        out.write(compressor.compress(bytes(-len(data) % 512 + 1024)))
        out.write(compressor.flush())
    size = len(data)
    del data

    run = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHILD, str(archive), str(tmp_path / "staging")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    figures = json.loads(run.stdout)
    growth = (figures["peak_kib"] - figures["baseline_kib"]) * 1024
    figure("manifest MB", round(size / 1e6, 1))
    figure("files listed", count)
    figure("peak memory growth MiB", round(growth / MIB))
    figure("times the manifest", round(growth / size, 2))
    figure("seconds", round(figures["seconds"], 1))

    # Every listed file is missing: the manifest was read whole and checked first.
    assert "which is missing" in figures["outcome"]
    assert size > 55 * 1_000_000
    assert growth < 4 * size
