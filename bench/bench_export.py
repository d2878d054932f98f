"""Benchmark the streamed domain export: throughput and peak memory for an N MB maildir."""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from mailctl.archive import MailboxEntry, Manifest, export_stream

MESSAGE_BYTES = 100 * 1024


def build_maildir(root: Path, total_mb: int) -> int:
    """Fill root with 100 KB messages of random bytes (mail barely compresses once
    attachments are base64) until total_mb is reached; return the file count."""
    rng = random.Random(0)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    # One random block, sliced differently per message, keeps the setup fast while the
    # compressor still sees incompressible data.
    pool = rng.randbytes(8 * 1024 * 1024)
    count = total_mb * 1024 * 1024 // MESSAGE_BYTES
    for i in range(count):
        start = rng.randrange(0, len(pool) - MESSAGE_BYTES)
        name = f"17000{i:05d}.M{i}P1.bench,S={MESSAGE_BYTES}:2,S"
        (root / "cur" / name).write_bytes(pool[start : start + MESSAGE_BYTES])
    return count


def main() -> None:
    """Build the maildir, stream its export into a discarding sink, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("megabytes", type=int, nargs="?", default=1024)
    parser.add_argument("--level", type=int, default=6, help="gzip compression level")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the maildir")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mailctl-bench-", dir=args.dir))
    try:
        maildir = workdir / "bench"
        started = time.monotonic()
        count = build_maildir(maildir, args.megabytes)
        print(f"built {count} messages in {time.monotonic() - started:.1f} s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        manifest = Manifest(
            domain="example.org",
            mailboxes=[MailboxEntry("bench@example.org", "{ARGON2ID}x", "maildirs/bench")],
        )
        archive_bytes = 0
        started = time.monotonic()
        for chunk in export_stream(manifest, {"bench": maildir}, compresslevel=args.level):
            archive_bytes += len(chunk)
        elapsed = time.monotonic() - started

        content = sum(f.size for f in manifest.files)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"files:          {len(manifest.files)}")
        print(f"maildir bytes:  {content} ({content / 2**20:.0f} MiB)")
        print(f"archive bytes:  {archive_bytes} ({archive_bytes / 2**20:.0f} MiB)")
        print(f"elapsed:        {elapsed:.1f} s")
        print(f"throughput:     {content / 2**20 / elapsed:.1f} MiB/s (gzip level {args.level})")
        print(f"peak RSS:       {peak_kib / 1024:.1f} MiB (before export {rss_before / 1024:.1f})")
        print(f"cpus:           {os.cpu_count()}")
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
