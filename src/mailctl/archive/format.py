"""The domain archive format: a gzip-compressed tar ending in a JSON manifest.

An archive holds one mail domain, byte-exact, so it can be restored on this host or
moved to another one::

    maildirs/<localpart>/                    one directory member per maildir directory
    maildirs/<localpart>/cur/<message>       one regular-file member per file, in walk order
    maildirs/<localpart>/.Sent/cur/<message> (Dovecot folders, index files, uidlists too)
    ...
    manifest.json                            the LAST member (an importer also takes it first)

The tar is POSIX pax (UTF-8 names of any length), compressed as one gzip stream. Only
directories and regular files appear under ``maildirs/``: symlinks, hard links, devices
and fifos are never written and are refused on import. Files in a maildir's ``tmp/``
are deliveries still in progress (they move to ``new/`` when complete), so only the
empty ``tmp/`` directory is kept.

The manifest comes last because the exporter computes each file's size and SHA-256
while streaming it, reading every file exactly once and never seeking back; the
importer therefore reads an archive twice (see reader). It is a UTF-8 JSON object of
exactly this shape, nested no deeper::

    {
      "version": 1,
      "domain": "example.org",
      "generated_at": "2024-05-01T12:00:00+00:00",          (UTC, ISO 8601)
      "mailboxes": [{"email": "a@example.org", "password": "{ARGON2ID}$argon2id$...",
                     "maildir": "maildirs/a"}],
      "aliases": [{"source": "x@example.org", "destination": "a@example.org"}],
      "dkim_keys": [{"selector": "mail", "key_type": "rsa", "private_pem": "-----BEGIN...",
                     "active": true}],                    (false: retired by a rotation)
      "directories": ["maildirs/a", "maildirs/a/cur", ...],
      "files": [{"path": "maildirs/a/cur/1700000000.M1P2.host,S=123:2,S",
                 "size": 123, "sha256": "<64 hex digits>", "mtime_ns": 1700000000123456789}]
    }

Paths are relative POSIX paths of archive members; a mailbox's ``maildir`` is the
directory that holds its files. ``mtime_ns`` is the modification time in integer
nanoseconds, because a float of seconds cannot hold a nanosecond timestamp exactly.
The archive holds password hashes and DKIM private keys: it is as secret as the server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailctl.archive.shallow_json import ShallowJson
from mailctl.errors import InvalidInputError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MAILDIRS_DIR = "maildirs"
# Folders and files may nest this many path components deep (maildirs/<localpart>/...)
# unless the caller allows otherwise; Dovecot's own folder layouts stay far below it.
MAX_PATH_DEPTH = 32
# Linux refuses longer names (NAME_MAX); a whole path stays well inside PATH_MAX once
# joined to the staging and mail folders.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# ASCII names without '/', '\\' or control characters, none of them '.' or '..' (checked by
# the caller, with the length and depth), below maildirs/.
_PLAIN_PATH = re.compile(r"maildirs(?:/(?!\.(?:/|$))[\x20-\x2e\x30-\x5b\x5d-\x7e]{1,255})+")


def check_member_path(
    path: str, *, what: str = "Archive member", max_depth: int = MAX_PATH_DEPTH
) -> str:
    """Return ``path`` if it is a safe relative POSIX path under ``maildirs/``.

    Refused (InvalidInputError): empty, absolute, ``.``/``..``/empty components,
    backslashes, NUL and other control characters (a newline included), anything
    outside ``maildirs/``, ``maildirs/`` itself, names over MAX_NAME_BYTES, paths over
    MAX_PATH_BYTES or more than ``max_depth`` components deep. Clean paths have exactly
    one spelling, so duplicate checks on the strings are duplicate checks on the files.
    """
    if (
        _PLAIN_PATH.fullmatch(path)
        and len(path) <= MAX_PATH_BYTES
        and path.count("/") < max_depth
        and ".." not in path
    ):
        return path  # the common case, checked at once; the rest says what is wrong
    if not path:
        raise InvalidInputError(f"{what} has an empty name.")
    shown = path[:200]
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidInputError(f"{what} {shown!r}... is longer than {MAX_PATH_BYTES} bytes.")
    if path.startswith("/"):
        raise InvalidInputError(f"{what} {path!r} is an absolute path.")
    if "\\" in path:
        raise InvalidInputError(f"{what} {path!r} contains a backslash.")
    if "\x00" in path:
        raise InvalidInputError(f"{what} {path!r} contains a NUL character.")
    if _CONTROL.search(path):
        raise InvalidInputError(f"{what} {path!r} contains a control character.")
    parts = path.split("/")
    if len(parts) > max_depth:
        raise InvalidInputError(f"{what} {shown!r} is nested more than {max_depth} levels deep.")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in parts):
        raise InvalidInputError(f"{what} {shown!r} has a name over {MAX_NAME_BYTES} bytes.")
    if ".." in parts:
        raise InvalidInputError(f"{what} {path!r} contains '..'.")
    if any(part in ("", ".") for part in parts):
        raise InvalidInputError(f"{what} {path!r} has an empty or '.' path component.")
    if parts[0] != MAILDIRS_DIR or len(parts) < 2:
        raise InvalidInputError(f"{what} {path!r} is outside {MAILDIRS_DIR}/.")
    return path


def maildir_path(localpart: str) -> str:
    """The archive directory of the mailbox ``localpart`` (``maildirs/<localpart>``)."""
    if localpart in ("", ".", "..") or "/" in localpart:
        raise InvalidInputError(f"The local part {localpart!r} cannot name a maildir.")
    return check_member_path(f"{MAILDIRS_DIR}/{localpart}", what="Maildir")


@dataclass(frozen=True)
class MailboxEntry:
    """A mailbox row: its address, stored ``{SCHEME}...`` password hash and maildir."""

    email: str
    password: str
    maildir: str


@dataclass(frozen=True)
class AliasEntry:
    """An alias row: mail for ``source`` goes to ``destination``."""

    source: str
    destination: str


@dataclass(frozen=True)
class DkimKeyEntry:
    """A DKIM signing key of the domain, private key in PEM."""

    selector: str
    key_type: str
    private_pem: str
    # Whether the key signs; None in archives written before the flag, where the last key
    # listed is the active one.
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One archived file: member path, byte size, SHA-256 (hex) and mtime (ns)."""

    path: str
    size: int
    sha256: str
    mtime_ns: int


