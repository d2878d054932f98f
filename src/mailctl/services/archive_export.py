"""Export a domain as a .tar.gz archive streamed from its rows and maildirs, or to a file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailctl.archive import (
    AliasEntry,
    DkimKeyEntry,
    ExportResult,
    MailboxEntry,
    Manifest,
    export_stream,
    maildir_path,
)
from mailctl.archive.stream import DEFAULT_CHUNK, Progress
from mailctl.domain.names import normalize_domain
from mailctl.errors import HostStateError, NotFoundError
from mailctl.host.fs import ensure_dir, write_atomic_chunks
from mailctl.services.context import Actor, Context

CHUNK = 64 * 1024


@dataclass
class DomainExport:
    """A domain's rows, read in one short transaction, ready to stream with its maildirs."""

    domain: str
    filename: str
    manifest: Manifest
    mailbox_dirs: dict[str, Path]

    def chunks(self, progress: Progress | None = None) -> Iterator[bytes]:
        """The .tar.gz archive, chunk by chunk, read from the maildirs as it goes."""
        return export_stream(self.manifest, self.mailbox_dirs, CHUNK, progress)


@dataclass(frozen=True)
class ExportedFile:
    """An archive written to disk."""

    domain: str
    path: Path
    size: int
    sha256: str


def prepare_export(ctx: Context, actor: Actor, name: object) -> DomainExport:
    """Read a domain's mailboxes (with their stored hashes), aliases and DKIM keys.

    NotFoundError for an unknown domain, before any byte of an archive exists. The
    archive format has no "active" flag for keys: the active key goes last, and the
    importer makes the last key the active one.
    """
    domain_name = normalize_domain(name)
    with ctx.uow() as uow:
        domain = uow.domains.by_name(domain_name)
        if domain is None:
            raise NotFoundError(f"The domain {domain_name} does not exist.")
        mailboxes = []
        mailbox_dirs = {}
        for user in uow.users.list_for_domain(domain.id):
            local_part = user.email.rsplit("@", 1)[0]
            mailboxes.append(MailboxEntry(user.email, user.password, maildir_path(local_part)))
            mailbox_dirs[local_part] = ctx.maildirs.mailbox_path(domain_name, local_part)
        aliases = [
            AliasEntry(alias.source, alias.destination)
            for alias in uow.aliases.list_for_domain(domain.id)
        ]
        keys = sorted(uow.dkim_keys.for_domain(domain.id), key=lambda k: (k.active, k.id))
        dkim_keys = [DkimKeyEntry(k.selector, k.key_type, k.private_key, k.active) for k in keys]
        uow.audit.record(actor, "export_domain", domain_name, domain=domain_name)
        uow.commit()
    manifest = Manifest(
        domain=domain_name, mailboxes=mailboxes, aliases=aliases, dkim_keys=dkim_keys
    )
    stamp = manifest.generated_at.strftime("%Y%m%dT%H%M%SZ")
    return DomainExport(domain_name, f"{domain_name}-{stamp}.tar.gz", manifest, mailbox_dirs)


def write_export(
    path: Path,
    manifest: Manifest,
    mailbox_dirs: Mapping[str, Path],
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    *,
    compresslevel: int = 6,
) -> ExportResult:
    """Write the archive to ``path`` atomically: whole and fsynced, or not at all.

    The archive goes to a temporary sibling created 0600 (it holds password hashes and
    DKIM private keys), is fsynced, and replaces ``path``; on any failure the sibling is
    removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    stream = export_stream(
        manifest, mailbox_dirs, chunk_size, progress, compresslevel=compresslevel
    )
    size = write_atomic_chunks(path, stream, 0o600, what=f"the archive {path}")
    return ExportResult(path, size)


def export_to_file(
    ctx: Context,
    actor: Actor,
    name: object,
    path: Path | None = None,
    progress: Progress | None = None,
) -> ExportedFile:
    """Write a domain's archive atomically to ``path``.

    ``path`` may be a file name or a directory to put ``<domain>-<UTC time>.tar.gz`` in;
    by default that directory is the archive directory of the settings.
    """
    export = prepare_export(ctx, actor, name)
    if path is None:
        path = ensure_dir(ctx.settings.archive_path, 0o700)
    if path.is_dir():
        path = path / export.filename
    result = write_export(path, export.manifest, export.mailbox_dirs, CHUNK, progress)
    return ExportedFile(export.domain, result.path, result.size, _sha256_of(result.path))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while data := handle.read(1024 * 1024):
                digest.update(data)
    except OSError as exc:
        raise HostStateError(f"Cannot read back the archive {path}: {exc.strerror}.") from exc
    return digest.hexdigest()
