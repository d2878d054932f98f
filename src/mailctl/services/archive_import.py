"""Import a domain archive: upload spooling, checks of every name and hash, then one commit."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, cast

from mailctl.archive import Manifest, verify_and_extract
from mailctl.domain import dkim, passwords
from mailctl.domain.names import (
    normalize_domain,
    parse_address,
    parse_alias_destination,
    parse_alias_source,
)
from mailctl.errors import (
    ConflictError,
    HostStateError,
    InvalidInputError,
    TooLargeError,
)
from mailctl.host.fs import ensure_dir, held_temp_dir, held_temp_file, move
from mailctl.services import domains
from mailctl.services.context import Actor, Context

# Where uploads and staged archives live while an import runs, under data_dir. Each is
# locked by its import (see host.fs.held_temp_file), so a start-up clean-up removes only
# those of imports that died.
IMPORTS_DIR = "imports"
UPLOAD_PREFIX, UPLOAD_SUFFIX = "upload-", ".tar.gz"
STAGING_PREFIX = "staging-"


@dataclass(frozen=True)
class ImportResult:
    """What an import created."""

    domain: str
    mailboxes: int
    aliases: int
    dkim_keys: int
    files: int
    replaced: bool


def _imports_dir(ctx: Context) -> Path:
    return ensure_dir(ctx.settings.data_dir / IMPORTS_DIR, 0o700)


class UploadSpool:
    """A private temporary file under data_dir that an upload streams into, size-capped.

    ``with receive_upload(ctx) as spool: spool.write(chunk) ...`` — the file is removed
    when the block ends, whatever happened.
    """

    def __init__(self, directory: Path, limit: int) -> None:
        self.limit = limit
        self.size = 0
        try:
            fd, self.path = held_temp_file(directory, UPLOAD_PREFIX, UPLOAD_SUFFIX)
        except OSError as exc:
            raise HostStateError(f"Cannot store the upload: {exc.strerror}.") from exc
        # The lock lives as long as one descriptor of the file is open: this one, until
        # the import that reads the upload is over.
        self._lock = os.dup(fd)
        self._handle = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        """Append a chunk; TooLargeError once the upload exceeds the limit."""
        self.size += len(data)
        if self.size > self.limit:
            raise TooLargeError(f"The archive is larger than {self.limit} bytes.")
        try:
            self._handle.write(data)
        except OSError as exc:
            raise HostStateError(f"Cannot store the upload: {exc.strerror}.") from exc

    def finish(self) -> Path:
        """Close the file and return its path, ready for ``import_domain``."""
        try:
            self._handle.close()
        except OSError as exc:
            raise HostStateError(f"Cannot store the upload: {exc.strerror}.") from exc
        return self.path

    def __enter__(self) -> UploadSpool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._lock)


def receive_upload(ctx: Context) -> UploadSpool:
    """A spool for an uploaded archive, capped at ``max_import_bytes`` compressed."""
    return UploadSpool(_imports_dir(ctx), ctx.settings.max_import_bytes)


class Readable(Protocol):
    """Anything an archive can be read from once, front to back: a file, an upload."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Capped:
    """A read-only stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, source: Readable, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._read += len(data)
        if self._read > self._limit:
            raise TooLargeError(f"The archive is larger than {self._limit} bytes.")
        return data

    def seekable(self) -> bool:
        seekable = getattr(self._source, "seekable", None)
        return bool(seekable()) if seekable is not None else False

    def tell(self) -> int:
        return cast(BinaryIO, self._source).tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # The reader rewinds to where it started for its second pass.
        position = cast(BinaryIO, self._source).seek(offset, whence)
        self._read = 0
        return position


@dataclass(frozen=True)
class _Mailbox:
    email: str
    local_part: str
    password: str
    maildir: str


@dataclass
class _Plan:
    """A manifest checked against our rules: what the import will create."""

    domain: str
    mailboxes: list[_Mailbox] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    # (selector, key type, private PEM, whether it signs)
    keys: list[tuple[str, str, str, bool]] = field(default_factory=list)


def _plan(manifest: Manifest) -> _Plan:
    """Check every name, hash and key of a verified manifest; InvalidInputError if one fails."""
    plan = _Plan(normalize_domain(manifest.domain))
    seen: set[str] = set()
    for mailbox in manifest.mailboxes:
        address = parse_address(mailbox.email)
        if address.domain != plan.domain:
            raise InvalidInputError(
                f"The archive's mailbox {address.email} is not in the domain {plan.domain}."
            )
        if address.email in seen:
            raise InvalidInputError(f"The archive lists the mailbox {address.email} twice.")
        seen.add(address.email)
        try:
            hashed = passwords.validate_prehashed(mailbox.password)
        except InvalidInputError as exc:
            raise InvalidInputError(f"The mailbox {address.email}: {exc.message}") from exc
        plan.mailboxes.append(_Mailbox(address.email, address.local_part, hashed, mailbox.maildir))
    for alias in manifest.aliases:
        plan.aliases.append(
            (
                parse_alias_source(alias.source, plan.domain),
                parse_alias_destination(alias.destination),
            )
        )
    flags = [key.active for key in manifest.dkim_keys]
    if None not in flags:
        if flags.count(True) > 1:
            raise InvalidInputError("The archive has more than one active DKIM key.")
    elif any(flag is not None for flag in flags):
        raise InvalidInputError("The archive marks some DKIM keys active or not, not all.")
    else:  # written before the flag: the last key listed is the one that signs
        flags = [index == len(flags) - 1 for index in range(len(flags))]
    selectors: set[str] = set()
    for key, active in zip(manifest.dkim_keys, flags, strict=True):
        selector = dkim.validate_selector(key.selector)
        if selector in selectors:
            raise InvalidInputError(f"The archive has two DKIM keys with the selector {selector}.")
        selectors.add(selector)
        # The key itself says what type it is; the manifest's label is only informative.
        key_type = dkim.key_type_of(key.private_pem)
        plan.keys.append((selector, key_type, key.private_pem, bool(active)))
    return plan


def _extract(ctx: Context, source: Path | Readable, staging: Path) -> Manifest:
    settings = ctx.settings
    limit = settings.max_import_bytes
    limits = {
        "max_total_bytes": limit,
        "max_files": settings.max_import_files,
        "max_ratio": settings.max_import_ratio,
        "max_manifest_bytes": settings.max_import_manifest_bytes,
        "max_depth": settings.max_import_depth,
    }
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise InvalidInputError(f"Cannot read the archive {source}: {exc.strerror}.") from exc
        if size > limit:
            raise TooLargeError(f"The archive is larger than {limit} bytes.")
        return verify_and_extract(source, staging, **limits)
    capped = _Capped(source, limit)
    if capped.seekable():
        # The reader only ever calls read, seekable, tell and seek: any such Readable does.
        return verify_and_extract(cast(BinaryIO, capped), staging, **limits)
    # A stream read once: the archive's manifest may come last, so it is read twice.
    with receive_upload(ctx) as spool:
        while data := capped.read(1024 * 1024):
            spool.write(data)
        return verify_and_extract(spool.finish(), staging, **limits)


def _own_tree(root: Path, uid: int | None, gid: int | None) -> None:
    if uid is None and gid is None:
        return
    owner = (-1 if uid is None else uid, -1 if gid is None else gid)
    try:
        os.lchown(root, *owner)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), *owner)
    except OSError as exc:
        raise HostStateError(f"Cannot give the imported mail to its user: {exc.strerror}.") from exc


def _move(source: Path, destination: Path) -> None:
    try:
        move(source, destination)
    except OSError as exc:
        raise HostStateError(
            f"Cannot move the imported mail into {destination}: {exc.strerror}."
        ) from exc


def import_domain(
    ctx: Context,
    actor: Actor,
    source: Path | Readable,
    replace: bool = False,
) -> ImportResult:
    """Import a domain archive: every checksum and name is verified before anything changes.

    ``source`` is an archive file or a stream read once (capped at ``max_import_bytes``
    compressed and unpacked). A domain that exists is a ConflictError unless
    ``replace``, which first moves it to the trash exactly as deleting it would. Then
    one transaction creates the domain, its mailboxes with the same password hashes,
    aliases, DKIM keys and an audit row, and the staged maildirs are renamed into the
    mail root; if the commit fails they are taken back out. The staging directory is
    always removed.
    """
    try:
        lock, staging = held_temp_dir(_imports_dir(ctx), STAGING_PREFIX)
    except OSError as exc:
        raise HostStateError(f"Cannot stage the archive: {exc.strerror}.") from exc
    try:
        manifest = _extract(ctx, source, staging)
        plan = _plan(manifest)
        with ctx.maildirs.changing():
            result = _apply(ctx, actor, plan, staging, replace, len(manifest.files))
    finally:
        # Nothing in staging is a symlink (the reader refuses them), and rmtree does not
        # follow any anyway.
        shutil.rmtree(staging, ignore_errors=True)
        os.close(lock)
    # One reconcile renders both; listeners hear whether keys came with the domain.
    ctx.changed("dkim" if plan.keys else "domains")
    return result


def _apply(
    ctx: Context, actor: Actor, plan: _Plan, staging: Path, replace: bool, files: int
) -> ImportResult:
    with ctx.uow() as uow:
        exists = uow.domains.by_name(plan.domain) is not None
    if exists and not replace:
        raise ConflictError(
            f"The domain {plan.domain} exists already; import with replace=true to move it "
            "to the trash and take its place."
        )
    if exists:
        domains.delete_domain(ctx, actor, plan.domain)
    maildirs = ctx.maildirs
    moves = []
    for mailbox in plan.mailboxes:
        target = maildirs.mailbox_path(plan.domain, mailbox.local_part)
        staged = staging.joinpath(*mailbox.maildir.split("/"))
        if target.exists() or target.is_symlink():
            raise ConflictError(
                f"The maildir of {mailbox.email} exists on disk without a mailbox; move it "
                "away before importing."
            )
        if staged.is_dir():
            moves.append((staged, target))
    _own_tree(staging, maildirs.uid, maildirs.gid)
    domain_dir = maildirs.domain_path(plan.domain)
    with ctx.uow() as uow:
        if uow.domains.by_name(plan.domain) is not None:
            raise ConflictError(f"The domain {plan.domain} was created meanwhile; not importing.")
        domain = uow.domains.add(plan.domain)
        for mailbox in plan.mailboxes:
            if uow.users.by_email(mailbox.email) is not None:
                raise ConflictError(f"The mailbox {mailbox.email} exists already.")
            uow.users.add(domain.id, mailbox.email, mailbox.password)
        for alias_source, destination in plan.aliases:
            uow.aliases.add(domain.id, alias_source, destination)
        for selector, key_type, pem, active in plan.keys:
            uow.dkim_keys.add(domain.id, selector, key_type, pem, active)
        uow.audit.record(
            actor,
            "import_domain",
            plan.domain,
            f"{len(plan.mailboxes)} mailboxes, {files} files"
            + (", replacing the existing domain" if exists else ""),
            domain=plan.domain,
        )
        uow.flush()
        created_dir = not domain_dir.exists()
        if created_dir:
            ensure_dir(domain_dir, 0o750)
            _own_tree(domain_dir, maildirs.uid, maildirs.gid)
        done: list[tuple[Path, Path]] = []
        try:
            for staged, target in moves:
                _move(staged, target)
                done.append((staged, target))
            uow.commit()
        except BaseException:
            for staged, target in reversed(done):
                with contextlib.suppress(HostStateError):
                    _move(target, staged)
            if created_dir:
                with contextlib.suppress(OSError):
                    domain_dir.rmdir()
            raise
    for mailbox in plan.mailboxes:
        maildirs.create_mailbox(plan.domain, mailbox.local_part)
    return ImportResult(
        plan.domain, len(plan.mailboxes), len(plan.aliases), len(plan.keys), files, exists
    )