def _indented(items: Iterable[object]) -> Iterator[bytes]:
    # Each item as json.dumps(indent=1) writes it two levels down: a list in the object.
    separator = b"\n"
    for item in items:
        text = json.dumps(item, indent=1, ensure_ascii=False)
        yield separator + ("  " + text.replace("\n", "\n  ")).encode("utf-8")
        separator = b",\n"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Manifest:
    """The archive manifest: what the domain holds and what every archived file must be."""

    domain: str
    mailboxes: list[MailboxEntry] = field(default_factory=list)
    aliases: list[AliasEntry] = field(default_factory=list)
    dkim_keys: list[DkimKeyEntry] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    generated_at: datetime = field(default_factory=_utc_now)
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The manifest as the JSON-ready object documented in this module."""
        return {
            "version": self.version,
            "domain": self.domain,
            "generated_at": self.generated_at.astimezone(UTC).isoformat(),
            "mailboxes": [
                {"email": m.email, "password": m.password, "maildir": m.maildir}
                for m in self.mailboxes
            ],
            "aliases": [{"source": a.source, "destination": a.destination} for a in self.aliases],
            "dkim_keys": [
                {
                    "selector": k.selector,
                    "key_type": k.key_type,
                    "private_pem": k.private_pem,
                    **({} if k.active is None else {"active": k.active}),
                }
                for k in self.dkim_keys
            ],
            "directories": list(self.directories),
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "mtime_ns": f.mtime_ns}
                for f in self.files
            ],
        }

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON bytes, one entry per line for readable diffs."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False).encode("utf-8")

    def to_json_parts(self) -> list[bytes]:
        """``to_json()`` in pieces, one per directory and file, joined they are the same bytes.

        A domain of 100,000 messages has a manifest of tens of MB as one object tree and
        its encoding; in pieces it costs about its own size, so an export's memory stays
        bounded by its file count only that much.
        """
        head = self.to_dict()
        head["directories"] = []
        head["files"] = []
        text = json.dumps(head, indent=1, ensure_ascii=False)
        tail = ',\n "directories": [],\n "files": []\n}'
        if not text.endswith(tail):  # the two lists are the last keys of to_dict
            raise RuntimeError("The manifest's lists are not where to_json_parts expects.")
        parts = [text[: -len(tail)].encode("utf-8"), b',\n "directories": [']
        parts += _indented(self.directories)
        parts.append(b"\n ]" if self.directories else b"]")
        parts.append(b',\n "files": [')
        parts += _indented(
            {"path": f.path, "size": f.size, "sha256": f.sha256, "mtime_ns": f.mtime_ns}
            for f in self.files
        )
        parts.append(b"\n ]\n}" if self.files else b"]\n}")
        return parts

    @classmethod
    def from_json(cls, data: bytes | str, *, max_depth: int = MAX_PATH_DEPTH) -> Manifest:
        """Parse and validate a manifest; InvalidInputError says what is wrong.

        The JSON is read value by value (see shallow_json), each list entry checked and
        kept in its compact form as it is read: memory stays near the size of the text,
        whatever shape a hostile manifest takes. Paths may be ``max_depth`` deep.
        """
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"The archive manifest is not valid JSON: {exc}.") from exc
        reader = ShallowJson(data, "The archive manifest")
        values: dict[str, Any] = {}
        for key in reader.members():
            if key not in _TOP_KEYS:
                raise InvalidInputError(f"The manifest has unknown keys: {key}.")
            if key in _ENTRIES:
                convert = _ENTRIES[key]
                values[key] = [
                    convert(item, index, max_depth) for index, item in enumerate(reader.items())
                ]
            else:
                values[key] = reader.scalar()
                if key == "version":
                    _version(values[key])
        missing = [key for key in _TOP_KEYS if key not in values]
        if missing:
            raise InvalidInputError(f"The manifest lacks {', '.join(missing)}.")
        manifest = cls(
            domain=_text(values["domain"], "domain"),
            generated_at=_timestamp(values["generated_at"]),
            mailboxes=values["mailboxes"],
            aliases=values["aliases"],
            dkim_keys=values["dkim_keys"],
            directories=values["directories"],
            files=values["files"],
            version=_version(values["version"]),
        )
        manifest.check_consistent()
        return manifest

    def check_consistent(self) -> None:
        """Refuse duplicates and files or directories that belong to no listed mailbox."""
        maildirs = _unique([m.maildir for m in self.mailboxes], "maildir")
        _unique([m.email for m in self.mailboxes], "mailbox")
        for m in self.mailboxes:
            if m.maildir.count("/") != 1:
                raise InvalidInputError(
                    f"The maildir {m.maildir!r} of {m.email} is not {MAILDIRS_DIR}/<localpart>."
                )
        paths = _unique(self.directories, "directory")
        for f in self.files:
            if f.path.count("/") < 2:
                raise InvalidInputError(f"The file {f.path!r} is not inside a maildir.")
            if f.path in paths:
                raise InvalidInputError(f"The manifest lists {f.path!r} twice.")
            paths.add(f.path)
        for path in paths:
            if "/".join(path.split("/")[:2]) not in maildirs:
                raise InvalidInputError(
                    f"The archive path {path!r} belongs to no mailbox in the manifest."
                )


_TOP_KEYS = (
    "version",
    "domain",
    "generated_at",
    "mailboxes",
    "aliases",
    "dkim_keys",
    "directories",
    "files",
)


_FILE_KEYS = ("path", "size", "sha256", "mtime_ns")


def _version(raw: object) -> int:
    if type(raw) is not int or raw != FORMAT_VERSION:
        raise InvalidInputError(
            f"The archive has format version {raw!r}; this mailctl reads version {FORMAT_VERSION}."
        )
    return raw


def _entry(
    raw: object, index: int, what: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    return _object(raw, f"Entry {index} of the manifest's {what}", keys, optional)


def _mailbox(raw: object, index: int, max_depth: int) -> MailboxEntry:
    m = _entry(raw, index, "mailboxes", ("email", "password", "maildir"))
    return MailboxEntry(
        email=_text(m["email"], "mailbox email"),
        password=_text(m["password"], "mailbox password"),
        maildir=check_member_path(_text(m["maildir"], "maildir"), what="Maildir"),
    )


def _alias(raw: object, index: int, max_depth: int) -> AliasEntry:
    a = _entry(raw, index, "aliases", ("source", "destination"))
    return AliasEntry(_text(a["source"], "alias source"), _text(a["destination"], "alias"))


def _dkim_key(raw: object, index: int, max_depth: int) -> DkimKeyEntry:
    k = _entry(raw, index, "dkim_keys", ("selector", "key_type", "private_pem"), ("active",))
    return DkimKeyEntry(
        selector=_text(k["selector"], "DKIM selector"),
        key_type=_text(k["key_type"], "DKIM key type"),
        private_pem=_text(k["private_pem"], "DKIM private key"),
        active=_flag(k["active"], "DKIM key active flag") if "active" in k else None,
    )


def _directory(raw: object, index: int, max_depth: int) -> str:
    path = _text(raw, "directory")
    return check_member_path(path, what="Manifest directory", max_depth=max_depth)


def _file(raw: object, index: int, max_depth: int) -> FileEntry:
    if type(raw) is dict and len(raw) == len(_FILE_KEYS):
        # The common case, checked at once; anything else goes the long way and is told
        # what is wrong.
        path, size = raw.get("path"), raw.get("size")
        sha256, mtime_ns = raw.get("sha256"), raw.get("mtime_ns")
        if (
            type(path) is str
            and type(size) is int
            and size >= 0
            and type(sha256) is str
            and _SHA256_HEX.fullmatch(sha256)
            and type(mtime_ns) is int
            and -(2**63) <= mtime_ns < 2**63
        ):
            path = check_member_path(path, what="Manifest file", max_depth=max_depth)
            return FileEntry(path, size, sha256, mtime_ns)
    f = _entry(raw, index, "files", _FILE_KEYS)
    path = _text(f["path"], "file path")
    return FileEntry(
        path=check_member_path(path, what="Manifest file", max_depth=max_depth),
        size=_natural(f["size"], "file size"),
        sha256=_sha256(f["sha256"]),
        mtime_ns=_mtime_ns(f["mtime_ns"]),
    )


# The manifest's lists, and how each entry becomes its compact form.
_ENTRIES: dict[str, Callable[[object, int, int], Any]] = {
    "mailboxes": _mailbox,
    "aliases": _alias,
    "dkim_keys": _dkim_key,
    "directories": _directory,
    "files": _file,
}


def _object(
    raw: object, what: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{what} is not a JSON object.")
    if len(raw) == len(keys) and all(key in raw for key in keys):
        return raw
    missing = [k for k in keys if k not in raw]
    if missing:
        raise InvalidInputError(f"{what} lacks {', '.join(missing)}.")
    # Unknown keys would mean a newer writer put data there that this reader would drop.
    unknown = sorted(set(raw) - set(keys) - set(optional))
    if unknown:
        raise InvalidInputError(f"{what} has unknown keys: {', '.join(map(str, unknown))}.")
    return raw


def _text(raw: object, what: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidInputError(f"The manifest's {what} must be a non-empty string.")
    return raw


def _flag(raw: object, what: str) -> bool:
    if type(raw) is not bool:
        raise InvalidInputError(f"The manifest's {what} must be true or false, not {raw!r}.")
    return raw


def _integer(raw: object, what: str) -> int:
    # bool is an int subclass; true is no size.
    if type(raw) is not int:
        raise InvalidInputError(f"The manifest's {what} must be an integer, not {raw!r}.")
    return raw


def _mtime_ns(raw: object) -> int:
    value = _integer(raw, "file mtime_ns")
    # Beyond a signed 64-bit count of nanoseconds no filesystem can store the time.
    if not -(2**63) <= value < 2**63:
        raise InvalidInputError(f"The manifest's file mtime_ns {value} is out of range.")
    return value


def _natural(raw: object, what: str) -> int:
    value = _integer(raw, what)
    if value < 0:
        raise InvalidInputError(f"The manifest's {what} must not be negative.")
    return value


def _sha256(raw: object) -> str:
    if not isinstance(raw, str) or not _SHA256_HEX.fullmatch(raw):
        raise InvalidInputError(f"The manifest's sha256 {raw!r} is not 64 lowercase hex digits.")
    return raw


def _timestamp(raw: object) -> datetime:
    text = _text(raw, "generated_at")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInputError(f"The manifest's generated_at {text!r} is not ISO 8601.") from exc
    if value.utcoffset() != timedelta(0):
        raise InvalidInputError(f"The manifest's generated_at {text!r} is not in UTC.")
    return value.astimezone(UTC)


def _unique(values: list[str], what: str) -> set[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise InvalidInputError(f"The manifest lists the {what} {value!r} twice.")
        seen.add(value)
    return seen
