"""Hostile archives through mailctl's reader and through the standard library's tarfile.

Evidence for docs/archive-format.md: each case runs in a child process, which reports
what the parser answered, its peak memory (VmHWM) above the baseline and the time taken.

    .venv/bin/python bench/archive_parsers.py [tar|manifest]  # the cases, as a table
    .venv/bin/python bench/archive_parsers.py FILE PARSER  # one archive, as JSON
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import resource
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

MIB = 1024 * 1024
MESSAGE = "maildirs/alice/cur/1700000000.M1P2.host,S=5:2,S"
BODY = b"hello"
LIMITS = {"max_total_bytes": 20 * 1024 * MIB, "max_files": 2_000_000}  # the defaults


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info


def _manifest(files: dict[str, bytes]) -> bytes:
    from mailctl.archive import FileEntry, MailboxEntry, Manifest

    return Manifest(
        domain="example.org",
        mailboxes=[MailboxEntry("alice@example.org", "{ARGON2ID}x", "maildirs/alice")],
        files=[
            FileEntry(p, len(d), hashlib.sha256(d).hexdigest(), 1_700_000_000 * 10**9)
            for p, d in files.items()
        ],
    ).to_json()


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], end: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        written = raw.getvalue()
    # Without ``end``, leave out the zero blocks that end a tar (a cut-off upload).
    return raw.getvalue() if end else written


def _gz_with_zeros(prefix: bytes, size: int) -> bytes:
    """One gzip stream: ``prefix``, then ``size`` zero bytes."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(MIB)
    parts = [compressor.compress(prefix)]
    parts += [compressor.compress(block) for _ in range(size // MIB)]
    return b"".join(parts) + compressor.flush()


def _checksummed(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


def big_extended_header() -> bytes:
    """A pax header that claims 256 MiB, followed by 256 MiB of zeros (250 KiB gzipped)."""
    header = _info("././@PaxHeader", tarfile.XHDTYPE, size=256 * MIB).tobuf(tarfile.USTAR_FORMAT)
    return _gz_with_zeros(header, 256 * MIB)


def big_gnu_long_name() -> bytes:
    """A GNU long-name member of 256 MiB: the name of the next member, all zeros."""
    header = _info("././@LongLink", tarfile.GNUTYPE_LONGNAME, size=256 * MIB)
    return _gz_with_zeros(header.tobuf(tarfile.GNU_FORMAT), 256 * MIB)


def corrupt_header_mid_archive() -> bytes:
    """Manifest first, one good file, then a header with a wrong checksum and one more file."""
    files = {MESSAGE: BODY, "maildirs/alice/cur/2:2,S": BODY}
    manifest = _manifest(files)
    head = _tar([(_info("manifest.json", size=len(manifest)), manifest)], end=False)
    good = _tar([(_info(MESSAGE, size=5), BODY)], end=False)
    bad = bytearray(_tar([(_info("maildirs/alice/cur/2:2,S", size=5), BODY)]))
    bad[148:150] = b"77"  # break the checksum of the last member's header
    return gzip.compress(head + good + bytes(bad))


def missing_end_marker() -> bytes:
    """A well-formed archive cut off right after its manifest (no end-of-archive blocks)."""
    manifest = _manifest({MESSAGE: BODY})
    members = [
        (_info(MESSAGE, size=5), BODY),
        (_info("manifest.json", size=len(manifest)), manifest),
    ]
    return gzip.compress(_tar(members, end=False))


def negative_size() -> bytes:
    """A member header whose size field reads -5."""
    header = bytearray(_info(MESSAGE, size=5).tobuf(tarfile.USTAR_FORMAT))
    header[124:136] = b"-0000000005\x00"
    return gzip.compress(_checksummed(header) + BODY.ljust(512, b"\x00") + bytes(1024))


def global_pax_header() -> bytes:
    """A global pax header that renames every later member to an absolute path."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        glob = tarfile.TarInfo("pax_global_header")
        glob.type = tarfile.XGLTYPE
        glob.pax_headers = {"path": "/etc/cron.d/evil"}
        tar.addfile(glob)
        tar.addfile(_info(MESSAGE, size=5), io.BytesIO(BODY))
    return gzip.compress(raw.getvalue())


def many_members() -> bytes:
    """200,000 empty files under one maildir (a large mailbox holds this many)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(200_000):
            tar.addfile(_info(f"maildirs/alice/cur/{1_700_000_000 + i}.M{i}P1.host:2,S"))
    return gzip.compress(raw.getvalue(), 1)


CASES: dict[str, Callable[[], bytes]] = {
    "big extended header": big_extended_header,
    "big GNU long name": big_gnu_long_name,
    "corrupt header mid-archive": corrupt_header_mid_archive,
    "missing end marker": missing_end_marker,
    "negative size": negative_size,
    "global pax header": global_pax_header,
    "200,000 members": many_members,
}


def _amplifying(key: str, item: str) -> bytes:
    """1 MB of one tiny list item, the shape that swells most as Python objects."""
    items = ",".join([item] * (1_000_000 // len(item)))
    return ('{"version": 1, ' + key + ": [" + items + "]}").encode()


def _big_manifest() -> bytes:
    """A valid manifest of 200,000 files (about 40 MB of JSON)."""
    files = [
        {
            "path": f"maildirs/alice/cur/{1_700_000_000 + i}.M{i}P1.host:2,S",
            "size": i,
            "sha256": hashlib.sha256(b"%d" % i).hexdigest(),
            "mtime_ns": 1_700_000_000 * 10**9 + i,
        }
        for i in range(200_000)
    ]
    data = json.loads(_manifest({}))
    data["files"] = files
    data["directories"] = ["maildirs/alice", "maildirs/alice/cur"]
    return json.dumps(data).encode()


MANIFESTS: dict[str, Callable[[], bytes]] = {
    "manifest: 1 MB of empty lists": lambda: _amplifying('"files"', "[]"),
    "manifest: 1 MB of empty objects": lambda: _amplifying('"directories"', "{}"),
    "manifest: 1 MB of numbers": lambda: _amplifying('"mailboxes"', "12345"),
    "manifest: 200,000 valid files": _big_manifest,
}


def run_shallow(manifest: Path, staging: Path) -> str:
    """mailctl's manifest reader (shallow_json, entries checked as they are read)."""
    from mailctl.archive import Manifest

    parsed = Manifest.from_json(manifest.read_bytes())
    return f"accepted ({len(parsed.files)} files)"


def run_pydantic(manifest: Path, staging: Path) -> str:
    """A pydantic model of the same shape: strict, unknown keys forbidden, and each list
    stopping at its first bad item (``fail_fast``), as a hostile manifest needs."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    class Strict(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    class File(Strict):
        path: Annotated[str, Field(min_length=1, max_length=1024)]
        size: Annotated[int, Field(ge=0)]
        sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")]
        mtime_ns: Annotated[int, Field(ge=-(2**63), lt=2**63)]

    class Mailbox(Strict):
        email: str
        password: str
        maildir: str

    class Alias(Strict):
        source: str
        destination: str

    class Key(Strict):
        selector: str
        key_type: str
        private_pem: str
        active: bool | None = None

    fail_fast = Field(fail_fast=True)

    class Model(Strict):
        version: int
        domain: str
        generated_at: str
        mailboxes: Annotated[list[Mailbox], fail_fast]
        aliases: Annotated[list[Alias], fail_fast]
        dkim_keys: Annotated[list[Key], fail_fast]
        directories: Annotated[list[str], fail_fast]
        files: Annotated[list[File], fail_fast]

    try:
        parsed = Model.model_validate_json(manifest.read_bytes())
    except ValidationError as exc:
        return f"ValidationError: {exc.error_count()} errors; first: {exc.errors()[0]['msg']}"
    return f"accepted ({len(parsed.files)} files)"


def run_hand(archive: Path, staging: Path) -> str:
    """mailctl's reader, as the importer calls it."""
    from mailctl.archive import verify_and_extract

    manifest = verify_and_extract(archive, staging, **LIMITS)  # type: ignore[arg-type]
    return f"accepted ({len(manifest.files)} files)"


def run_tarfile(archive: Path, staging: Path) -> str:
    """tarfile in stream mode, as an importer would use it: iterate, filter, read data.

    The ``data`` filter is asked about every member, as extraction would; it returns the
    member as it would be written (or raises for links out, devices and the like).
    """
    names = []
    with archive.open("rb") as handle, tarfile.open(fileobj=handle, mode="r|gz") as tar:
        for member in tar:
            filtered = tarfile.data_filter(member, str(staging))
            names.append(filtered.name)
            if member.isreg():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    while extracted.read(64 * 1024):
                        pass
    return f"accepted {len(names)} member(s): {', '.join(n[:40] for n in names[:3])}"


PARSERS = {"hand": run_hand, "tarfile": run_tarfile}
MANIFEST_PARSERS = {"shallow": run_shallow, "pydantic": run_pydantic}


def _high_water_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def child(archive: Path, parser: str) -> None:
    # Imported before the baseline, so the figure is the parsing alone.
    import pydantic  # noqa: F401

    import mailctl.archive  # noqa: F401

    # A parser that swells is stopped at 4 GiB rather than taking the machine with it.
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024 * MIB, 4 * 1024 * MIB))
    with TemporaryDirectory() as tmp:
        baseline = _high_water_kib()
        started = time.monotonic()
        try:
            run = PARSERS.get(parser) or MANIFEST_PARSERS[parser]
            outcome = run(archive, Path(tmp) / "staging")
        except Exception as exc:  # the answer is what we measure
            outcome = f"{type(exc).__name__}: {str(exc)[:110]}"
        print(
            json.dumps(
                {
                    "outcome": outcome,
                    "seconds": round(time.monotonic() - started, 2),
                    "extra_mib": round((_high_water_kib() - baseline) / 1024, 1),
                    "archive_bytes": archive.stat().st_size,
                }
            )
        )


def main() -> None:
    if len(sys.argv) == 3:
        child(Path(sys.argv[1]), sys.argv[2])
        return
    which = sys.argv[1] if len(sys.argv) == 2 else "all"  # "tar", "manifest" or "all"
    print(f"Python {sys.version.split()[0]}")
    for case in CASES if which in ("tar", "all") else ():
        with TemporaryDirectory() as tmp:
            archive = Path(tmp) / "archive.tar.gz"
            archive.write_bytes(CASES[case]())
            for parser in PARSERS:
                _report(case, archive, parser)
    for case in MANIFESTS if which in ("manifest", "all") else ():
        with TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "manifest.json"
            manifest.write_bytes(MANIFESTS[case]())
            for parser in MANIFEST_PARSERS:
                _report(case, manifest, parser)


def _report(case: str, archive: Path, parser: str) -> None:
    result = subprocess.run(
        [sys.executable, __file__, str(archive), parser],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(result.stdout)
    print(f"| {case} | {parser} | {row['outcome']} | {row['extra_mib']} MiB | {row['seconds']} s |")


if __name__ == "__main__":
    main()
