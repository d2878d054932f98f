"""Hostile archives through the real import endpoint: refused, nothing written, nothing left.

Each archive of the corpus is posted to ``POST /import/domain`` of a live server. Every
one must get a 4xx JSON answer; afterwards the files under the test's folder are exactly
as before (outside the data folder and inside it, the database aside), the imports
folder is empty and no domain exists. Per archive the test measures what the server
process wrote (``wchar`` of /proc/self/io: the upload spool included), the peak of
Python memory (tracemalloc) and the seconds the request took.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.config import Settings

MIB = 1024 * 1024
MESSAGE = "maildirs/a/cur/1700000000.M1P1.host:2,S"
BODY = b"Subject: hi\r\n\r\nhello\r\n"
MAX_FILES = 100
MAX_BYTES = 1024 * MIB
MAX_MANIFEST = 256 * 1024


@dataclass(frozen=True)
class Case:
    """A hostile archive, the status it must get and words its message must hold."""

    name: str
    archive: bytes
    status: int
    words: str


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mtime = 1_700_000_000
    return info


def _manifest(files: dict[str, bytes], directories: tuple[str, ...] = ()) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "domain": "example.com",
            "generated_at": "2024-05-01T12:00:00+00:00",
            "mailboxes": [
                {"email": "a@example.com", "password": "{PLAIN}x", "maildir": "maildirs/a"}
            ],
            "aliases": [],
            "dkim_keys": [],
            "directories": list(directories),
            "files": [
                {
                    "path": path,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "mtime_ns": 1_700_000_000 * 10**9,
                }
                for path, data in files.items()
            ],
        }
    ).encode()


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], manifest: bytes | None = None) -> bytes:
    """A raw pax tar of ``members``, then ``manifest`` as the last member if given."""
    raw = io.BytesIO()
    entries = list(members)
    if manifest is not None:
        entries.append((_info("manifest.json", size=len(manifest)), manifest))
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def _with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """The good archive with one more member before its manifest."""
    good = [(_info(MESSAGE, size=len(BODY)), BODY)]
    return gzip.compress(_tar([*good, (member, data)], _manifest({MESSAGE: BODY})))


def _link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = _info(name, kind)
    info.linkname = target
    return info


def _named(name: str) -> tarfile.TarInfo:
    """A one-byte file whose name travels in a pax header, byte for byte."""
    info = _info("maildirs/a/cur/placeholder", size=1)
    info.pax_headers = {"path": name}
    return info


def _zeros_gzip(size: int) -> bytes:
    """``size`` zero bytes as a gzip member, compressed a MiB at a time (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MIB)
    out = [compressor.compress(block) for _ in range(size // MIB)]
    out.append(compressor.flush())
    return b"".join(out)


def _zeros_member(size: int) -> bytes:
    """A gzip'd tar whose one file, listed nowhere, is ``size`` zero bytes; no manifest."""
    header = gzip.compress(_info("maildirs/a/cur/zeros", size=size).tobuf(tarfile.PAX_FORMAT))
    return header + _zeros_gzip(size)


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x55]) + data[offset + 1 :]


def _bad_checksum() -> bytes:
    header = bytearray(_info(MESSAGE, size=len(BODY)).tobuf(tarfile.USTAR_FORMAT))
    header[148:156] = b"0000000\x00"
    return gzip.compress(bytes(header) + BODY.ljust(512, b"\x00") + bytes(1024))


def _nested_manifest(key: str, depth: int) -> bytes:
    value = "[" * depth + "]" * depth
    return gzip.compress(_tar([], f'{{"version": 1, "{key}": {value}}}'.encode()))


