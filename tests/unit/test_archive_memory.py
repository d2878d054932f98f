"""Exporting a large maildir keeps memory flat: no whole file and no whole archive in RAM."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

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
