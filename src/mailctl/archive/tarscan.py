"""Read a gzip-compressed tar as a stream of members, within limits checked as it inflates."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mailctl.domain.numbers import ascii_int
from mailctl.errors import InvalidInputError, TooLargeError

BLOCK = 512
RECORD = 20 * BLOCK
CHUNK = 64 * 1024
# Our own extended headers hold one path, a size and an mtime: a few hundred bytes.
MAX_EXTENDED_HEADER = 64 * 1024
# Below this much output the expansion ratio is not judged: a small archive of empty
# folders or the zeros that pad a tar's end compress far better than mail does.
RATIO_FLOOR = 16 * 1024 * 1024

_REGULAR = (b"0", b"\x00")
_REFUSED_TYPES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a fifo",
    b"K": "a link",
    b"g": "a global pax header",
}


class Gunzip:
    """Decompresses a gzip stream on demand, refusing it once it outgrows its limits.

    Output is produced in bounded steps and checked after each: more than ``limit``
    bytes in all, or (past RATIO_FLOOR) more than ``max_ratio`` bytes out per byte
    read, and the archive is refused. A bomb so costs a few chunks of memory and a
    small multiple of its own size in decompression work, and nothing on disk.
    """

    def __init__(self, source: BinaryIO, limit: int, max_ratio: int) -> None:
        self._source = source
        self._limit = limit
        self._max_ratio = max_ratio
        self._zlib = zlib.decompressobj(31)
        self._pending = b""
        self._buffer = bytearray()
        self._started = False
        self.total = 0
        self.consumed = 0

    def skip(self, size: int) -> int:
        """Read and drop up to ``size`` bytes, a chunk at a time; how many there were."""
        skipped = 0
        while skipped < size:
            data = self.read(min(CHUNK, size - skipped))
            if not data:
                break
            skipped += len(data)
        return skipped

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only where the gzip stream ends."""
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self) -> bool:
        decomp = self._zlib
        if decomp.unconsumed_tail:
            data = decomp.unconsumed_tail
        elif self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._source.read(CHUNK)
            self.consumed += len(data)
            if not self._started:
                if data[:2] != b"\x1f\x8b":
                    raise InvalidInputError("The archive is not a gzip file (.tar.gz).")
                self._started = True
            if not data:
                if decomp.eof:
                    return False
                raise InvalidInputError("The archive is truncated: the gzip stream ends early.")
        if decomp.eof:
            # Concatenated gzip members are one gzip file (RFC 1952, section 2.2).
            decomp = self._zlib = zlib.decompressobj(31)
        try:
            out = decomp.decompress(data, 4 * CHUNK)
        except zlib.error as exc:
            raise InvalidInputError(f"The archive is corrupt: gzip data error ({exc}).") from exc
        if decomp.eof:
            self._pending = decomp.unused_data
        self.total += len(out)
        if self.total > self._limit:
            raise TooLargeError(
                f"The archive decompresses to more than {self._limit} bytes; refused."
            )
        if self.total > RATIO_FLOOR and self.total > self._max_ratio * self.consumed:
            raise TooLargeError(
                f"The archive decompresses to more than {self._max_ratio} times its size "
                "(a gzip bomb?); refused."
            )
        self._buffer += out
        return True


@dataclass(frozen=True)
class Member:
    """One tar member: its name (pax and GNU long names folded in), type and size."""

    name: str
    kind: bytes
    size: int


def _number(field: bytes) -> int:
    if field[:1] == b"\x80":
        # GNU base-256 for values too large for octal digits.
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError as exc:
        raise InvalidInputError("The archive is corrupt: a tar header has a bad number.") from exc


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"The archive has a member name that is not UTF-8: {raw!r}."
        ) from exc


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos : pos + 1] != b"\x00":
        length_text, sep, _ = data[pos : pos + 32].partition(b" ")
        length = ascii_int(length_text.decode("ascii", "replace")) or 0
        record = data[pos : pos + length]
        if not sep or length <= len(length_text) + 1 or not record.endswith(b"\n"):
            raise InvalidInputError("The archive is corrupt: a pax header is malformed.")
        key, eq, value = record[len(length_text) + 1 : -1].partition(b"=")
        if not eq:
            raise InvalidInputError("The archive is corrupt: a pax record lacks '='.")
        records[_text(key)] = _text(value)
        pos += length
    if records.get("hdrcharset") == "BINARY":
        raise InvalidInputError("The archive has member names that are not UTF-8.")
    return records


def _signed_sum(block: bytes) -> int:
    # Some old tars summed the header as signed chars.
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    return unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 127)


def skip_padding(src: Gunzip, size: int) -> None:
    pad = -size % BLOCK
    if pad and len(src.read(pad)) != pad:
        raise InvalidInputError("The archive is truncated inside a member.")


def members(src: Gunzip) -> Iterator[Member]:
    """The tar members, with pax and GNU long names folded in; data is left to the caller."""
    overrides: dict[str, str] = {}
    while True:
        block = src.read(BLOCK)
        if len(block) < BLOCK:
            raise InvalidInputError("The archive is truncated: the tar end marker is missing.")
        if block == bytes(BLOCK):
            return
        stored = _number(block[148:156])
        unsigned = sum(block) - sum(block[148:156]) + 8 * 32
        if stored != unsigned and stored != _signed_sum(block):
            raise InvalidInputError("The archive is corrupt: a tar header checksum is wrong.")
        kind = block[156:157]
        size = _number(block[124:136])
        name = block[:100].split(b"\x00", 1)[0]
        if block[257:263] == b"ustar\x00" and block[345] != 0:
            name = block[345:500].split(b"\x00", 1)[0] + b"/" + name
        if kind in (b"x", b"L"):
            if size > MAX_EXTENDED_HEADER:
                raise InvalidInputError(
                    f"The archive has an extended tar header of {size} bytes; refused."
                )
            data = src.read(size)
            if len(data) != size:
                raise InvalidInputError("The archive is truncated inside a tar header.")
            skip_padding(src, size)
            if kind == b"x":
                overrides.update(_pax_records(data))
            else:
                overrides["path"] = _text(data.split(b"\x00", 1)[0])
            continue
        member_name = overrides.get("path", _text(name))
        if "size" in overrides:
            pax_size = ascii_int(overrides["size"], max_digits=20)
            if pax_size is None:
                raise InvalidInputError("The archive is corrupt: a pax size is bad.")
            size = pax_size
        overrides = {}
        shown = member_name[:200]
        if size < 0:
            raise InvalidInputError(f"The archive member {shown!r} has a negative size.")
        if kind in _REFUSED_TYPES:
            raise InvalidInputError(
                f"The archive member {shown!r} is {_REFUSED_TYPES[kind]}; only regular files "
                "and directories are accepted."
            )
        if kind == b"5":
            yield Member(member_name.rstrip("/"), kind, 0)
        elif kind in _REGULAR:
            yield Member(member_name, b"0", size)
        else:
            raise InvalidInputError(
                f"The archive member {shown!r} has the unsupported tar type {kind!r}."
            )