def corpus(outside: Path) -> Iterator[Case]:
    """The hostile archives; ``outside`` is a folder an escaping name would write into."""
    good = _manifest({MESSAGE: BODY})
    # bombs
    yield Case("gzip bomb: 256 MiB of zeros", _zeros_member(256 * MIB), 413, "times its size")
    zeros_after = gzip.compress(_tar([(_info(MESSAGE, size=len(BODY)), BODY)], good))
    yield Case("gzip bomb: zeros after the end", zeros_after + _zeros_gzip(256 * MIB), 413, "times")
    many = [(_info(f"maildirs/a/cur/{i}", size=0), b"") for i in range(MAX_FILES + 1)]
    yield Case("many small members", gzip.compress(_tar(many)), 413, f"more than {MAX_FILES}")
    huge = gzip.compress(_info("maildirs/a/cur/huge", size=1 << 40).tobuf(tarfile.PAX_FORMAT))
    yield Case("a file claiming 1 TiB", huge, 413, "bytes of files")
    big_manifest = b'{"version": 1, "pad": "' + b"x" * MAX_MANIFEST + b'"}'
    yield Case("manifest over its limit", gzip.compress(_tar([], big_manifest)), 413, "manifest")
    # links, devices, fifos
    yield Case(
        "symlink",
        _with(_link("maildirs/a/cur/l", tarfile.SYMTYPE, "/etc/shadow")),
        400,
        "symbolic link",
    )
    yield Case(
        "hardlink", _with(_link("maildirs/a/cur/h", tarfile.LNKTYPE, "/etc/shadow")), 400, "hard"
    )
    yield Case("character device", _with(_info("maildirs/a/cur/tty", tarfile.CHRTYPE)), 400, "dev")
    yield Case("block device", _with(_info("maildirs/a/cur/sda", tarfile.BLKTYPE)), 400, "device")
    yield Case("fifo", _with(_info("maildirs/a/cur/pipe", tarfile.FIFOTYPE)), 400, "fifo")
    # traversal and hostile names
    yield Case("dot-dot", _with(_info("maildirs/a/../../../escaped", size=1), b"x"), 400, "'..'")
    absolute = str(outside / "absolute")
    yield Case("absolute path", _with(_info(absolute, size=1), b"x"), 400, "absolute path")
    yield Case("NUL in a name", _with(_named("maildirs/a/cur/x\x00y"), b"x"), 400, "NUL")
    yield Case("newline in a name", _with(_named("maildirs/a/cur/x\ny"), b"x"), 400, "control")
    yield Case("backslash", _with(_named("maildirs\\a\\..\\..\\x"), b"x"), 400, "backslash")
    long_name = "maildirs/a/cur/" + "n" * 300
    yield Case("name over 255 bytes", _with(_named(long_name), b"x"), 400, "over 255 bytes")
    long_path = "maildirs/a/" + "/".join(["d" * 200] * 6)
    yield Case("path over 1024 bytes", _with(_named(long_path), b"x"), 400, "longer than")
    # nesting
    deep = "maildirs/a/" + "/".join(["d"] * 40)
    yield Case("folders 42 deep", _with(_info(deep, tarfile.DIRTYPE)), 400, "nested more than")
    yield Case("manifest 100,000 deep", _nested_manifest("domain", 100_000), 400, "nested")
    yield Case("nested list item", _nested_manifest("files", 3), 400, "nested more than")
    # duplicates
    yield Case("duplicate file", _with(_info(MESSAGE, size=len(BODY)), BODY), 400, "twice")
    twice = gzip.compress(
        _tar(
            [
                (_info("manifest.json", size=len(good)), good),
                (_info(MESSAGE, size=len(BODY)), BODY),
            ],
            good,
        )
    )
    yield Case("duplicate manifest", twice, 400, "twice")
    folder = _info("maildirs/a/cur", tarfile.DIRTYPE)
    dirs = _manifest({}, ("maildirs/a", "maildirs/a/cur"))
    same_dir = gzip.compress(_tar([(folder, b""), (folder, b"")], dirs))
    yield Case("duplicate folder", same_dir, 400, "twice")
    # truncated or corrupt
    whole = gzip.compress(_tar([(_info(MESSAGE, size=len(BODY)), BODY)], good))
    yield Case("truncated gzip", whole[: len(whole) // 2], 400, "truncated")
    yield Case("corrupt gzip", _flip(whole, len(whole) // 2), 400, "")
    yield Case("not gzip", _tar([], good), 400, "not a gzip file")
    yield Case("bad tar checksum", _bad_checksum(), 400, "checksum")
    global_header = _info("pax_global_header", tarfile.XGLTYPE)
    yield Case("global pax header", _with(global_header), 400, "global pax header")
    # the manifest's place and what it lists
    middle = gzip.compress(
        _tar(
            [
                (_info(MESSAGE, size=len(BODY)), BODY),
                (_info("manifest.json", size=len(good)), good),
                (_info("maildirs/a/cur/later", size=1), b"x"),
            ]
        )
    )
    yield Case("manifest in the middle", middle, 400, "first or the last member")
    unlisted = gzip.compress(
        _tar([(_info("maildirs/a/cur/unlisted", size=MIB), bytes(MIB))], _manifest({}))
    )
    yield Case("mail before a manifest not listing it", unlisted, 400, "not in the manifest")
    tampered = gzip.compress(_tar([(_info(MESSAGE, size=len(BODY)), BODY.upper())], good))
    yield Case("mail not matching its checksum", tampered, 400, "SHA-256")
    no_manifest = gzip.compress(_tar([(_info(MESSAGE, size=len(BODY)), BODY)]))
    yield Case("no manifest", no_manifest, 400, "no manifest.json")


def _snapshot(root: Path, skip: Callable[[Path], bool]) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``root``: mode, size and mtime, by relative path."""
    found = {}
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(folder, name)
            if skip(path):
                continue
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                # A folder's size and mtime change with what comes and goes inside it.
                found[str(path.relative_to(root))] = (st.st_mode, 0, 0)
            else:
                found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def _written() -> int:
    with open("/proc/self/io") as io_counters:
        return next(int(line.split()[1]) for line in io_counters if line.startswith("wchar:"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """A server whose import limits are small enough to reach in a test."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_username="admin",
        max_import_bytes=MAX_BYTES,
        max_import_files=MAX_FILES,
        max_import_manifest_bytes=MAX_MANIFEST,
    )


@pytest.mark.security(
    finding=5,
    claim="Thirty-two hostile archives (gzip bombs, links, devices, traversal, hostile "
    "names, deep nesting, duplicates, corrupt gzip, a misplaced manifest) sent to the "
    "import endpoint get a 4xx JSON answer, write no mail to disk, leave no file "
    "behind and add no row.",
)
def test_hostile_archives_are_refused_and_leave_nothing(
    api: httpx.Client,
    server: LiveServer,
    tmp_path: Path,
    figure: Callable[[str, object], None],
) -> None:
    """Every archive of the corpus: 4xx JSON, the tree unchanged, imports empty, no domain."""
    data_dir = server.ctx.settings.data_dir
    imports = data_dir / "imports"
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    cases = list(corpus(outside))
    assert len(cases) >= 25

    def database_file(path: Path) -> bool:
        return path.name.startswith("mailctl.db")

    # The server makes its folders at the first import: one that is not gzip at all.
    warm_up = api.post("/import/domain", files={"archive": ("empty.tar.gz", b"")})
    assert warm_up.status_code == 400, warm_up.text
    problems = []
    written: dict[str, int] = {}
    peaks: dict[str, float] = {}
    seconds: dict[str, float] = {}
    tracemalloc.start()
    try:
        for case in cases:
            before = _snapshot(tmp_path, database_file)
            tracemalloc.reset_peak()
            start_written, started = _written(), time.monotonic()
            response = api.post(
                "/import/domain", files={"archive": ("hostile.tar.gz", case.archive)}
            )
            seconds[case.name] = round(time.monotonic() - started, 2)
            written[case.name] = _written() - start_written
            peaks[case.name] = tracemalloc.get_traced_memory()[1] / MIB
            body = response.json()
            if response.status_code != case.status or body.get("result") is not False:
                problems.append(f"{case.name}: {response.status_code} {response.text[:200]}")
            elif case.words not in body.get("msg", ""):
                problems.append(f"{case.name}: message {body.get('msg')!r}")
            after = _snapshot(tmp_path, database_file)
            if after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))[:3]
                problems.append(f"{case.name}: the files changed: {changed}")
            if any(imports.iterdir()) or outside.exists():
                problems.append(f"{case.name}: left {sorted(imports.iterdir())} or {outside}")
    finally:
        tracemalloc.stop()

    domains = api.get("/domains").json()["domains"]
    assert domains == []
    assert api.get("/trash").json()["trash"] == []
    upload = {case.name: len(case.archive) for case in cases}
    beyond_upload = {name: written[name] - upload[name] for name in written}
    figure("hostile archives", len(cases))
    figure("most bytes written beyond the upload itself", max(beyond_upload.values()))
    figure("bytes written for the 256 MiB gzip bomb", written[cases[0].name])
    figure("peak Python memory MiB (worst archive)", round(max(peaks.values()), 1))
    figure("seconds (slowest archive)", max(seconds.values()))
    assert problems == [], "\n".join(problems)
    # The server wrote the upload to its spool, and no byte of mail to disk: a refused
    # archive costs its own size, plus a little for the database and logs.
    assert max(beyond_upload.values()) < 256 * 1024, beyond_upload
