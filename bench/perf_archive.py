"""Benchmark domain export and import as a user runs them, against tar -czf of the same folder."""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figure

from mailctl.domain import passwords
from mailctl.storage.database import Database
from mailctl.storage.tables import Domain, User

SECTION = "archive"
DOMAIN = "archive-bench.example"
MAILBOXES = 4
# The exporter's gzip level (export_stream's default), given to gzip for tar as well.
GZIP_LEVEL = 6
PEAK_RSS_TARGET_MB = 150
RATIO_TARGET = 0.8
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a throwaway data folder's admin


def _corpus(rng: random.Random, size: int) -> bytes:
    """Text that compresses like mail prose: words of a Zipf-like vocabulary, in lines."""
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(6000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    words = rng.choices(vocabulary, weights, k=size // 5)
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\r\n".join(lines).encode()[:size]


def _message(rng: random.Random, text: bytes, binary: bytes, index: int, size: int) -> bytes:
    """One message of about ``size`` bytes: headers, prose, and base64 parts when large."""
    headers = (
        f"Return-Path: <sender{index % 97}@example.net>\r\n"
        f"Delivered-To: user@{DOMAIN}\r\n"
        f"Received: from mx{index % 7}.example.net ([192.0.2.{index % 250}])\r\n"
        f"\tby mail.{DOMAIN} with ESMTPS id {index:08X}\r\n"
        f"Message-ID: <{index}.{rng.getrandbits(48):x}@example.net>\r\n"
        f"Date: Mon, {1 + index % 28} Dec 2026 10:{index % 60:02d}:00 +0000\r\n"
        f"From: Sender {index % 97} <sender{index % 97}@example.net>\r\n"
        f"To: user@{DOMAIN}\r\nSubject: report {index}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    body_size = max(200, size - len(headers))
    if size < 64 * 1024:
        start = rng.randrange(0, len(text) - body_size)
        return headers + text[start : start + body_size] + b"\r\n--b1--\r\n"
    # A large message: a little prose and an attachment, mostly already compressed data
    # (photos, PDFs) in base64, some of it text (documents).
    prose = text[:2000]
    raw_size = body_size * 3 // 4
    kind = index % 3
    pool = text if kind == 0 else binary
    start = rng.randrange(0, len(pool) - raw_size)
    attachment = base64.encodebytes(pool[start : start + raw_size]).replace(b"\n", b"\r\n")
    part = (
        b'\r\n--b1\r\nContent-Type: application/octet-stream; name="file.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return headers + prose + part + attachment + b"--b1--\r\n"


def build_maildirs(domain_dir: Path, total: int, seed: int = 7) -> tuple[int, int]:
    """Fill ``MAILBOXES`` maildirs under ``domain_dir`` with ~``total`` bytes of mail."""
    rng = random.Random(seed)
    text = _corpus(rng, 16 * 1024 * 1024)
    binary = rng.randbytes(16 * 1024 * 1024)
    folders = []
    for box in range(MAILBOXES):
        root = domain_dir / f"user{box}"
        for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"):
            (root / sub).mkdir(parents=True)
        folders += [root / "cur", root / "cur", root / "cur", root / ".Sent/cur", root / "new"]
    written = count = 0
    while written < total:
        # Most mail is small; one message in a hundred is a big one with an attachment.
        if rng.random() < 0.01:
            size = rng.randint(1, 6) * 1024 * 1024
        else:
            size = int(2048 * (25 ** rng.random()))  # 2 kB to 50 kB, log-uniform
        data = _message(rng, text, binary, count, size)
        folder = folders[count % len(folders)]
        flags = "" if folder.name == "new" else ":2,S"
        name = f"{1765000000 + count}.M{count}P4242.mail,S={len(data)}{flags}"
        (folder / name).write_bytes(data)
        written += len(data)
        count += 1
    return count, written


def _run(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[float, float]:
    """Run ``argv`` under /usr/bin/time; return its wall time (s) and peak RSS (MB)."""
    if not Path("/usr/bin/time").is_file():
        raise RuntimeError("perf_archive needs /usr/bin/time: apt-get install time")
    with tempfile.NamedTemporaryFile("r", dir=env["MAILCTL_DATA_DIR"]) as report:
        # /usr/bin/time measures the program alone (wait4 of a child forked from this
        # process would also count the pages this process had when it forked).
        timed = ["/usr/bin/time", "-f", "%e %M", "-o", report.name, *argv]
        done = subprocess.run(timed, env=env, input=stdin, capture_output=True, check=False)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"{argv[:3]} failed ({done.returncode}): {tail}")
        seconds, kib = report.read().split()[-2:]
    return float(seconds), int(kib) / 1024


def _env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env["MAILCTL_DATA_DIR"] = str(data_dir)
    if database_url:
        env["MAILCTL_DATABASE_URL"] = database_url
    env["COLUMNS"] = "120"
    return env


def _add_domain(database_url: str, data_dir: Path) -> None:
    """The domain's rows, straight into the database (one hash serves every mailbox)."""
    url = database_url or f"sqlite:///{data_dir / 'mailctl.db'}"
    database = Database(url)
    try:
        hashed = passwords.hash_password("bench-mailbox-password", "SHA512-CRYPT")
        with database.engine.begin() as conn:
            conn.execute(insert(Domain).values(name=DOMAIN))
            domain_id = conn.execute(select(Domain.id).where(Domain.name == DOMAIN)).scalar_one()
            conn.execute(
                insert(User),
                [
                    {"domain_id": domain_id, "email": f"user{i}@{DOMAIN}", "password": hashed}
                    for i in range(MAILBOXES)
                ],
            )
    finally:
        database.dispose()


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def run(ctx: Any) -> list[Figure]:
    """Build a domain of mail, then time tar -czf, ``mailctl export`` and ``mailctl import``."""
    total = (100 if ctx.quick else 1024) * 1024 * 1024
    work = Path(ctx.workdir) / "archive"
    shutil.rmtree(work, ignore_errors=True)
    source, target = work / "source", work / "target"
    mailctl = str(Path(sys.executable).with_name("mailctl"))
    if ctx.backend != "sqlite":
        # The import needs a second database beside the export's: each data folder's own
        # SQLite file gives it one. Export and import read and write the same files on
        # every backend; only the rows of one domain differ.
        note = "measured on SQLite only: each data folder of the run has its own file"
        return [Figure(SECTION, f"export and import ({ctx.backend})", 0, "", note=note)]
    try:
        env_source = _env(source, "")
        env_target = _env(target, "")
        for env in (env_source, env_target):
            Path(env["MAILCTL_DATA_DIR"]).mkdir(parents=True)
            _run([mailctl, "init", "--password-stdin"], env, ADMIN_PASSWORD.encode() + b"\n")
        _add_domain("", source)
        domain_dir = source / "mail" / DOMAIN
        count, _ = build_maildirs(domain_dir, total)
        content = _tree_bytes(domain_dir)
        # A cold page cache would time the disk, not the programs: read everything once.
        _run(["tar", "-cf", "/dev/null", "-C", str(domain_dir), "."], env_source)

        tar_out = work / "tar.tar.gz"
        tar_time, tar_rss = _run(
            [
                "tar",
                f"--use-compress-program=gzip -{GZIP_LEVEL}",
                "-cf",
                str(tar_out),
                "-C",
                str(domain_dir),
                ".",
            ],
            env_source,
        )
        tar_size = tar_out.stat().st_size
        tar_out.unlink()

        archive = work / "export.tar.gz"
        export_time, export_rss = _run(
            [mailctl, "export", DOMAIN, "--output", str(archive)], env_source
        )
        archive_size = archive.stat().st_size
        import_time, import_rss = _run([mailctl, "import", str(archive)], env_target)
        imported = _tree_bytes(target / "mail" / DOMAIN)
        assert imported == content, (imported, content)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = content / 2**20
    tar_speed = mb / tar_time
    note = (
        f"{mb:,.0f} MiB in {count:,} messages, {MAILBOXES} mailboxes; archive "
        f"{archive_size / 2**20:,.0f} MiB (tar {tar_size / 2**20:,.0f} MiB), gzip -{GZIP_LEVEL}"
    )

    def speed(name: str, seconds: float) -> Figure:
        ratio = tar_time / seconds
        return Figure(
            SECTION,
            f"{name} ({ctx.backend})",
            round(mb / seconds, 1),
            "MiB/s",
            limit_name=f"tar -czf (gzip -{GZIP_LEVEL}) of the same maildirs",
            limit_value=round(tar_speed, 1),
            ratio=round(ratio, 2),
            target=f">= {RATIO_TARGET} x tar",
            met=ratio >= RATIO_TARGET,
            note=f"{seconds:.1f} s against {tar_time:.1f} s; {note}",
        )

    def memory(name: str, peak: float) -> Figure:
        return Figure(
            SECTION,
            f"{name} peak RSS ({ctx.backend})",
            round(peak, 1),
            "MB",
            target=f"< {PEAK_RSS_TARGET_MB} MB",
            met=peak < PEAK_RSS_TARGET_MB,
            note=f"the mailctl process (tar and gzip: {tar_rss:.1f} MB)",
        )

    return [
        speed("mailctl export", export_time),
        speed("mailctl import", import_time),
        memory("mailctl export", export_rss),
        memory("mailctl import", import_rss),
    ]


def main() -> None:
    """Run this section alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 MB instead of 1 GB")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    workdir = Path(tempfile.mkdtemp(prefix="perf-archive-", dir=repo))
    try:
        ctx = types.SimpleNamespace(
            quick=args.quick, backend="sqlite", database_url="", workdir=workdir, repo=repo
        )
        for figure in run(ctx):
            shown = f"{figure.value:>8} {figure.unit:5} {figure.target:12}"
            ratio = "" if figure.ratio is None else f"ratio {figure.ratio}"
            print(f"{figure.name:40} {shown} {ratio:10} {figure.note}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
